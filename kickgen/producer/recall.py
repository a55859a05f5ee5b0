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
the kick, renders the batch again and writes the kick with the same format.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from kickgen import __version__
from kickgen.audio import SAMPLE_RATE, check_finite_output, resample
from kickgen.output import target_of, write_atomically
from kickgen.producer.engine import ProducerError, Row, Settings, file_sha256, render_rows
from kickgen.producer.hygiene import HygieneConfig, apply_hygiene

RECIPE_VERSION = 1
FORMATS = {
    "float32": "FLOAT",
    "pcm16": "PCM_16",
    "pcm24": "PCM_24",
}  # same names as `generate --format`
SAMPLE_RATES = (44_100, 48_000)
MAX_COMMENT_BYTES = 32_000  # libsndfile silently drops a longer LIST/INFO comment


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
        },  # fmt: skip
        "rows": [r.to_dict() for r in rows],
        "index": index,
        "hygiene": None if hygiene is None else hygiene.to_dict(),
        "format": fmt,
        "sample_rate": sample_rate,
        "model": model_version(pipe),
        "init": {n: file_sha256(n) for n in inits if Path(n).is_file()},
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
    settings = Settings(float(cfg_scale), steps, sampler, 1.0)
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


# --------------------------------------------------------------------------- WAV I/O


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
    if fmt not in FORMATS:
        raise ProducerError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    if sample_rate not in SAMPLE_RATES:
        raise ProducerError(f"sample rate {sample_rate}: use 44100 or 48000")
    path = Path(path)
    if recipe is not None:
        recipe = {**recipe, "format": fmt, "sample_rate": sample_rate}
    data = np.asarray(wave, dtype=np.float32).reshape(-1)
    if sample_rate != SAMPLE_RATE:
        data = resample(data, SAMPLE_RATE, sample_rate)
    check_finite_output(path, data)
    comment = None if recipe is None else json.dumps(recipe, separators=(",", ":"), sort_keys=True)
    if comment is not None and len(comment.encode()) > MAX_COMMENT_BYTES:
        raise ProducerError(
            f"{target_of(path)}: its recipe is {len(comment.encode())} bytes, more than the {MAX_COMMENT_BYTES} "
            "a WAV comment holds; use a shorter prompt or fewer kicks per batch (--batch-size)"
        )

    def write(tmp: Path) -> None:
        with sf.SoundFile(str(tmp), "w", sample_rate, 1, FORMATS[fmt], format="WAV") as f:
            if comment is not None:
                f.comment = comment
                rows = recipe.get("rows") or []
                prompt = str(rows[int(recipe.get("index", 0))].get("prompt", "")) if rows else ""
                if prompt:  # libsndfile refuses empty strings
                    f.title = prompt
            f.software = f"kickgen {__version__}"
            f.write(data)
        _zero_peak_timestamp(tmp)

    write_atomically(path, write)
    if sidecar and recipe is not None:
        write_sidecar(path.with_suffix(".json"), recipe)
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


def _zero_peak_timestamp(path: Path) -> None:
    """libsndfile stamps float WAVs' PEAK chunk with the time of writing; zero it so the same
    kick always gives the same bytes."""
    with open(path, "r+b") as f:
        data = f.read()
        for cid, start, size in _riff_chunks(data):
            if cid == b"PEAK" and size >= 8:
                f.seek(start + 4)  # version (4 bytes), then the timestamp (4 bytes)
                f.write(b"\0\0\0\0")


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
    """The recipe of a kickgen WAV, from its LIST/INFO comment or its ``.json`` sidecar."""
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
        text, source = sidecar.read_text(), sidecar
    try:
        recipe = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProducerError(f"{source}: the kickgen recipe is not valid JSON ({exc.msg})") from exc
    if (
        not isinstance(recipe, dict)
        or recipe.get("recipe") != RECIPE_VERSION
        or "rows" not in recipe
    ):
        raise ProducerError(f"{source}: not a kickgen recipe of version {RECIPE_VERSION}")
    return recipe


# --------------------------------------------------------------------------- regenerate


def check_model(pipe, recipe: dict[str, object], source: Path) -> None:
    """Raise when the pipeline's checkpoints are not the ones that made the kick."""
    have = model_version(pipe)
    for part, want in (recipe.get("model") or {}).items():
        got = have.get(part)
        if (want is None) != (got is None) or (want and got and want["sha256"] != got["sha256"]):
            w = "none (Griffin-Lim)" if want is None else f"{want['name']} sha256 {want['sha256']}"
            g = "none (Griffin-Lim)" if got is None else f"{got['name']} sha256 {got['sha256']}"
            raise ProducerError(
                f"{source} was made with {part} checkpoint {w}, but the loaded one is {g}: "
                "pass the checkpoints that made it (or --no-vocoder if it used Griffin-Lim)"
            )


def render_recipe(pipe, recipe: dict[str, object], source: Path | None = None) -> np.ndarray:
    """Re-run a recipe's batch and return its kick, float32 ``(L,)`` at 44.1 kHz."""
    rows = [Row.from_dict(r) for r in recipe["rows"]]  # type: ignore[union-attr]
    for name, sha in (recipe.get("init") or {}).items():
        if not Path(name).is_file():
            raise ProducerError(
                f"{source}: its init audio {name} is gone: restore it to regenerate"
            )
        if file_sha256(name) != sha:
            raise ProducerError(
                f"{source}: its init audio {name} has changed since (sha256 {sha} expected)"
            )
    settings = Settings(**recipe["settings"])  # type: ignore[arg-type]
    hygiene = None if recipe.get("hygiene") is None else HygieneConfig(**recipe["hygiene"])  # type: ignore[arg-type]
    index = int(recipe["index"])  # type: ignore[arg-type]
    out = render_rows(pipe, rows, settings)
    return finish(out.raw[index], hygiene)


def regenerate(pipe, path: str | Path, output: str | Path) -> tuple[Path, bool]:
    """Regenerate the kick of ``path`` into ``output``; returns ``(output, bit-identical samples?)``."""
    path = Path(path)
    recipe = read_recipe(path)
    check_model(pipe, recipe, path)
    wave = render_recipe(pipe, recipe, path)
    fmt = str(recipe.get("format", "float32"))
    rate = int(recipe.get("sample_rate", SAMPLE_RATE))  # type: ignore[arg-type]
    written = write_kick(output, wave, recipe, fmt, rate)
    a, _ = sf.read(str(path), dtype="float64", always_2d=False)
    b, _ = sf.read(str(written), dtype="float64", always_2d=False)
    return written, bool(a.shape == b.shape and np.array_equal(a, b))
