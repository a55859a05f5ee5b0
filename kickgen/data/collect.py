"""Collect kicks from a sample library, and the source manifest every collector writes.

A *source manifest* (``sources.csv``) lists audio files that are kicks, one row per file, with
where it came from (source, package, kit, licence), the keywords its names carry, its group
(all velocity layers and variants of one drum share a group) and its kind (real, drumsynth,
kicker, synth). ``kickgen data collect``, ``fetch-open`` and ``synth`` write one; ``build`` reads
them. Source files are only ever read.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from kickgen.audio import SAMPLE_RATE, AudioError, read_audio, resample, to_mono
from kickgen.descriptors import onset_index
from kickgen.errors import KickgenError
from kickgen.keywords import keywords_from_text

AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".aif", ".aiff"})
MIN_BYTES = 5_000  # the reference's size bounds for library files
MAX_BYTES = 1_000_000
MIN_SECONDS = 0.03  # shortest source accepted: a kick's body needs a few 40-100 Hz cycles
SILENT_DBFS = -60.0  # a source whose raw peak is below this is silent
HIT_FRAME = 0.010  # s, RMS frames used to count hits
HIT_LOW_DB, HIT_HIGH_DB = -30.0, -12.0  # a new hit: down below -30 dB, then back above -12 dB

COPY_WINDOW_S = 0.4  # s after the attack that find_copies compares
COPY_LAG_S = 0.002  # s by which the attacks of two copies may disagree
COPY_CORRELATION = 0.97  # copies correlate above this; distinct drums of the open sources <= 0.94

_KICK_NAME = re.compile(r"kick|(?<![a-z])bd(?![a-z])|bass[ _-]?drum")
_OTHER_DRUM = re.compile(r"snare|hat|clap|tom|cymbal|crash|ride|perc|rim|shaker|cowbell|conga")
_LOOP_NAME = re.compile(r"loop|bpm|(?<![a-z])break(?:beat)?s?(?![a-z])")


@dataclass
class SourceClip:
    """One kick file and what is known about it (a row of a source manifest)."""

    file: str  # absolute path of the audio file
    source: str  # user, hydrogen, lmms, sonic-pi, exadrums, freepats, drumsynth, kicker, synth
    package: str  # Debian package it came from ("" for a user library or kickgen's synth)
    kit: str  # drum kit, preset folder or library folder
    licence: str  # licence of the file (from the package's copyright file)
    name: str  # the text its keywords come from (instrument name, file name, family)
    keywords: str  # space-separated keywords from the names and curated kit keywords
    group: str  # recordings and variants of one drum share a group (kept in one split)
    kind: str  # real | drumsynth | kicker | synth
    params: str = ""  # synthesis parameters of rendered kinds


SOURCE_FIELDS = tuple(f.name for f in fields(SourceClip))


class SourceError(KickgenError):
    """A source manifest is missing or malformed."""


def write_sources(path: str | Path, clips: list[SourceClip]) -> Path:
    """Write a source manifest atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=SOURCE_FIELDS)
        writer.writeheader()
        for clip in clips:
            writer.writerow(asdict(clip))
    tmp.replace(path)
    return path


def read_sources(path: str | Path) -> list[SourceClip]:
    """Read a source manifest written by :func:`write_sources`."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(
            f"{path}: source manifest not found; create it with `kickgen data collect`"
        )
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [f for f in SOURCE_FIELDS if f != "params" and f not in (reader.fieldnames or [])]
        if missing:
            raise SourceError(
                f"{path}: not a source manifest (missing columns {', '.join(missing)})"
            )
        return [SourceClip(**{k: row.get(k) or "" for k in SOURCE_FIELDS}) for row in reader]


def file_digest(path: str | Path) -> str:
    """SHA-1 of a file's bytes: identical files in two kits are one recording."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def count_hits(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> int:
    """Number of separate hits in a mono waveform ``(L,)``: a one-shot has 1, a loop several.

    A hit starts when the 10 ms RMS rises above -12 dB of the loudest frame after having been
    below -30 dB since the previous hit.
    """
    frame = max(int(HIT_FRAME * sample_rate), 1)
    n = wave.size // frame
    if n == 0:
        return 0
    rms = np.sqrt(np.mean(wave[: n * frame].reshape(n, frame) ** 2, axis=1))
    db = 20.0 * np.log10(np.maximum(rms / max(rms.max(), 1e-12), 1e-12))
    hits, armed = 0, True
    for level in db:
        if armed and level >= HIT_HIGH_DB:
            hits += 1
            armed = False
        elif level < HIT_LOW_DB:
            armed = True
    return hits


def load_source(path: str | Path) -> np.ndarray:
    """Read a source file as a mono 44.1 kHz float32 ``(L,)`` and check it is one usable kick.

    Raises :class:`kickgen.audio.AudioError` with a one-line reason when the file is
    unreadable, out of the loaders' bounds (sample rate, length), shorter than
    :data:`MIN_SECONDS`, silent or holds several hits (a loop).
    """
    data, sr = read_audio(path)
    if data.shape[0] < MIN_SECONDS * sr:
        raise AudioError(
            f"{path}: {1000 * data.shape[0] / sr:.0f} ms long, shorter than the "
            f"{1000 * MIN_SECONDS:.0f} ms of a recorded kick"
        )
    mono = resample(to_mono(data), sr, SAMPLE_RATE)
    peak = float(np.abs(mono).max()) if mono.size else 0.0
    if peak <= 10.0 ** (SILENT_DBFS / 20.0):
        raise AudioError(f"{path}: silent (peak below {SILENT_DBFS:g} dBFS)")
    hits = count_hits(mono)
    if hits > 1:
        raise AudioError(f"{path}: {hits} hits, not a one-shot (a loop?)")
    return mono


def is_kick_path(path: Path, root: Path | None = None) -> bool:
    """The file name, or a folder name below ``root``, says kick, bd or bass drum, and the file
    name does not name another drum (a snare in a "Kicks" folder is still a snare)."""
    stem = path.stem.lower()
    if _KICK_NAME.search(stem):
        return True
    if _OTHER_DRUM.search(stem):
        return False
    folders = path.parent.relative_to(root).parts if root else path.parent.parts[-2:]
    return bool(_KICK_NAME.search(" ".join(f.lower() for f in folders)))


def is_loop_path(path: Path) -> bool:
    """Loops and BPM-tagged files: "loop", "bpm" or "break(s)" in the file name."""
    return bool(_LOOP_NAME.search(path.stem.lower()))


_COUNTER = re.compile(r"(?<=[a-z]{3})\d{1,2}\b|(?<=[a-z]{2})\d\b")


def name_keywords(text: str) -> str:
    """Space-separated keywords of a name; 1-2 digits glued to a word are counters
    ("kick_distorted01", "bd1"), unlike "tr808"."""
    return " ".join(keywords_from_text(_COUNTER.sub("", text.lower())))


def named_clip(
    path: Path, source: str, package: str, kit: str, licence: str, name: str, words: str,
    group: str, kind: str = "real", params: str = "",
) -> SourceClip:  # fmt: skip
    """A manifest row of an open source's file whose keywords are :func:`name_keywords` of
    ``words`` (its name, plus curated words, less what names only a contributor or a bank)."""
    return SourceClip(str(path), source, package, kit, licence, name, name_keywords(words), group,
                      kind, params)  # fmt: skip


def attack_window(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first ``COPY_WINDOW_S`` of ``wave`` ``(L,)`` from its onset, zero-padded: float64."""
    start = int(onset_index(wave)[0])
    out = np.zeros(int(round(COPY_WINDOW_S * sample_rate)))
    part = np.asarray(wave[start : start + out.size], dtype=np.float64)
    out[: part.size] = part
    return out


def find_copies(
    waves: list[np.ndarray], groups: list[str], sample_rate: int = SAMPLE_RATE
) -> dict[int, tuple[int, float]]:
    """Recordings that copy an earlier one: ``{index: (index of the original, correlation)}``.

    Two recordings are one when their attack windows (:func:`attack_window`) correlate above
    ``COPY_CORRELATION`` (normalised cross-correlation, either polarity, best lag within
    ``COPY_LAG_S``): a copy re-encoded, resampled, trimmed or at another gain. Velocity layers
    of one drum correlate as well (0.97-1.0), so recordings of one group are never compared;
    the first of a set of copies is the original. ``waves`` are mono ``(L,)`` at ``sample_rate``.
    """
    windows = [attack_window(w, sample_rate) for w in waves]
    size = 2 * windows[0].size if windows else 0
    spectra = [np.fft.rfft(w, size) for w in windows]
    norms = [float(np.linalg.norm(w)) for w in windows]
    lag = int(round(COPY_LAG_S * sample_rate))
    copies: dict[int, tuple[int, float]] = {}
    for i in range(len(waves)):
        for j in range(i):
            if j in copies or groups[j] == groups[i] or norms[i] * norms[j] <= 0:
                continue
            xc = np.fft.irfft(spectra[i] * np.conj(spectra[j]), size)
            best = max(np.abs(xc[: lag + 1]).max(), np.abs(xc[-lag:]).max()) if lag else abs(xc[0])
            corr = float(best / (norms[i] * norms[j]))
            if corr >= COPY_CORRELATION:
                copies[i] = (j, corr)
                break
    return copies


_GROUP_STRIP = re.compile(
    r"(?:[-_ .]*(?:(?<!\d)\d{1,2}|soft(?:est)?|med(?:ium)?|hard(?:est)?|v\d+|vel\d*|layer\d*|rr\d*))+$"
)


def group_key(root: Path, path: Path) -> str:
    """Velocity layers and round-robins of one drum in a folder share a group: the relative
    folder plus the file stem without trailing numbers and velocity words."""
    rel = path.relative_to(root)
    stem = _GROUP_STRIP.sub("", path.stem.lower()) or path.stem.lower()
    return "/".join([*rel.parent.parts, stem])


def collect_library(
    dirs: list[str | Path],
    *,
    min_bytes: int = MIN_BYTES,
    max_bytes: int = MAX_BYTES,
    check_audio: bool = True,
    on_file=None,
) -> tuple[list[SourceClip], list[tuple[str, str]]]:
    """Walk sample-library folders for kicks like the reference (see the module docstring).

    Returns the kicks found and ``(file, reason)`` for every candidate skipped. Nothing is
    written and no source file is modified. ``on_file`` is called once per candidate (progress).
    """
    clips: list[SourceClip] = []
    skipped: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for d in dirs:
        root = Path(d).expanduser().resolve()
        if not root.is_dir():
            raise SourceError(f"{d}: not a folder; pass the folders of your sample library")
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fname in sorted(filenames):
                path = Path(dirpath) / fname
                if path.suffix.lower() not in AUDIO_EXTENSIONS or not is_kick_path(path, root):
                    continue
                if on_file:
                    on_file(path)
                if is_loop_path(path):
                    skipped.append((str(path), "loop or BPM-tagged name"))
                    continue
                try:
                    size = path.stat().st_size  # follows links: a broken or looping one fails
                except OSError as exc:
                    skipped.append(
                        (str(path), f"cannot open ({exc.strerror or exc}: a broken link?)")
                    )
                    continue
                if not min_bytes <= size <= max_bytes:
                    skipped.append(
                        (str(path), f"size {size} bytes outside {min_bytes}-{max_bytes}")
                    )
                    continue
                if check_audio:
                    try:
                        load_source(path)
                    except AudioError as exc:
                        skipped.append((str(path), str(exc).removeprefix(f"{path}: ")))
                        continue
                try:
                    digest = file_digest(path)
                except OSError as exc:
                    skipped.append((str(path), f"cannot read ({exc.strerror or exc})"))
                    continue
                if digest in seen:
                    skipped.append((str(path), f"duplicate of {seen[digest]}"))
                    continue
                seen[digest] = str(path)
                rel = path.relative_to(root).with_suffix("")
                name = " ".join(rel.parts)
                clips.append(
                    SourceClip(
                        file=str(path),
                        source="user",
                        package="",
                        kit=root.name,
                        licence="user library",
                        name=name,
                        keywords=" ".join(keywords_from_text(name)),
                        group=f"user:{root.name}/{group_key(root, path)}",
                        kind="real",
                    )
                )
    return clips, skipped
