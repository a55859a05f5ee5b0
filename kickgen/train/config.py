"""Training configuration: dataclass defaults < TOML file < command-line flags.

Every field of the given dataclasses becomes a flag (``batch_size`` → ``--batch-size``; tuples are
comma-separated, booleans have ``--x/--no-x``). A TOML file holds the same names as flat keys
(``batch_size = 32``) or grouped under any table (``[train]``, ``[model]``): tables are flattened.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any

import tomllib

from kickgen.errors import CommandError


def _field_type(cls: type, field: dataclasses.Field) -> Any:
    return typing.get_type_hints(cls)[field.name]


def _parse_tuple(text: str, name: str) -> tuple:
    try:
        if ";" in text:  # nested: "1,3,5;1,3,5"
            return tuple(tuple(int(v) for v in part.split(",")) for part in text.split(";"))
        return tuple(
            int(v) if v.strip().lstrip("-").isdigit() else float(v) for v in text.split(",")
        )
    except ValueError as exc:
        raise CommandError(f"--{name}: expected comma-separated numbers, got {text!r}") from exc


def add_config_arguments(parser: argparse.ArgumentParser, *classes: type) -> None:
    """Add one flag per dataclass field (default None = not given; help shows the default)."""
    seen: set[str] = set()
    for cls in classes:
        group = parser.add_argument_group(f"{cls.__name__} (defaults are the shipped recipe)")
        for f in dataclasses.fields(cls):
            if f.name in seen:
                continue
            seen.add(f.name)
            flag = "--" + f.name.replace("_", "-")
            typ = _field_type(cls, f)
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            help_text = f"default {default!r}"
            if typ is bool:
                group.add_argument(
                    flag,
                    dest=f.name,
                    action=argparse.BooleanOptionalAction,
                    default=None,
                    help=help_text,
                )
            elif typing.get_origin(typ) is tuple:
                group.add_argument(
                    flag, dest=f.name, default=None, metavar="N,N,...", help=help_text
                )
            else:
                base = typ if typ in (int, float, str) else str
                group.add_argument(flag, dest=f.name, type=base, default=None, help=help_text)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file into a flat {field: value} dict (tables are flattened)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise CommandError(f"{path}: config file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise CommandError(f"{path}: not valid TOML ({exc})") from exc
    flat: dict[str, Any] = {}

    def walk(d: dict[str, Any]) -> None:
        for key, value in d.items():
            if isinstance(value, dict):
                walk(value)
            else:
                flat[key.replace("-", "_")] = value

    walk(data)
    return flat


def _coerce(cls: type, field: dataclasses.Field, value: Any, source: str) -> Any:
    typ = _field_type(cls, field)
    if typing.get_origin(typ) is tuple:
        if isinstance(value, str):
            value = _parse_tuple(value, field.name)
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if typ in (int, float, str, bool) and not isinstance(value, typ):
        raise CommandError(f"{source}: {field.name} must be {typ.__name__}, got {value!r}")
    return value


def build_configs(
    classes: tuple[type, ...],
    toml_path: str | Path | None,
    args: argparse.Namespace | None,
    base: dict[str, dict[str, Any]] | None = None,
) -> tuple[Any, ...]:
    """Instantiate each dataclass from base values (e.g. a resumed run's) < TOML < CLI flags."""
    from_toml = read_toml(toml_path) if toml_path else {}
    known = {f.name for cls in classes for f in dataclasses.fields(cls)}
    unknown = sorted(set(from_toml) - known)
    if unknown:
        raise CommandError(f"{toml_path}: unknown config keys {', '.join(unknown)}")
    out = []
    for cls in classes:
        values: dict[str, Any] = dict((base or {}).get(cls.__name__, {}))
        for f in dataclasses.fields(cls):
            if f.name in from_toml:
                values[f.name] = _coerce(cls, f, from_toml[f.name], str(toml_path))
            given = getattr(args, f.name, None) if args is not None else None
            if given is not None:
                values[f.name] = _coerce(cls, f, given, "--" + f.name.replace("_", "-"))
            elif f.name in values:
                values[f.name] = _coerce(cls, f, values[f.name], "saved config")
        out.append(
            cls(
                **{
                    k: v
                    for k, v in values.items()
                    if k in {f.name for f in dataclasses.fields(cls)}
                }
            )
        )
    return tuple(out)


def config_dict(config: Any) -> dict[str, Any]:
    """A dataclass as plain data (safe for ``weights_only`` loading)."""
    return dataclasses.asdict(config)
