"""Build the training corpus: sources → aligned, checked, labelled clips, splits, vocabulary, cache.

One call of :func:`build_corpus` (``kickgen data build``) does everything, deterministically for
a given seed and whatever the number of workers:

1. **Sources**: the open Debian kicks (``--open CACHE``, see :mod:`kickgen.data.open_sources`),
   a producer's library (``--library DIR``), source manifests (``--sources CSV``).
2. **Clips**: each source file as it is; ``augment`` variants of every real recording
   (:mod:`kickgen.data.augment`); ``synth`` procedural kicks (:mod:`kickgen.data.synth`).
3. **Alignment and the reference preprocessing**: the leading silence is cut so the onset sits
   ``PREROLL_S`` (1 ms) into the clip, then resample/pad or trim to 2 s, -1 dBFS peak, 0.2 s fade.
4. **Repair and checks**: a real recording with digital clipping (flat runs at its peak) is
   repaired by :func:`declip` first, and the manifest says so. Every clip is measured
   (:mod:`kickgen.descriptors`); a clip whose onset is later than ``MAX_ONSET_S`` (5 ms), or
   that is silent or clipped, is dropped and reported.
5. **Keywords**: the names' keywords without the measurable ones, plus the keywords its
   measurements earn (:func:`kickgen.descriptors.measured_keywords`). The vocabulary keeps the
   keywords found in at least ``min_count`` groups (distinct drums, so that augmented copies
   do not count twice); "kick" is dropped (every clip is one).
6. **Splits by group**: within each kind of source, groups are ordered by a seeded hash and the
   first ``val_fraction`` of them go to validation, with all their layers, variants and
   augmentations. Real recordings are held out kit by kit (:func:`hold_out_real`): at least
   ``val_real_fraction`` of their groups, ``val_real`` recordings and ``val_kits`` kits, so the
   real validation figures rest on many drums, not a handful of layers of one.
7. **Output**: ``clips/{kind}/{id}.wav`` (float32), ``metadata.csv``, ``vocab.json``,
   ``cache/{train,val}.pt`` (float16 waves and log-mels) and ``build_report.json``.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import multiprocessing
import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from kickgen.audio import (
    N_FRAMES,
    N_MELS,
    NUM_SAMPLES,
    SAMPLE_RATE,
    AudioError,
    log_mel,
    preprocess,
    write_wav,
)
from kickgen.data import augment, synth
from kickgen.data.collect import SourceClip, collect_library, load_source, read_sources
from kickgen.descriptors import (
    CEILING_TOLERANCE,
    DESCRIPTOR_NAMES,
    MEASURED_KEYWORDS,
    describe,
    measured_keywords,
    onset_index,
)
from kickgen.errors import KickgenError
from kickgen.progress import Progress

PREROLL_S = 0.001  # s of lead-in kept before the onset
MAX_ONSET_S = 0.005  # s: every clip's onset must be this early
DECLIP_MAX = 0.25  # declip(): apex at most 25 % above the clipped peak (soft cap)
CORPUS_STOPWORDS = frozenset({"kick"})  # every clip is a kick: the word tells nothing
METADATA_FIELDS = (
    "id", "file", "source", "package", "kit", "licence", "keywords", "split", "group", "kind",
    "name", "name_keywords", "origin", "augmentation", *DESCRIPTOR_NAMES,
)  # fmt: skip


class BuildError(KickgenError):
    """The corpus could not be built."""


@dataclass
class BuildConfig:
    """What ``kickgen data build`` makes; the defaults build the shipped corpus."""

    out: Path  # corpus folder
    open_cache: Path | None = None  # fetch and use the open Debian kicks, cached here
    library: tuple[Path, ...] = ()  # sample-library folders to collect
    sources: tuple[Path, ...] = ()  # source manifests (collect / fetch-open / synth output)
    synth: int = 3800  # procedural kicks
    augment: int = 12  # augmented variants per real recording
    val_fraction: float = 0.05  # share of each kind's groups held out
    val_real_fraction: float = 0.15  # share of the real recordings' groups held out ...
    val_real: int = 12  # ... and at least this many real recordings ...
    val_kits: int = 4  # ... from at least this many kits
    min_count: int = 5  # a keyword joins the vocabulary when found in this many groups
    seed: int = 0
    workers: int = 2  # processes; results do not depend on it


@dataclass
class Task:
    """One clip to make."""

    id: str
    kind: str  # real | augmented | drumsynth | kicker | synth
    seed: int
    source: SourceClip | None = None
    variant: int = 0
    origin: str = ""  # id of the recording an augmented clip comes from


@dataclass
class ClipResult:
    task: Task
    wave: np.ndarray | None = None  # float16 (88200,)
    log_mel: np.ndarray | None = None  # float16 (128, 173)
    descriptors: dict[str, float] = field(default_factory=dict)
    augmentation: str = ""
    family: str = ""  # style family of a procedural kick
    error: str = ""


# --------------------------------------------------------------------------- clip making


def align_onset(wave: np.ndarray, preroll: float = PREROLL_S) -> np.ndarray:
    """Cut leading silence so the onset sits ``preroll`` s into the clip; the kept lead-in is
    faded in (raised cosine) so the cut makes no click. ``(L,)`` → ``(L',)``."""
    onset = int(onset_index(wave)[0])
    keep = int(round(preroll * SAMPLE_RATE))
    start = max(onset - keep, 0)
    out = np.array(wave[start:], dtype=np.float64)
    lead = onset - start
    if lead > 0:
        out[:lead] *= 0.5 - 0.5 * np.cos(np.pi * np.arange(lead) / lead)
    return out


def finish_clip(wave: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """Align, apply the reference preprocessing and check: float32 ``(88200,)`` and descriptors.

    Raises :class:`AudioError` when the clip is silent, clipped or its onset is late.
    """
    if not np.isfinite(wave).all():
        raise AudioError("not finite")
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak <= 1e-3:  # -60 dBFS
        raise AudioError("silent (peak below -60 dBFS)")
    clip = preprocess(align_onset(wave / peak).astype(np.float32), SAMPLE_RATE)
    desc = describe(clip)
    if desc["silent"]:
        raise AudioError("silent after preprocessing")
    if desc["clipped"]:
        raise AudioError(f"clipped ({desc['clip_fraction']:.2%} of samples at the peak)")
    if desc["onset"] > MAX_ONSET_S:
        raise AudioError(f"onset at {desc['onset'] * 1000:.1f} ms after alignment")
    return clip, desc


def declip(wave: np.ndarray) -> tuple[np.ndarray, int]:
    """Repair digital clipping: every run of >= 2 samples held at the peak becomes a parabola
    that leaves the run with the slopes it entered and left with, its apex softly capped at
    ``DECLIP_MAX`` (25 %) above the peak so that hard-clipped designs stay close to their sound.
    Returns the repaired copy ``(L,)`` and the number of samples changed."""
    mag = np.abs(wave)
    peak = float(mag.max()) if wave.size else 0.0
    at_peak = mag >= peak * (1.0 - CEILING_TOLERANCE)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], at_peak.astype(np.int8), [0]])))
    out = np.array(wave, dtype=np.float64)
    changed = 0
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        length = stop - start
        if length < 2:
            continue
        slopes = []
        if start >= 1:
            slopes.append(abs(wave[start] - wave[start - 1]))
        if stop < wave.size:
            slopes.append(abs(wave[stop - 1] - wave[stop]))
        half = length / 2.0 + 0.5
        raw = max(float(np.mean(slopes)) if slopes else 0.0, 1e-3 * peak) * half / 2.0
        height = DECLIP_MAX * peak * math.tanh(raw / (DECLIP_MAX * peak))  # soft cap
        u = (np.arange(length) + 0.5 - length / 2.0) / half  # (-1, 1) across the run
        out[start:stop] = np.sign(wave[start]) * (peak + height * (1.0 - u**2))
        changed += length
    return out, changed


@functools.lru_cache(maxsize=64)
def _cached_source(path: str) -> tuple[np.ndarray, int]:
    """A source file, loaded and checked, with digital clipping repaired (:func:`declip`)."""
    wave = load_source(path)
    if describe(wave)["clipped"]:
        return declip(wave)
    return wave, 0


def make_clip(task: Task, out: Path) -> ClipResult:
    """Render/load, align, check and write one clip; errors are returned, never raised."""
    result = ClipResult(task)
    try:
        rng = np.random.default_rng([task.seed, task.variant])
        if task.source is None:  # a procedural kick
            wave, result.family, params = synth.synth_kick(task.seed)
            result.augmentation = f"family={result.family} {synth.params_text(params)}"
        else:
            wave, repaired = _cached_source(task.source.file)
            if repaired:
                result.augmentation = f"declipped={repaired}"
            if task.kind == "augmented":
                aligned = align_onset(wave)
                wave, applied = augment.random_augment(
                    aligned, rng, onset=int(PREROLL_S * SAMPLE_RATE)
                )
                result.augmentation = f"{result.augmentation} {applied}".strip()
        clip, result.descriptors = finish_clip(np.asarray(wave, dtype=np.float64))
    except (AudioError, KickgenError, ValueError) as exc:
        where = task.source.file if task.source else task.id
        result.error = str(exc).removeprefix(f"{where}: ")
        return result
    target = out / "clips" / task.kind / f"{task.id}.wav"
    target.parent.mkdir(parents=True, exist_ok=True)
    write_wav(target, clip)
    result.wave = clip.astype(np.float16)
    result.log_mel = log_mel(torch.from_numpy(clip)).numpy().astype(np.float16)  # (128, 173)
    return result


def _init_worker() -> None:
    torch.set_num_threads(1)


def _run_task(args: tuple[Task, Path]) -> ClipResult:
    return make_clip(*args)


# --------------------------------------------------------------------------- planning


def plan_tasks(sources: list[SourceClip], config: BuildConfig) -> list[Task]:
    """Every clip to make, in a fixed order, each with its own seed."""
    tasks: list[Task] = []
    counters: Counter[str] = Counter()
    for index, src in enumerate(sources):
        kind = src.kind if src.kind in ("drumsynth", "kicker", "synth") else "real"
        counters[kind] += 1
        base_id = f"{kind}-{counters[kind]:05d}"
        seed = _stable_seed(config.seed, src.group, src.file, index)
        tasks.append(Task(base_id, kind, seed, src))
        if kind == "real":
            for v in range(config.augment):
                tasks.append(Task(f"{base_id}-aug{v:02d}", "augmented", seed, src, v + 1, base_id))
    for j in range(config.synth):
        tasks.append(Task(f"synth-{j:05d}", "synth", _stable_seed(config.seed, "synth", "", j)))
    return tasks


def _stable_seed(seed: int, *parts: object) -> int:
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "little")


def split_groups(groups: dict[str, str], val_fraction: float, seed: int) -> dict[str, str]:
    """``{group: stratum}`` → ``{group: "train" | "val"}``.

    Within each stratum (kind of source) the groups are ordered by a seeded hash and the first
    ``round(val_fraction · n)`` go to validation (none when a stratum has fewer than 4 groups).
    """
    by_stratum: dict[str, list[str]] = {}
    for group, stratum in groups.items():
        by_stratum.setdefault(stratum, []).append(group)
    split = {}
    for members in by_stratum.values():
        order = sorted(members, key=lambda g: hashlib.sha1(f"{seed}:{g}".encode()).hexdigest())
        n_val = int(round(val_fraction * len(order))) if len(order) >= 4 else 0
        if val_fraction > 0 and len(order) >= 4:
            n_val = max(n_val, 1)
        for i, group in enumerate(order):
            split[group] = "val" if i < n_val else "train"
    return split


def hold_out_real(
    groups: dict[str, tuple[str, int]],
    val_fraction: float,
    seed: int,
    min_recordings: int,
    min_kits: int,
) -> set[str]:
    """The real groups that go to validation: ``{group: (kit, recordings)}`` → groups.

    Kits are visited in a seeded hash order, one group of each kit per round (each kit's groups
    in hash order too), until validation holds at least ``round(val_fraction · groups)`` groups,
    ``min_recordings`` recordings and groups of ``min_kits`` kits, so the held-out recordings
    spread over many kits instead of piling up in one. Takes nothing when ``val_fraction`` is 0,
    and never more than half of the groups.
    """
    if val_fraction <= 0 or not groups:
        return set()

    def order(items):
        return sorted(items, key=lambda g: hashlib.sha1(f"{seed}:{g}".encode()).hexdigest())

    by_kit: dict[str, list[str]] = {}
    for group, (kit, _) in groups.items():
        by_kit.setdefault(kit, []).append(group)
    queues = [order(by_kit[kit]) for kit in order(list(by_kit))]
    want_groups = max(int(round(val_fraction * len(groups))), 1)
    cap = len(groups) // 2
    chosen: list[str] = []
    recordings, kits = 0, set()

    def enough() -> bool:
        return len(chosen) >= cap or (
            len(chosen) >= want_groups and recordings >= min_recordings and len(kits) >= min_kits
        )

    while not enough() and any(queues):
        for queue in queues:
            if queue and not enough():
                group = queue.pop(0)
                chosen.append(group)
                kit, count = groups[group]
                recordings += count
                kits.add(kit)
    return set(chosen)


def build_vocab(keyword_groups: dict[str, set[str]], min_count: int) -> list[str]:
    """Keywords found in at least ``min_count`` groups, most frequent first (ties by name)."""
    counts = {kw: len(groups) for kw, groups in keyword_groups.items()}
    return sorted((kw for kw, c in counts.items() if c >= min_count), key=lambda k: (-counts[k], k))


# --------------------------------------------------------------------------- the build


def gather_sources(
    config: BuildConfig, log=print
) -> tuple[list[SourceClip], list[tuple[str, str]]]:
    """All source files of a build, and the files skipped while finding them."""
    sources: list[SourceClip] = []
    skipped: list[tuple[str, str]] = []
    if config.open_cache is not None:
        from kickgen.data.open_sources import fetch_open

        clips, skip = fetch_open(config.open_cache, progress=lambda m: log(f"fetch-open: {m}"))
        sources += clips
        skipped += skip
    if config.library:
        clips, skip = collect_library(list(config.library))
        sources += clips
        skipped += skip
    for path in config.sources:
        sources += read_sources(path)
    return sources, skipped


def _prepare_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / "metadata.csv").is_file():
        raise BuildError(
            f"{out}: folder is not empty and holds no corpus; choose an empty or new folder"
        )
    for name in ("clips", "cache"):
        shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def build_corpus(config: BuildConfig, *, quiet: bool = False, command: str = "") -> dict:
    """Build the corpus described by ``config`` into ``config.out``; returns the build report
    (also written to ``build_report.json``, with ``command``: the command line that ran it)."""
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    start = time.perf_counter()
    out = Path(config.out).expanduser().resolve()
    sources, skipped = gather_sources(config, log)
    t_sources = time.perf_counter() - start
    if not sources and config.synth <= 0:
        raise BuildError("no sources: pass --open CACHE, --library DIR, --sources CSV or --synth N")
    _prepare_out(out)  # after the sources are found: a failure there leaves no output folder
    results = make_clips(plan_tasks(sources, config), out, config.workers, quiet)
    t_clips = time.perf_counter() - start - t_sources

    kept = [r for r in results if not r.error]
    for r in results:
        if r.error:
            skipped.append(
                (r.task.source.file if r.task.source else r.task.id, f"{r.task.id}: {r.error}")
            )
    if not kept:
        raise BuildError("every clip was dropped; see the reasons above")
    metadata, vocab = label_clips(kept, config)
    write_metadata(out / "metadata.csv", metadata)
    vocab_json = {"vocab": vocab, "min_count": config.min_count}
    (out / "vocab.json").write_text(json.dumps(vocab_json, indent=1))
    counts = write_cache(out, metadata, {r.task.id: r for r in kept})

    report = {
        "config": {k: str(v) if isinstance(v, Path) else [str(p) for p in v] if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "command": command,
        "seconds": {"sources": round(t_sources, 1), "clips": round(t_clips, 1), "total": round(time.perf_counter() - start, 1)},
        "clips": len(metadata),
        "splits": counts,
        "kinds": dict(Counter(m["kind"] for m in metadata)),
        "real_recordings": sum(1 for m in metadata if m["kind"] == "real"),
        "vocab_size": len(vocab),
        "max_onset_ms": round(1000 * max(float(m["onset"]) for m in metadata), 3),
        "silent": sum(1 for m in metadata if float(m["silent"])),
        "clipped": sum(1 for m in metadata if float(m["clipped"])),
        "skipped": [{"file": f, "reason": reason} for f, reason in skipped],
    }  # fmt: skip
    (out / "build_report.json").write_text(json.dumps(report, indent=1))
    return report


def make_clips(tasks: list[Task], out: Path, workers: int, quiet: bool) -> list[ClipResult]:
    """Run every task, in ``workers`` spawned processes when > 1; results in task order."""
    results: list[ClipResult] = []
    dropped = 0
    with Progress(len(tasks), "build clips", disable=quiet) as bar:
        if workers > 1:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker) as pool:
                for res in pool.imap(_run_task, [(t, out) for t in tasks], chunksize=8):
                    results.append(res)
                    dropped += bool(res.error)
                    bar.update(1, dropped=dropped)
        else:
            for task in tasks:
                results.append(make_clip(task, out))
                bar.update(1)
    return results


def _group(r: ClipResult) -> str:
    return r.task.source.group if r.task.source else f"synth:{r.task.id}"


def label_clips(
    kept: list[ClipResult], config: BuildConfig
) -> tuple[list[dict[str, str]], list[str]]:
    """Keywords (names without the measurable words, plus what the measurements earn), the
    vocabulary, the splits and the metadata rows of the kept clips."""
    labelled, keyword_groups = [], {}
    for r in kept:
        src = r.task.source
        name_kw = src.keywords.split() if src else list(synth.FAMILIES[r.family].keywords)
        name_kw = [k for k in name_kw if k not in MEASURED_KEYWORDS and k not in CORPUS_STOPWORDS]
        keywords = list(dict.fromkeys([*name_kw, *measured_keywords(r.descriptors)]))
        for kw in keywords:
            keyword_groups.setdefault(kw, set()).add(_group(r))
        labelled.append((r, keywords, name_kw))
    vocab = build_vocab(keyword_groups, config.min_count)
    in_vocab = set(vocab)
    strata = {
        _group(r): "real" if r.task.kind in ("real", "augmented") else r.task.kind for r in kept
    }
    split = split_groups(
        {g: s for g, s in strata.items() if s != "real"}, config.val_fraction, config.seed
    )
    real_groups: dict[str, tuple[str, int]] = {}
    for r in kept:
        if r.task.kind == "real":
            kit = f"{r.task.source.source}/{r.task.source.kit}"
            count = real_groups.get(_group(r), (kit, 0))[1]
            real_groups[_group(r)] = (kit, count + 1)
    held_out = hold_out_real(
        real_groups, config.val_real_fraction, config.seed, config.val_real, config.val_kits
    )
    for group, stratum in strata.items():
        if stratum == "real":
            split[group] = "val" if group in held_out else "train"

    metadata = []
    for r, keywords, name_kw in labelled:
        src = r.task.source
        row = {
            "id": r.task.id,
            "file": f"clips/{r.task.kind}/{r.task.id}.wav",
            "source": src.source if src else "synth",
            "package": src.package if src else "",
            "kit": src.kit if src else r.family,
            "licence": src.licence if src else "kickgen (MIT)",
            "keywords": " ".join(k for k in keywords if k in in_vocab),
            "split": split[_group(r)],
            "group": _group(r),
            "kind": r.task.kind,
            "name": src.name if src else "",
            "name_keywords": " ".join(name_kw),
            "origin": r.task.origin,
            "augmentation": " ".join(filter(None, [r.augmentation, src.params if src else ""])),
        }
        row.update({k: f"{r.descriptors[k]:.6g}" for k in DESCRIPTOR_NAMES})
        metadata.append(row)
    return metadata, vocab


def write_cache(
    out: Path, metadata: list[dict[str, str]], by_id: dict[str, ClipResult]
) -> dict[str, int]:
    """``cache/{train,val}.pt``: plain data a ``weights_only`` load accepts. Returns the counts."""
    (out / "cache").mkdir(exist_ok=True)
    counts = {}
    for name in ("train", "val"):
        rows = [m for m in metadata if m["split"] == name]
        counts[name] = len(rows)
        waves = [by_id[m["id"]].wave for m in rows]
        mels = [by_id[m["id"]].log_mel for m in rows]
        payload = {
            "ids": [m["id"] for m in rows],
            "waves": torch.from_numpy(np.stack(waves)) if rows else torch.zeros(0, NUM_SAMPLES, dtype=torch.float16),  # (N, 88200)
            "log_mels": torch.from_numpy(np.stack(mels)) if rows else torch.zeros(0, N_MELS, N_FRAMES, dtype=torch.float16),  # (N, 128, 173)
            "keywords": [m["keywords"].split() for m in rows],
            "groups": [m["group"] for m in rows],
        }  # fmt: skip
        tmp = out / "cache" / f".{name}.pt.tmp"
        torch.save(payload, tmp)
        tmp.replace(out / "cache" / f"{name}.pt")
    return counts


def write_metadata(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=METADATA_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def summary(report: dict) -> str:
    """A few lines for the end of ``kickgen data build``."""
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(report["kinds"].items()))
    lines = [
        f"corpus: {report['clips']} clips (train {report['splits']['train']}, val {report['splits']['val']}) in {report['seconds']['total']:.0f} s",
        f"kinds: {kinds}; distinct real recordings: {report['real_recordings']}",
        f"vocabulary: {report['vocab_size']} keywords; latest onset {report['max_onset_ms']:.2f} ms; silent {report['silent']}, clipped {report['clipped']}",
        f"skipped: {len(report['skipped'])} (see build_report.json)",
    ]
    for item in report["skipped"][:12]:
        lines.append(f"  skipped {item['file']}: {item['reason']}")
    return "\n".join(lines)
