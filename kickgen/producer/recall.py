"""Recall: every producer WAV carries the recipe that made it, and ``regenerate`` re-runs it.

The recipe is compact JSON in the WAV's ``LIST/INFO`` chunk (``ICMT`` comment; ``INAM`` holds the
prompt and ``ISFT`` the kickgen version, which samplers and DAWs show) and, on request, in a
``FILE.json`` sidecar. It holds:

| key | meaning |
| --- | --- |
| ``recipe`` | format version (1) |
| ``kickgen`` | kickgen version that wrote it |
| ``settings`` | ``cfg_scale``, ``steps``, ``sampler``, ``strength`` |
| ``rows``, ``index`` | the batch the kick was rendered in (:class:`~kickgen.producer.engine.Row` dicts) and its row; batch composition changes the last bits of CPU maths, so the whole batch is re-run |
| ``hygiene`` | :class:`~kickgen.producer.hygiene.HygieneConfig` fields, or null for the reference output stage |
| ``format``, ``sample_rate`` | WAV sample format and rate |
| ``model`` | name and SHA-256 prefix of each checkpoint file (the model version) |
| ``init`` | SHA-256 prefix of each init audio file |
| ``device`` | device type it ran on (bits match on the same type) |

:func:`regenerate` reads it back, checks the checkpoints and init files are the ones that made
the kick, renders the batch again and writes the kick with the same format. A recipe is checked
against :data:`RECIPE_SCHEMA` before anything is loaded (:func:`check_recipe`): an edited or damaged
one is a one-line :class:`~kickgen.producer.engine.ProducerError` naming the field.
"""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from kickgen import __version__
from kickgen.audio import SAMPLE_RATE, check_finite_output, resample
from kickgen.output import target_of, write_atomically
from kickgen.pipeline import MAX_REDRAWS
from kickgen.producer.engine import (
    ProducerError,
    Row,
    Settings,
    file_sha256,
    init_sha256,
    is_memory_name,
    render_rows,
)
from kickgen.producer.hygiene import FADES, LEVELS, HygieneConfig, HygieneError, apply_hygiene
from kickgen.sampling import SAMPLERS

RECIPE_VERSION = 1
FORMATS = {
    "float32": "FLOAT",
    "pcm16": "PCM_16",
    "pcm24": "PCM_24",
}  # same names as `generate --format`
SAMPLE_RATES = (44_100, 48_000)
MAX_COMMENT_BYTES = 32_000  # libsndfile silently drops a longer LIST/INFO comment
# A recipe asks for no more work than the requests that make one (checked when it is read, before
# any model runs): the server's and the CLI's step cap, and a batch of at most a pack's worth of
# rows (92 MIDI keys; the server's n (8) and morph frames (16) and the CLI's default batch of 16
# are smaller). ``--batch-size`` and ``--steps`` refuse more, so every kick kickgen writes recalls.
MAX_STEPS = 200
MAX_ROWS = 92


# --------------------------------------------------------------------------- recipes


def model_version(pipe) -> dict[str, dict[str, str] | None]:
    """``{"diffusion": {"name", "sha256"}, "vae": ..., "vocoder": ... or None}`` of a pipeline's files."""
    out: dict[str, dict[str, str] | None] = {}
    cache = getattr(pipe, "_producer_model_version", None)
    if cache is not None:
        return cache
    for part in ("diffusion", "vae", "vocoder"):
        path = (getattr(pipe, "sources", None) or {}).get(part)
        out[part] = None if path is None else {"name": Path(path).name, "sha256": file_sha256(path)}
    pipe._producer_model_version = out  # hashed once per pipeline
    return out


def make_recipe(
    pipe,
    rows: list[Row],
    index: int,
    settings: Settings,
    hygiene: HygieneConfig | None,
    fmt: str = "float32",
    sample_rate: int = SAMPLE_RATE,
) -> dict[str, object]:
    """The recipe of row ``index`` of a rendered batch (see the module docstring)."""
    inits = sorted({n for r in rows for n in (r.init, r.init_b) if n is not None})
    return {
        "recipe": RECIPE_VERSION,
        "kickgen": __version__,
        "settings": {
            "cfg_scale": settings.cfg_scale,
            "steps": settings.steps,
            "sampler": settings.sampler,
            "strength": settings.strength,
            "redraws": settings.redraws,
        },  # fmt: skip
        "rows": [r.to_dict() for r in rows],
        "index": index,
        "hygiene": None if hygiene is None else hygiene.to_dict(),
        "format": fmt,
        "sample_rate": sample_rate,
        "model": model_version(pipe),
        "init": {n: sha for n in inits if (sha := init_sha256(n)) is not None},
        "device": pipe.device.type,
    }


def plain_recipes(
    pipe,
    prompt: str,
    seeds: list[int],
    cfg_scale: float,
    steps: int,
    sampler: str,
    batch_size: int,
    fmt: str = "float32",
) -> list[dict[str, object]]:
    """Recipes of kicks made by a plain ``pipe(prompt, n, seed, ..., batch_size=...)`` call: the
    pipeline batches ``seeds`` in runs of ``batch_size``, and so do these recipes."""
    settings = Settings(float(cfg_scale), steps, sampler, 1.0, pipe.redraws)
    recipes = []
    for b in range(0, len(seeds), batch_size):
        rows = [Row(seed=s, prompt=prompt) for s in seeds[b : b + batch_size]]
        recipes += [make_recipe(pipe, rows, i, settings, None, fmt) for i in range(len(rows))]
    return recipes


def finish(raw: torch.Tensor, hygiene: HygieneConfig | None) -> np.ndarray:
    """Raw vocoder output ``(88200,)`` → the kick as written at 44.1 kHz, float32 ``(L,)``.

    ``hygiene=None`` is the pipeline's own output stage (reference fade, 0.95 peak), so a plain
    row gives exactly what :class:`~kickgen.pipeline.KickPipeline` gives.
    """
    if hygiene is None:
        from kickgen.pipeline import postprocess

        return postprocess(raw[None])[0].numpy()
    return apply_hygiene(raw, hygiene)


# --------------------------------------------------------------------------- the recipe schema

# A check takes a field's value and returns None when it is fine, else what to use instead.
Check = Callable[[object], "str | None"]


def whole(lo: int, hi: int) -> Check:
    def check(v: object) -> str | None:
        ok = isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi
        return None if ok else f"use a whole number from {lo} to {hi}"

    return check


def number(lo: float = -math.inf, hi: float = math.inf) -> Check:
    """A finite int or float in ``[lo, hi]``."""

    def check(v: object) -> str | None:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if ok and lo <= v <= hi:  # type: ignore[operator]
            return None
        return "use a finite number" + (f" from {lo:g} to {hi:g}" if math.isfinite(lo + hi) else "")

    return check


def text(v: object) -> str | None:
    if not isinstance(v, str):
        return "use a string"
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\\ud800" in the JSON)
        return "use a string of Unicode text"
    return None


def flag(v: object) -> str | None:
    return None if isinstance(v, bool) else "use true or false"


def hex16(v: object) -> str | None:
    ok = isinstance(v, str) and len(v) == 16 and all(c in "0123456789abcdef" for c in v)
    return None if ok else "use the 16 hex digits of a SHA-256 prefix"


def choice(options) -> Check:
    options = tuple(options)
    return lambda v: (
        None
        if v in options and not isinstance(v, bool)
        else (f"use one of {', '.join(map(str, options))}")
    )


def optional(check: Check) -> Check:
    return lambda v: None if v is None else (None if check(v) is None else f"{check(v)}, or null")


SEEDS = whole(0, 2**64 - 1)  # what torch.Generator.manual_seed takes

# Every field a version-1 recipe may hold: {key: (check, required)}; "settings", "hygiene" and each
# row are checked field by field, then their dataclasses' own range checks run (Settings.check,
# HygieneConfig.check). "index" must name a row, every init file of a row needs its SHA-256 in
# "init", and "model" names all three parts (null: the part came from no file, e.g. Griffin-Lim).
RECIPE_SCHEMA: dict[str, tuple[Check | None, bool]] = {
    "recipe": (choice([RECIPE_VERSION]), True),
    "kickgen": (text, False),
    "settings": (None, True),
    "rows": (None, True),
    "index": (whole(0, 2**31), True),
    "hygiene": (None, False),
    "format": (choice(FORMATS), False),
    "sample_rate": (choice(SAMPLE_RATES), False),
    "model": (None, True),
    "init": (None, False),
    "device": (text, False),
}
SETTINGS_SCHEMA: dict[str, Check] = {
    "cfg_scale": number(),
    "steps": whole(1, MAX_STEPS),
    "sampler": choice(SAMPLERS),
    "strength": number(),
    "redraws": whole(0, MAX_REDRAWS),  # absent: 0, as recipes made before the hit check
}
ROW_SCHEMA: dict[str, Check] = {
    "seed": SEEDS,
    "prompt": text,
    "seed_b": optional(SEEDS),
    "prompt_b": optional(text),
    "init": optional(text),
    "init_b": optional(text),
    "t": number(0.0, 1.0),
    "draw": optional(whole(0, MAX_REDRAWS)),
    "draw_b": whole(0, MAX_REDRAWS),
}
HYGIENE_SCHEMA: dict[str, Check] = {
    "align_onset": flag,
    "preroll_ms": number(),
    "dc_hz": optional(number()),
    "fade": choice(FADES),
    "decay_fade_ms": number(),
    "level": choice(LEVELS),
    "peak": number(),
    "true_peak": flag,
    "lufs": number(),
    "ceiling_dbtp": number(),
    "trim": flag,
    "trim_db": number(),
    "key": optional(text),
}
MODEL_PARTS = ("diffusion", "vae", "vocoder")
MODEL_SCHEMA: dict[str, Check] = {"name": text, "sha256": hex16}


@dataclass(frozen=True)
class Recipe:
    """A recipe that passed :func:`check_recipe`, as the objects that render it."""

    rows: list[Row]
    index: int
    settings: Settings
    hygiene: HygieneConfig | None
    fmt: str
    sample_rate: int
    model: dict[str, dict[str, str] | None]
    init: dict[str, str]


class _Bad(Exception):
    """A field that does not fit the schema: ``(field name, message)``."""


def _short(v: object) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _fields(d: object, name: str, schema: dict[str, Check], required: tuple[str, ...] = ()) -> dict:
    """``d`` checked against ``schema``: an object with known fields, each of the right kind."""
    if not isinstance(d, dict):
        raise _Bad(f"{name} is {_short(d)}: it should be an object")
    unknown = sorted(set(d) - set(schema))
    if unknown:
        raise _Bad(f"{name} has unknown field {unknown[0]!r} (known: {', '.join(schema)})")
    for key in required:
        if key not in d:
            raise _Bad(f"{name} lacks {key!r}")
    for key, value in d.items():
        problem = schema[key](value)
        if problem is not None:
            raise _Bad(f"{name}.{key} is {_short(value)}: {problem}")
    return d


def _parse(recipe: object) -> Recipe:
    if not isinstance(recipe, dict):
        raise _Bad("it is not a JSON object")
    checks = {k: (c or (lambda v: None)) for k, (c, _) in RECIPE_SCHEMA.items()}
    _fields(recipe, "the recipe", checks, tuple(k for k, (_, req) in RECIPE_SCHEMA.items() if req))

    settings = {"redraws": 0, **_fields(recipe["settings"], "settings", SETTINGS_SCHEMA)}
    raw_rows = recipe["rows"]
    if not isinstance(raw_rows, list) or not raw_rows:
        raise _Bad(f"rows is {_short(raw_rows)}: it should be a list of at least one row")
    if len(raw_rows) > MAX_ROWS:
        raise _Bad(f"rows holds {len(raw_rows)} rows: a batch has at most {MAX_ROWS}")
    rows = [Row(**_fields(r, f"rows[{i}]", ROW_SCHEMA, ("seed",))) for i, r in enumerate(raw_rows)]
    index = recipe["index"]
    if index >= len(rows):
        raise _Bad(f"index is {index}: use a row of the batch, 0 to {len(rows) - 1}")

    hygiene = recipe.get("hygiene")
    if hygiene is not None:
        hygiene = HygieneConfig(**_fields(hygiene, "hygiene", HYGIENE_SCHEMA))
        try:
            hygiene.check()
        except HygieneError as exc:
            raise _Bad(f"hygiene.{exc}") from None
    settings = Settings(**settings)
    try:
        settings.check()
    except ProducerError as exc:
        raise _Bad(f"settings.{exc}") from None

    model = recipe["model"]
    if not isinstance(model, dict) or set(model) != set(MODEL_PARTS):
        raise _Bad(f"model is {_short(model)}: it should name {', '.join(MODEL_PARTS)}")
    for part, value in model.items():
        if value is not None:
            _fields(value, f"model.{part}", MODEL_SCHEMA, tuple(MODEL_SCHEMA))

    init = recipe.get("init", {})
    if not isinstance(init, dict):
        raise _Bad(f"init is {_short(init)}: it should map init files to SHA-256 prefixes")
    for name, sha in init.items():
        if text(name) is not None:
            raise _Bad(f"init names {_short(name)}: {text(name)}")
        if hex16(sha) is not None:
            raise _Bad(f"init[{_short(name)}] is {_short(sha)}: {hex16(sha)}")
    for i, r in enumerate(rows):
        for key in ("init", "init_b"):
            name = getattr(r, key)
            if name is not None and name not in init:
                raise _Bad(f"rows[{i}].{key} {_short(name)} has no SHA-256 in init")
        if r.init_b is not None and r.init is None:
            raise _Bad(f"rows[{i}].init_b is set without init")
    return Recipe(
        rows=rows,
        index=index,
        settings=settings,
        hygiene=hygiene,
        fmt=recipe.get("format", "float32"),
        sample_rate=recipe.get("sample_rate", SAMPLE_RATE),
        model=model,
        init=init,
    )


def check_recipe(recipe: object, source: str | Path | None = None) -> Recipe:
    """``recipe`` checked against :data:`RECIPE_SCHEMA`; a field that does not fit is a one-line
    :class:`ProducerError` naming ``source`` and the field."""
    try:
        return _parse(recipe)
    except _Bad as exc:
        where = f"{source}: " if source is not None else ""
        raise ProducerError(
            f"{where}its kickgen recipe is damaged or edited: {exc}; regenerate only kicks as kickgen wrote them"
        ) from None


# --------------------------------------------------------------------------- WAV I/O


def _prepare(
    wave: np.ndarray, recipe: dict[str, object] | None, fmt: str, sample_rate: int, name: str | Path
) -> tuple[np.ndarray, str | None, str]:
    """``(samples at sample_rate, LIST/INFO comment, title)`` of a kick to write, checked."""
    if fmt not in FORMATS:
        raise ProducerError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    if sample_rate not in SAMPLE_RATES:
        raise ProducerError(f"sample rate {sample_rate}: use 44100 or 48000")
    if recipe is not None:
        recipe = {**recipe, "format": fmt, "sample_rate": sample_rate}
    data = np.asarray(wave, dtype=np.float32).reshape(-1)
    if sample_rate != SAMPLE_RATE:
        data = resample(data, SAMPLE_RATE, sample_rate)
    check_finite_output(name, data)
    comment = None if recipe is None else json.dumps(recipe, separators=(",", ":"), sort_keys=True)
    if comment is not None and len(comment.encode()) > MAX_COMMENT_BYTES:
        raise ProducerError(
            f"{target_of(Path(name))}: its recipe is {len(comment.encode())} bytes, more than the {MAX_COMMENT_BYTES} "
            "a WAV comment holds; use a shorter prompt or fewer kicks per batch (--batch-size)"
        )
    rows = (recipe or {}).get("rows") or []
    title = str(rows[int(recipe.get("index", 0))].get("prompt", "")) if rows else ""  # type: ignore[union-attr]
    return data, comment, title


def _encode(
    file, data: np.ndarray, sample_rate: int, fmt: str, comment: str | None, title: str
) -> None:
    """Write a WAV to ``file`` (a path or an open binary file) with libsndfile."""
    with sf.SoundFile(file, "w", sample_rate, 1, FORMATS[fmt], format="WAV") as f:
        if comment is not None:
            f.comment = comment
            if title:  # libsndfile refuses empty strings
                f.title = title
        f.software = f"kickgen {__version__}"
        f.write(data)


def kick_bytes(
    wave: np.ndarray,
    recipe: dict[str, object] | None,
    fmt: str = "float32",
    sample_rate: int = SAMPLE_RATE,
    name: str | Path = "kick.wav",
) -> bytes:
    """A mono kick ``(L,)`` given at 44.1 kHz as the bytes of the WAV file :func:`write_kick`
    writes (``name`` names it in errors)."""
    data, comment, title = _prepare(wave, recipe, fmt, sample_rate, name)
    buf = io.BytesIO()
    _encode(buf, data, sample_rate, fmt, comment, title)
    return _zero_peak_timestamp(buf.getvalue())


def write_kick(
    path: str | Path,
    wave: np.ndarray,
    recipe: dict[str, object] | None,
    fmt: str = "float32",
    sample_rate: int = SAMPLE_RATE,
    sidecar: bool = False,
) -> Path:
    """Write a mono kick ``(L,)`` given at 44.1 kHz as ``fmt`` at ``sample_rate``, atomically,
    with the recipe in LIST/INFO (and ``FILE.json`` when ``sidecar``)."""
    path = Path(path)
    data, comment, title = _prepare(wave, recipe, fmt, sample_rate, path)

    def write(tmp: Path) -> None:
        _encode(str(tmp), data, sample_rate, fmt, comment, title)
        Path(tmp).write_bytes(_zero_peak_timestamp(Path(tmp).read_bytes()))

    write_atomically(path, write)
    if sidecar and recipe is not None:
        write_sidecar(
            path.with_suffix(".json"), {**recipe, "format": fmt, "sample_rate": sample_rate}
        )
    return path


def write_sidecar(path: str | Path, recipe: dict[str, object]) -> Path:
    """The recipe as indented JSON in ``path`` (``FILE.json`` beside a kick), atomically."""
    text = json.dumps(recipe, indent=1, sort_keys=True) + "\n"
    return write_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _riff_chunks(data: bytes):
    """``(chunk id, body start, body size)`` of each top-level chunk of a RIFF/WAVE file."""
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        yield cid, pos + 8, size
        pos += 8 + size + (size & 1)


def _zero_peak_timestamp(data: bytes) -> bytes:
    """libsndfile stamps float WAVs' PEAK chunk with the time of writing; zero it so the same
    kick always gives the same bytes."""
    out = bytearray(data)
    for cid, start, size in _riff_chunks(data):
        if cid == b"PEAK" and size >= 8:  # version (4 bytes), then the timestamp (4 bytes)
            out[start + 4 : start + 8] = b"\0\0\0\0"
    return bytes(out)


def read_info(path: str | Path) -> dict[str, str]:
    """The LIST/INFO entries of a WAV (``{"ICMT": ..., "INAM": ...}``); any size, own RIFF parser."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProducerError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ProducerError(f"{path} is not a WAV file: pass a WAV written by kickgen")
    info: dict[str, str] = {}
    for cid, start, size in _riff_chunks(data):
        body = data[start : start + size]
        if cid == b"LIST" and body[:4] == b"INFO":
            sub = 4
            while sub + 8 <= len(body):
                sid, ssize = body[sub : sub + 4], struct.unpack("<I", body[sub + 4 : sub + 8])[0]
                text = body[sub + 8 : sub + 8 + ssize].split(b"\0", 1)[0]
                info[sid.decode("ascii", "replace")] = text.decode("utf-8", "replace")
                sub += 8 + ssize + (ssize & 1)
    return info


def read_recipe(path: str | Path) -> dict[str, object]:
    """The recipe of a kickgen WAV, from its LIST/INFO comment or its ``.json`` sidecar, checked
    against :data:`RECIPE_SCHEMA` (:func:`check_recipe`)."""
    path = Path(path)
    if not path.is_file():
        raise ProducerError(f"{path} not found: pass a WAV written by kickgen")
    text = read_info(path).get("ICMT", "")
    source = path
    if not text.startswith("{"):
        sidecar = path.with_suffix(".json")
        if not sidecar.is_file():
            raise ProducerError(
                f"{path} carries no kickgen recipe (no LIST/INFO comment, no {sidecar.name}): "
                "only kicks written by kickgen can be regenerated"
            )
        if sidecar.stat().st_size > 8 * MAX_COMMENT_BYTES:  # indented JSON of the largest recipe
            raise ProducerError(
                f"{sidecar}: {sidecar.stat().st_size} bytes is more than any kickgen recipe; "
                "regenerate only kicks as kickgen wrote them"
            )
        text, source = sidecar.read_text(encoding="utf-8", errors="replace"), sidecar
    try:
        recipe = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProducerError(f"{source}: the kickgen recipe is not valid JSON ({exc.msg})") from exc
    except (ValueError, RecursionError) as exc:  # a number of over 4300 digits, deep nesting
        raise ProducerError(
            f"{source}: the kickgen recipe is not JSON that kickgen writes"
        ) from exc
    if (
        not isinstance(recipe, dict)
        or recipe.get("recipe") != RECIPE_VERSION
        or "rows" not in recipe
    ):
        raise ProducerError(f"{source}: not a kickgen recipe of version {RECIPE_VERSION}")
    size = len(json.dumps(recipe, separators=(",", ":"), sort_keys=True).encode())
    if size > MAX_COMMENT_BYTES:
        raise ProducerError(
            f"{source}: its recipe is {size} bytes, more than the {MAX_COMMENT_BYTES} kickgen writes; "
            "regenerate only kicks as kickgen wrote them"
        )
    check_recipe(recipe, source)
    return recipe


# --------------------------------------------------------------------------- regenerate


def check_model(pipe, recipe: dict[str, object] | Recipe, source: Path | None = None) -> None:
    """Raise when the pipeline's checkpoints are not the ones that made the kick."""
    model = (recipe if isinstance(recipe, Recipe) else check_recipe(recipe, source)).model
    have = model_version(pipe)
    for part in MODEL_PARTS:
        want, got = model[part], have.get(part)
        if (want is None) != (got is None) or (want and got and want["sha256"] != got["sha256"]):
            w = "none (Griffin-Lim)" if want is None else f"{want['name']} sha256 {want['sha256']}"
            g = "none (Griffin-Lim)" if got is None else f"{got['name']} sha256 {got['sha256']}"
            raise ProducerError(
                f"{source} was made with {part} checkpoint {w}, but the loaded one is {g}: "
                "pass the checkpoints that made it (or --no-vocoder if it used Griffin-Lim)"
            )


def render_recipe_raw(
    pipe,
    recipe: dict[str, object] | Recipe,
    source: Path | None = None,
    audio: dict[str, torch.Tensor] | None = None,
    callback: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Re-run a recipe's batch and return its kick's raw vocoder output ``(88200,)``.

    ``audio`` holds the waveforms of init kicks kept in memory (``memory:…`` names);
    ``callback(i, n)`` runs after each sampler step (an exception it raises stops the run).
    """
    r = recipe if isinstance(recipe, Recipe) else check_recipe(recipe, source)
    audio = dict(audio or {})
    for name, sha in r.init.items():
        if is_memory_name(name):
            if name not in audio or init_sha256(name) != sha:
                where = f"{source}: " if source is not None else ""
                raise ProducerError(
                    f"{where}its init kick {name} was an upload held in memory only and is gone: upload it again"
                )
            continue
        if not Path(name).is_file():
            raise ProducerError(
                f"{source}: its init audio {name} is gone: restore it to regenerate"
            )
        if file_sha256(name) != sha:
            raise ProducerError(
                f"{source}: its init audio {name} has changed since (sha256 {sha} expected)"
            )
    return render_rows(pipe, r.rows, r.settings, callback=callback, audio=audio).raw[r.index]


def render_recipe(
    pipe,
    recipe: dict[str, object] | Recipe,
    source: Path | None = None,
    audio: dict[str, torch.Tensor] | None = None,
) -> np.ndarray:
    """Re-run a recipe's batch and return its kick, float32 ``(L,)`` at 44.1 kHz
    (:func:`render_recipe_raw`, then the recipe's output stage)."""
    r = recipe if isinstance(recipe, Recipe) else check_recipe(recipe, source)
    return finish(render_recipe_raw(pipe, r, source, audio), r.hygiene)


def regenerate(pipe, path: str | Path, output: str | Path) -> tuple[Path, bool]:
    """Regenerate the kick of ``path`` into ``output``; returns ``(output, bit-identical samples?)``."""
    path = Path(path)
    recipe = read_recipe(path)
    parsed = check_recipe(recipe, path)
    check_model(pipe, parsed, path)
    wave = render_recipe(pipe, parsed, path)
    written = write_kick(output, wave, recipe, parsed.fmt, parsed.sample_rate)
    a, _ = sf.read(str(path), dtype="float64", always_2d=False)
    b, _ = sf.read(str(written), dtype="float64", always_2d=False)
    return written, bool(a.shape == b.shape and np.array_equal(a, b))
