"""Sample packs: ``kickgen pack --prompts prompts.txt -n 8 --out Pack/``.

One folder, ready to drag into a sampler:

    Pack/
      01-punchy_808-01.wav ...   n kicks per prompt line, named <prompt no>-<keywords>-<kick no>
      manifest.csv                one row per WAV: prompt, seed, key, settings, measured levels, root note
      Pack.sfz                    SFZ mapping: kick k on MIDI key 36 + k (36 = GM bass drum, c2),
                                  its root note as pitch_keycenter

Prompt p's kicks use seeds ``seed + p·n·K`` onwards (K = best-of), so every kick of a pack has its
own seed. Each WAV carries its recipe (``kickgen regenerate`` reproduces it). Hygiene is on by
default (decay-aware fade, onset at the start, no DC, 0.95 peak); ``--key F`` tunes every kick.
:func:`pack_zip` gives the same files as one zip, built in memory (the server's crate export).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import unicodedata
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kickgen.audio import SAMPLE_RATE
from kickgen.descriptors import describe
from kickgen.keywords import keywords_from_text
from kickgen.output import OutputTransaction, make_folder
from kickgen.producer.engine import ProducerError
from kickgen.producer.hygiene import HygieneConfig, integrated_loudness, to_db, true_peak
from kickgen.producer.kicks import DEFAULT_BATCH, Kick, generate_kicks, resolve_seed
from kickgen.producer.recall import FORMATS, SAMPLE_RATES, kick_bytes, write_kick
from kickgen.producer.tuning import note_label, note_of
from kickgen.prompts import analyze_prompt

FIRST_KEY = 36  # MIDI note of the first kick: General MIDI's bass drum 1 (c2 in SFZ's naming)
LAST_KEY = 127
NOTE_NAMES = ("c", "c#", "d", "d#", "e", "f", "f#", "g", "g#", "a", "a#", "b")
MANIFEST_FIELDS = (
    "file", "prompt", "seed", "key", "note", "cfg_scale", "steps", "sampler", "format",
    "sample_rate", "duration_s", "peak_dbfs", "true_peak_dbtp", "lufs", "onset_ms",
    "decay_40_s", "body_pitch_hz", "root_note", "pitch_keycenter", "checks_passed",
)  # fmt: skip


@dataclass
class Pack:
    """What :func:`make_pack` wrote."""

    directory: Path
    wavs: list[Path]
    manifest: Path
    sfz: Path
    seed: int  # first seed of the pack


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a text file, one per line; blank lines and ``#`` comments are skipped."""
    path = Path(path)
    try:
        lines = path.read_text(
            encoding="utf-8-sig"
        ).splitlines()  # -sig: a leading BOM is no keyword
    except OSError as exc:
        raise ProducerError(f"cannot read prompts file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ProducerError(f"prompts file {path} is not UTF-8 text: one prompt per line") from exc
    for number, line in enumerate(lines, 1):
        if any(ord(c) < 32 and c != "\t" for c in line):
            raise ProducerError(
                f"prompts file {path}, line {number}: holds a control character (NUL?); write plain text"
            )
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise ProducerError(f"prompts file {path} holds no prompts: write one prompt per line")
    return prompts


def note_name(key: int) -> str:
    """SFZ note name of a MIDI key (60 = c4)."""
    return f"{NOTE_NAMES[key % 12]}{key // 12 - 1}"


def slug(prompt: str, vocab: Sequence[str] | None = None) -> str:
    """File-name part of a prompt: its keywords joined by ``_`` (``uncond`` for none); with
    ``vocab``, only the keywords the model reads from it (ignored words never name a file)."""
    keywords = (
        keywords_from_text(prompt) if vocab is None else analyze_prompt(prompt, vocab).matched
    )
    words = "_".join(keywords)
    # letters, digits, "_" and "-" only: no separators, controls or bidirectional overrides
    return re.sub(r"[^\w-]+", "", words).strip("_-")[:60] or "uncond"


def one_line(text: str) -> str:
    """``text`` as one line of plain text for the manifest and the SFZ's comments: control,
    format (bidirectional overrides, zero-width) and separator characters, and lone surrogates,
    become single spaces."""
    return " ".join("".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in text).split())


def check_pack_args(prompts: Sequence[str], n: int, fmt: str, sample_rate: int) -> None:
    if not prompts:
        raise ProducerError("no prompts: give at least one prompt line")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ProducerError(f"n={n!r}: ask for at least 1 kick per prompt")
    total = len(prompts) * n
    if total > LAST_KEY - FIRST_KEY + 1:
        raise ProducerError(
            f"{len(prompts)} prompts × {n} kicks = {total} kicks, more than the "
            f"{LAST_KEY - FIRST_KEY + 1} MIDI keys from {FIRST_KEY} to {LAST_KEY}: use fewer prompts or a smaller -n"
        )
    if fmt not in FORMATS:
        raise ProducerError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
    if sample_rate not in SAMPLE_RATES:
        raise ProducerError(f"sample rate {sample_rate}: use 44100 or 48000")


def prepare_pack_dir(out_dir: Path, force: bool) -> bool:
    """Create ``out_dir``; refuse a non-empty one unless ``force``. Returns whether it was created."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ProducerError(f"--out {out_dir} is a file: give a folder for the pack")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ProducerError(
            f"--out {out_dir} is not empty: choose a new folder, or --force to add to it"
        )
    created = not out_dir.exists()
    make_folder(out_dir, ProducerError, "choose another --out")
    return created


def make_pack(
    pipe,
    prompts: Sequence[str],
    n: int = 8,
    out_dir: str | Path = "Pack",
    seed: int | None = None,
    cfg_scale: float = 3.0,
    steps: int = 50,
    sampler: str = "ddim",
    hygiene: HygieneConfig | None = HygieneConfig(),  # noqa: B008 (frozen dataclass)
    best_of: int = 1,
    fmt: str = "pcm24",
    sample_rate: int = SAMPLE_RATE,
    plot: bool = False,
    sidecar: bool = False,
    force: bool = False,
    batch_size: int = DEFAULT_BATCH,
    callback: Callable[[int, int], None] | None = None,
) -> Pack:
    """Generate ``n`` kicks per prompt and write the pack (see the module docstring).

    Everything is generated before anything is written, and written all or none: a failed run
    leaves the folder exactly as it was (files it would have replaced included).
    ``callback(done, total)`` counts sampler steps over the whole pack.
    """
    prompts = list(prompts)
    check_pack_args(prompts, n, fmt, sample_rate)
    if hygiene is not None:
        hygiene.check()
    seed = resolve_seed(seed, len(prompts) * n * best_of)
    out_dir = Path(out_dir)
    created = prepare_pack_dir(out_dir, force)
    try:
        kicks: list[tuple[int, str, Kick]] = []
        per_prompt = math.ceil(n * best_of / batch_size) * steps  # sampler steps per prompt
        for p, prompt in enumerate(prompts):

            def cb(done: int, _total: int, _base: int = p * per_prompt) -> None:
                if callback is not None:
                    callback(_base + done, len(prompts) * per_prompt)

            batch = generate_kicks(
                pipe, prompt, n=n, seed=seed + p * n * best_of, cfg_scale=cfg_scale, steps=steps,
                sampler=sampler, hygiene=hygiene, best_of=best_of, batch_size=batch_size, callback=cb,
            )  # fmt: skip
            kicks.extend((p, prompt, k) for k in batch)
        named = []
        for k, (p, prompt, kick) in enumerate(kicks):
            j = sum(1 for q, _, _ in kicks[:k] if q == p)
            named.append((f"{p + 1:02d}-{slug(prompt, pipe.vocab)}-{j + 1:02d}.wav", prompt, kick))
        pack_name = out_dir.resolve().name or "pack"
        files = pack_contents(named, fmt, sample_rate, pack_name, sidecar, wavs=False)
        # All files or none: with --force, files of an earlier pack that this one replaces come
        # back if any write fails, so the folder, its manifest and .sfz stay consistent.
        with OutputTransaction() as out:
            for name, _, kick in named:
                write_kick(out.stage(out_dir / name), kick.wave, kick.recipe, fmt, sample_rate)
            for name, data in files.items():
                out.stage(out_dir / name).write_bytes(data)
            if plot:
                from kickgen.producer.plot import plot_kick

                for name, prompt, kick in named:
                    title = f"{prompt}  seed {kick.seed}"
                    plot_kick(kick.wave, out.stage((out_dir / name).with_suffix(".png")), title)
            out.commit()
    except BaseException:
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise
    wavs = [out_dir / name for name, _, _ in named]
    sfz = next(out_dir / name for name in files if name.endswith(".sfz"))
    return Pack(out_dir, wavs, out_dir / "manifest.csv", sfz, seed)


def pack_contents(
    named: Sequence[tuple[str, str, Kick]],
    fmt: str = "pcm24",
    sample_rate: int = SAMPLE_RATE,
    name: str = "pack",
    sidecar: bool = False,
    wavs: bool = True,
) -> dict[str, bytes]:
    """The files of a pack, ``{file name: bytes}``: one WAV per ``(file name, prompt, kick)`` in key
    order (kick k on MIDI key 36 + k), their ``.json`` recipes when ``sidecar``, ``manifest.csv``
    and ``NAME.sfz`` (``wavs=False``: all but the WAVs, which :func:`make_pack` writes itself with
    :func:`~kickgen.producer.recall.write_kick`). :func:`pack_zip` puts them into a zip."""
    if not named:
        raise ProducerError("a pack needs at least one kick")
    if len(named) > LAST_KEY - FIRST_KEY + 1:
        raise ProducerError(
            f"{len(named)} kicks: a pack maps at most {LAST_KEY - FIRST_KEY + 1} kicks to MIDI keys {FIRST_KEY}-{LAST_KEY}"
        )
    files: dict[str, bytes] = {}
    rows = []
    for k, (file, prompt, kick) in enumerate(named):
        if wavs:
            files[file] = kick_bytes(kick.wave, kick.recipe, fmt, sample_rate, file)
        if sidecar:
            recipe = {**kick.recipe, "format": fmt, "sample_rate": sample_rate}
            text = json.dumps(recipe, indent=1, sort_keys=True) + "\n"
            files[str(Path(file).with_suffix(".json"))] = text.encode()
        rows.append(_manifest_row(Path(file), prompt, kick, FIRST_KEY + k, fmt, sample_rate))
    manifest = io.StringIO()
    writer = csv.DictWriter(manifest, fieldnames=MANIFEST_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    files["manifest.csv"] = manifest.getvalue().encode()
    files[f"{name}.sfz"] = sfz_text(rows).encode()
    return files


def pack_zip(
    named: Sequence[tuple[str, str, Kick]],
    fmt: str = "pcm24",
    sample_rate: int = SAMPLE_RATE,
    name: str = "kickgen-crate",
) -> bytes:
    """A pack (:func:`pack_contents`, recipes as sidecars too) as the bytes of one zip, every file
    inside the folder ``NAME/``; built in memory."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for file, data in pack_contents(named, fmt, sample_rate, name, sidecar=True).items():
            info = zipfile.ZipInfo(f"{name}/{file}", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buf.getvalue()


def measure_kick(wave: np.ndarray) -> dict[str, object]:
    """What a producer reads off a finished kick ``(L,)`` at 44.1 kHz: ``duration_s``,
    ``peak_dbfs``, ``true_peak_dbtp`` (4× oversampled), ``lufs`` (BS.1770), ``onset_ms``,
    ``decay_40_s``, ``body_pitch_hz`` (:mod:`kickgen.descriptors`), ``root_note`` (``F1 −12 ct``)
    and ``pitch_keycenter`` (its MIDI note); ``""`` where silence has no value."""
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    d = describe(wave)
    lufs = integrated_loudness(wave)
    root = note_of(d["body_pitch"])
    return {
        "duration_s": round(wave.size / SAMPLE_RATE, 4),
        "peak_dbfs": round(to_db(float(np.abs(wave).max())), 2) if np.any(wave) else "",
        "true_peak_dbtp": round(to_db(true_peak(wave)), 2) if np.any(wave) else "",
        "lufs": round(lufs, 2) if math.isfinite(lufs) else "",
        "onset_ms": round(1000.0 * d["onset"], 2),
        "decay_40_s": round(d["decay_40"], 3),
        "body_pitch_hz": round(d["body_pitch"], 1),
        "root_note": note_label(d["body_pitch"]),
        "pitch_keycenter": "" if root is None else root[0],
    }


def _manifest_row(
    path: Path, prompt: str, kick: Kick, key: int, fmt: str, sample_rate: int
) -> dict[str, object]:
    settings = kick.recipe["settings"]  # type: ignore[index]
    return {
        "file": path.name,
        "prompt": one_line(prompt),
        "seed": kick.seed,
        "key": key,
        "note": note_name(key),
        "cfg_scale": settings["cfg_scale"],
        "steps": settings["steps"],
        "sampler": settings["sampler"],
        "format": fmt,
        "sample_rate": sample_rate,
        **measure_kick(kick.wave),
        "checks_passed": f"{sum(kick.checks.values())}/{len(kick.checks)}" if kick.checks else "",
    }


def sfz_text(rows: Sequence[dict[str, object]]) -> str:
    """SFZ mapping: one ``<region>`` per WAV on its own key, one ``<group>`` per prompt.

    A kick with a measured root note gets ``pitch_keycenter`` (its body pitch as a MIDI note) and
    ``pitch_keytrack=0``: each key still plays its kick as it is, and a producer who spreads a kick
    over the keyboard (keytrack 100) plays it in tune."""
    lines = [
        f"// kickgen pack: {len(rows)} kicks, MIDI keys {rows[0]['key']}-{rows[-1]['key']}",
        "<control>",
        "default_path=./",
        "<global>",
        "loop_mode=one_shot",
    ]
    prompt = None
    for r in rows:
        if r["prompt"] != prompt:
            prompt = r["prompt"]
            comment = re.sub(r"[<>=*/\\]+", " ", str(prompt))  # no opcode, header or comment end
            lines += [f"// prompt: {one_line(comment)}", "<group>"]
        region = f"<region> sample={r['file']} key={r['key']}"
        if r.get("pitch_keycenter", "") != "":
            region += f" pitch_keycenter={r['pitch_keycenter']} pitch_keytrack=0"
        lines.append(region)
    return "\n".join(lines) + "\n"
