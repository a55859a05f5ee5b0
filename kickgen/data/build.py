"""Build the training corpus: sources → aligned, checked, labelled clips, splits, vocabulary, cache.

One call of :func:`build_corpus` (``kickgen data build``) does everything, deterministically for
a given seed and whatever the number of workers:

1. **Sources**: the open kicks (``--open CACHE``: Debian packages, see
   :mod:`kickgen.data.open_sources`; a PyPI archive and, with ``--git-mirror DIR``, GitHub
   repositories, see :mod:`kickgen.data.open_archives`), a producer's library (``--library DIR``),
   source manifests (``--sources CSV``).
2. **Clips**: each source file as it is; ``augment`` variants of every real recording
   (:mod:`kickgen.data.augment`).
3. **Fits**: the kick model of :mod:`kickgen.data.fit` fitted to every real *training* recording
   (the validation ones are never fitted), in ``workers`` processes; ``fits.json`` keeps them,
   keyed by the clip's samples and the model's version, so a rebuild reuses them.
4. **Procedural kicks**: ``synth`` of them, ``fit_share`` drawn around the fits, the others from
   the style families (:mod:`kickgen.data.synth`); each kind kept or drawn again by an acceptance
   model that tilts its descriptor distribution toward the real training recordings'
   (:mod:`kickgen.data.realism`).
5. **Alignment and the reference preprocessing**: the leading silence is cut so the onset sits
   ``PREROLL_S`` (1 ms) into the clip, then resample/pad or trim to 2 s, -1 dBFS peak, 0.2 s fade.
6. **Repair and checks**: a real recording with digital clipping (flat runs at its peak) is
   repaired by :func:`declip` first, and the manifest says so. Every clip is measured
   (:mod:`kickgen.descriptors`); a clip whose onset is later than ``MAX_ONSET_S`` (5 ms), or
   that is silent or clipped, is dropped and reported. A clip the build makes (an augmented
   variant, a procedural kick, a DrumSynth or Kicker render) must also pass the eval's other
   sanity checks (:func:`check_made_kick`: loudest within 30 ms of its onset, decayed by 0.9 s):
   augmentations and procedural kicks are drawn again, a render that fails is dropped;
   recordings are kept as they are. With ``min_lead_db`` (``--min-lead-db``) a made clip's
   loudest sample in those 30 ms must also lead the rest by that much.
7. **Keywords**: the names' keywords without the measurable ones, plus the keywords its
   measurements earn (:func:`kickgen.descriptors.measured_keywords`). The vocabulary keeps the
   keywords found in at least ``min_count`` groups (distinct drums, so that augmented copies
   do not count twice); "kick" is dropped (every clip is one).
8. **Splits by group**: within each kind of source, groups are ordered by a seeded hash and the
   first ``val_fraction`` of them go to validation, with all their layers, variants and
   augmentations. Real recordings are held out kit by kit (:func:`hold_out_real`): at least
   ``val_real_fraction`` of their groups, of the acoustic drums' and of the others' alike, and
   ``val_real`` recordings and ``val_kits`` kits, so the real validation figures rest on many
   drums, electronic ones among them, not a handful of layers of one.
9. **Output**: ``clips/{kind}/{id}.wav`` (float32), ``metadata.csv``, ``vocab.json``,
   ``cache/{train,val}.pt`` (float16 waves and log-mels), ``fits.json`` and ``build_report.json``.
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
    load_audio,
    log_mel,
    preprocess,
    write_wav,
)
from kickgen.data import augment, fit, realism, synth
from kickgen.data.collect import (
    SourceClip,
    collect_library,
    count_hits,
    load_source,
    read_sources,
)
from kickgen.descriptors import (
    CEILING_TOLERANCE,
    DESCRIPTOR_NAMES,
    MEASURED_KEYWORDS,
    describe,
    measured_keywords,
    onset_index,
)
from kickgen.errors import KickgenError
from kickgen.evaluation import metrics
from kickgen.progress import Progress

PREROLL_S = 0.001  # s of lead-in kept before the onset
MAX_ONSET_S = 0.005  # s: every clip's onset must be this early
DECLIP_MAX = 0.25  # declip(): apex at most 25 % above the clipped peak (soft cap)
AUGMENT_TRIES = 8  # draws of an augmented variant until one passes check_made_kick
RENDERED_KINDS = ("drumsynth", "kicker")  # presets kickgen renders: checked as made kicks
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
    open_cache: Path | None = None  # fetch and use the open kicks, cached here
    git_mirrors: tuple[Path, ...] = ()  # clones/mirrors of the open GitHub sources (open_archives)
    library: tuple[Path, ...] = ()  # sample-library folders to collect
    sources: tuple[Path, ...] = ()  # source manifests (collect / fetch-open / synth output)
    synth: int = 3800  # procedural kicks
    augment: int = 12  # augmented variants per real recording
    val_fraction: float = 0.05  # share of each kind's groups held out
    val_real_fraction: float = 0.15  # share of the real recordings' groups held out ...
    val_real: int = 12  # ... and at least this many real recordings ...
    val_kits: int = 4  # ... from at least this many kits
    min_count: int = 5  # a keyword joins the vocabulary when found in this many groups
    fit_share: float = 0.6  # share of the procedural kicks drawn around the fits of real recordings
    fit_steps: int = fit.FitConfig.steps  # Adam steps of each fit (tests use fewer)
    min_lead_db: float = 0.0  # a made kick's hit leads its body by this much (check_made_kick)
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
    fits: str = ""  # a procedural kick drawn around the fits in this fits.json ("": a family's)
    calibration: dict | None = None  # a procedural kick's acceptance model (realism.py)
    min_lead_db: float = 0.0  # BuildConfig.min_lead_db


@dataclass
class ClipResult:
    task: Task
    wave: np.ndarray | None = None  # float16 (88200,)
    log_mel: np.ndarray | None = None  # float16 (128, 173)
    descriptors: dict[str, float] = field(default_factory=dict)
    augmentation: str = ""
    family: str = ""  # style family of a procedural kick ("fitted": drawn around the fits)
    style_keywords: tuple[str, ...] = ()  # a procedural kick's style keywords
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


def check_made_kick(clip: np.ndarray, desc: dict[str, float], min_lead_db: float = 0.0) -> None:
    """Raise :class:`AudioError` when a clip the build made (``clip`` and its descriptors
    ``desc``) fails a sanity check of the eval that :func:`finish_clip` leaves out: it still
    rings where a kick should have decayed (``metrics.TAIL_WINDOW_S``, ``metrics.TAIL_MAX_DB``),
    or it is loudest later than ``metrics.ATTACK_MAX_S`` after its onset (a plateau or a swell,
    not a hit), or, with ``min_lead_db``, its loudest sample there leads everything after by
    less than that (:func:`metrics.peak_lead_db`).

    Made clips that rang (a drive raising an augmented tail, a long trap render, a slow
    procedural decay) were 7.6 % of the "long" clips and taught the model tails that fail the
    check; 28 % of the procedural kicks peaked late. Recordings are kept as they are.
    """
    level = float(metrics.tail_db(clip[None])[0])
    if level > metrics.TAIL_MAX_DB:
        start, stop = metrics.TAIL_WINDOW_S
        raise AudioError(
            f"rings at {level:.1f} dB re the peak over {start:g}-{stop:g} s "
            f"(a made kick decays to {metrics.TAIL_MAX_DB:g} dB by then)"
        )
    if desc["attack"] > metrics.ATTACK_MAX_S:
        raise AudioError(
            f"loudest {desc['attack'] * 1000:.0f} ms after its onset "
            f"(a made kick peaks within {metrics.ATTACK_MAX_S * 1000:g} ms)"
        )
    if min_lead_db > 0.0:
        lead = float(metrics.peak_lead_db(clip[None])[0])
        if lead < min_lead_db:
            raise AudioError(
                f"its hit leads its body by {lead:.1f} dB (the build asks {min_lead_db:g} dB)"
            )


def _augmented_clip(wave: np.ndarray, task: Task) -> tuple[np.ndarray, dict[str, float], str]:
    """An augmented variant that passes :func:`finish_clip` and :func:`check_made_kick`, drawn again
    up to ``AUGMENT_TRIES`` times (draw 0 is the variant's own seed): clip, descriptors, recipe."""
    aligned = align_onset(wave)
    error = AudioError("no augmentation drawn")
    for k in range(AUGMENT_TRIES):
        key = [task.seed, task.variant] if k == 0 else [task.seed, task.variant, k]
        variant, applied = augment.random_augment(
            aligned, np.random.default_rng(key), onset=int(PREROLL_S * SAMPLE_RATE)
        )
        try:
            clip, desc = finish_clip(np.asarray(variant, dtype=np.float64))
            check_made_kick(clip, desc, task.min_lead_db)
        except AudioError as exc:
            error = exc
            continue
        return clip, desc, applied if k == 0 else f"{applied} tries={k + 1}"
    raise error


def make_clip(task: Task, out: Path) -> ClipResult:
    """Render/load, align, check and write one clip; errors are returned, never raised."""
    result = ClipResult(task)
    try:
        if task.source is None:  # a procedural kick: around the fits, or a style family's
            clip, result.descriptors, kick, tries = _procedural_kick(task)
            result.family, result.style_keywords = kick.family, kick.keywords
            result.augmentation = f"{kick.recipe} tries={tries}"
        else:
            wave, repaired = _cached_source(task.source.file)
            applied = f"declipped={repaired}" if repaired else ""
            if task.kind == "augmented":
                clip, result.descriptors, recipe = _augmented_clip(wave, task)
                applied = f"{applied} {recipe}".strip()
            else:
                clip, result.descriptors = finish_clip(np.asarray(wave, dtype=np.float64))
                if task.kind in RENDERED_KINDS:
                    check_made_kick(clip, result.descriptors, task.min_lead_db)
            result.augmentation = applied
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


@dataclass
class ProceduralKick:
    family: str  # a style family, or "fitted"
    keywords: tuple[str, ...]  # style keywords
    recipe: str  # for the manifest: the family's parameters, or the fits drawn around


@functools.lru_cache(maxsize=4)
def _load_fits(path: str) -> tuple[list[dict], list[fit.KickFit], list[str], dict[str, float]]:
    """A build's ``fits.json``, read once per process: entries, fits, styles, spreads."""
    entries = json.loads(Path(path).read_text())["fits"]
    models = [fit.KickFit.from_dict(e["fit"]) for e in entries]
    return entries, models, [e["style"] for e in entries], fit.spreads(models)


def _draw_once(task: Task, k: int) -> tuple[np.ndarray, ProceduralKick]:
    """Draw ``k`` of a procedural task: a waveform (not yet finished) and what it is."""
    seed = task.seed if k == 0 else _stable_seed(task.seed, "try", k)
    if not task.fits:
        wave, family, params = synth.synth_kick(seed)
        keywords = synth.FAMILIES[family].keywords
        return wave, ProceduralKick(
            family, keywords, f"family={family} {synth.params_text(params)}"
        )
    entries, models, styles, spread = _load_fits(task.fits)
    drawn, note = fit.draw_around(models, styles, spread, np.random.default_rng([seed, 0x64726177]))
    parts = [entries[int(i)] for i in note.split("@")[0].split("+")]
    keywords = tuple(dict.fromkeys(k for e in parts for k in e["keywords"]))
    mix = f"@{note.split('@')[1]}" if "@" in note else ""
    wave = fit.render_fit(drawn, NUM_SAMPLES, int(PREROLL_S * SAMPLE_RATE), seed)
    return wave, ProceduralKick("fitted", keywords, f"fit={'+'.join(e['id'] for e in parts)}{mix}")


def _procedural_kick(task: Task) -> tuple[np.ndarray, dict[str, float], ProceduralKick, int]:
    """A procedural kick that passes the checks and is kept by the acceptance model of
    ``task.calibration`` (when there is one), or drawn again, up to ``realism.MAX_TRIES`` times
    (then the best-scoring draw that passed the checks)."""
    best = None
    for k in range(realism.MAX_TRIES):
        wave, kick = _draw_once(task, k)
        try:
            clip, desc = finish_clip(wave)
        except AudioError:
            continue
        if count_hits(clip) > 1:  # a drawn envelope that dips and swells again: not a one-shot
            continue
        try:
            check_made_kick(clip, desc, task.min_lead_db)
        except AudioError:
            continue
        if not task.calibration:
            return clip, desc, kick, k + 1
        u = float(np.random.default_rng([task.seed, 0x61636370, k]).uniform())
        kept, score = realism.accept(task.calibration, desc, u)
        if kept:
            return clip, desc, kick, k + 1
        if best is None or score > best[0]:
            best = (score, clip, desc, kick)
    if best is None:
        raise AudioError("no draw passed the checks")
    return best[1], best[2], best[3], realism.MAX_TRIES


def _pilot_features(task: Task) -> np.ndarray | None:
    """Compared descriptors of one uncalibrated procedural kick (an acceptance model's pilot)."""
    try:
        _, desc = finish_clip(_draw_once(task, 0)[0])
    except AudioError:
        return None
    return realism.features_of([desc])[0]


def _fit_clip(args: tuple[str, str, fit.FitConfig]) -> tuple[str, dict]:
    clip_id, path, config = args
    target = load_audio(path, raw=True).numpy().astype(np.float64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread, in a worker or not: the fit does not depend on workers
    try:
        res = fit.fit_recording(target, config)
    finally:
        torch.set_num_threads(threads)
    return clip_id, {"fit": res.fit.to_dict(), "log_mel_db": round(res.log_mel_db, 4),
                     "f0_25ms": [round(v, 3) for v in res.f0_25ms], "seconds": round(res.seconds, 2)}  # fmt: skip


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
    for task in tasks:
        task.min_lead_db = config.min_lead_db
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
    acoustic: set[str] | frozenset[str] = frozenset(),
) -> set[str]:
    """The real groups that go to validation: ``{group: (kit, recordings)}`` → groups.

    Kits are visited in a seeded hash order, one group of each kit per round (each kit's groups
    in hash order too), until validation holds at least ``round(val_fraction · groups)`` groups,
    ``min_recordings`` recordings and groups of ``min_kits`` kits, so the held-out recordings
    spread over many kits instead of piling up in one. When some groups are ``acoustic``, the
    acoustic drums and the others are first visited apart, each until ``round(val_fraction · n)``
    of its ``n`` groups are held out (at least one of four or more), so that multi-layer
    acoustic drums cannot fill validation alone. Takes nothing when ``val_fraction`` is 0, and
    never more than half of the groups (of each kind, in the first visits).
    """
    if val_fraction <= 0 or not groups:
        return set()

    def order(items):
        return sorted(items, key=lambda g: hashlib.sha1(f"{seed}:{g}".encode()).hexdigest())

    chosen: list[str] = []
    recordings, kits = 0, set()

    def visit(members: list[str], enough) -> None:
        """Round-robin over the kits of ``members`` not yet chosen until ``enough()``."""
        nonlocal recordings
        by_kit: dict[str, list[str]] = {}
        for group in members:
            if group not in chosen:
                by_kit.setdefault(groups[group][0], []).append(group)
        queues = [order(by_kit[kit]) for kit in order(list(by_kit))]
        while not enough() and any(queues):
            for queue in queues:
                if queue and not enough():
                    group = queue.pop(0)
                    chosen.append(group)
                    kit, count = groups[group]
                    recordings += count
                    kits.add(kit)

    if acoustic and set(groups) - set(acoustic):
        for stratum in (
            [g for g in groups if g in acoustic],
            [g for g in groups if g not in acoustic],
        ):
            n = len(stratum)
            want = min(max(int(round(val_fraction * n)), 1 if n >= 4 else 0), n // 2)
            stop = len(chosen) + want
            visit(stratum, lambda stop=stop: len(chosen) >= stop)
    want_groups = max(int(round(val_fraction * len(groups))), 1)
    cap = len(groups) // 2

    def enough() -> bool:
        return len(chosen) >= cap or (
            len(chosen) >= want_groups and recordings >= min_recordings and len(kits) >= min_kits
        )

    visit(list(groups), enough)
    return set(chosen)


def build_vocab(keyword_groups: dict[str, set[str]], min_count: int) -> list[str]:
    """Keywords found in at least ``min_count`` groups, most frequent first (ties by name)."""
    counts = {kw: len(groups) for kw, groups in keyword_groups.items()}
    return sorted((kw for kw, c in counts.items() if c >= min_count), key=lambda k: (-counts[k], k))


# --------------------------------------------------------------------------- the build


def gather_sources(
    config: BuildConfig, log=print
) -> tuple[list[SourceClip], list[tuple[str, str]], dict[str, str]]:
    """All source files of a build, the files skipped while finding them, and a status line
    per open source (found or missing; empty without ``open_cache``)."""
    sources: list[SourceClip] = []
    skipped: list[tuple[str, str]] = []
    status: dict[str, str] = {}
    if config.open_cache is not None:
        from kickgen.data.open_sources import fetch_open

        clips, skip, status = fetch_open(
            config.open_cache, git_mirrors=config.git_mirrors,
            progress=lambda m: log(f"fetch-open: {m}"),
        )  # fmt: skip
        for name, line in status.items():
            if line.startswith("missing"):
                log(f"fetch-open: {name}: {line}")
        sources += clips
        skipped += skip
    if config.library:
        clips, skip = collect_library(list(config.library))
        sources += clips
        skipped += skip
    for path in config.sources:
        sources += read_sources(path)
    return sources, skipped, status


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
    sources, skipped, open_status = gather_sources(config, log)
    t_sources = time.perf_counter() - start
    if not sources and config.synth <= 0:
        raise BuildError("no sources: pass --open CACHE, --library DIR, --sources CSV or --synth N")
    cached_fits = _read_fits(out)
    _prepare_out(out)  # after the sources are found: a failure there leaves no output folder
    tasks = plan_tasks(sources, config)
    results = make_clips([t for t in tasks if t.source], out, config.workers, quiet)
    t_clips = time.perf_counter() - start - t_sources
    fits = fit_recordings(results, config, out, cached_fits, quiet)
    t_fits = time.perf_counter() - start - t_sources - t_clips
    procedural, acceptance = prepare_procedural(
        [t for t in tasks if not t.source], results, fits, config, out, quiet
    )
    results += make_clips(procedural, out, config.workers, quiet)
    t_clips = time.perf_counter() - start - t_sources - t_fits

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
        "seconds": {"sources": round(t_sources, 1), "clips": round(t_clips, 1), "fits": round(t_fits, 1), "total": round(time.perf_counter() - start, 1)},
        "fits": fit_summary(fits),
        "acceptance": acceptance,
        "clips": len(metadata),
        "splits": counts,
        "kinds": dict(Counter(m["kind"] for m in metadata)),
        "real_recordings": sum(1 for m in metadata if m["kind"] == "real"),
        "open_sources": open_status,
        "vocab_size": len(vocab),
        "max_onset_ms": round(1000 * max(float(m["onset"]) for m in metadata), 3),
        "silent": sum(1 for m in metadata if float(m["silent"])),
        "clipped": sum(1 for m in metadata if float(m["clipped"])),
        "skipped": [{"file": f, "reason": reason} for f, reason in skipped],
    }  # fmt: skip
    (out / "build_report.json").write_text(json.dumps(report, indent=1))
    return report


# --------------------------------------------------------------------------- fits and draws

FITS_NAME = "fits.json"  # the corpus's fits of its real training recordings
PILOT = 240  # uncalibrated kicks of each procedural kind its acceptance model learns from
FIT_STYLE_KEYWORDS = frozenset(k for fam in synth.FAMILIES.values() for k in fam.keywords)


def _read_fits(out: Path) -> dict[str, dict]:
    """The fits a previous build left in ``out``, by cache key (empty when there are none)."""
    try:
        data = json.loads((out / FITS_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return {e["key"]: e for e in data.get("fits", []) if "key" in e}


def _pool_map(fn, items: list, workers: int, label: str, quiet: bool) -> list:
    """``[fn(x) for x in items]`` in ``workers`` spawned processes when > 1, in order."""
    out = []
    with Progress(len(items), label, disable=quiet) as bar:
        if workers > 1 and len(items) > 1:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker) as pool:
                for res in pool.imap(fn, items):
                    out.append(res)
                    bar.update(1)
        else:
            for item in items:
                out.append(fn(item))
                bar.update(1)
    return out


def fit_recordings(
    results: list[ClipResult], config: BuildConfig, out: Path, cached: dict[str, dict], quiet: bool
) -> list[dict]:
    """Fit the kick model (:mod:`kickgen.data.fit`) to every real training recording, reusing the
    fits of ``cached`` whose key (clip samples, model version, settings) still matches; writes
    ``fits.json``. Validation recordings are never fitted."""
    kept = [r for r in results if not r.error]
    held_out = held_out_real(kept, config)
    fit_config = fit.FitConfig(steps=config.fit_steps, seed=config.seed)
    fit_config.full_steps = min(fit_config.full_steps, config.fit_steps // 4)
    entries, todo = [], []
    for r in kept:
        if r.task.kind != "real" or _group(r) in held_out:
            continue
        src = r.task.source
        path = out / "clips" / "real" / f"{r.task.id}.wav"
        key = fit.fit_key(load_audio(path, raw=True).numpy(), fit_config)
        entry = {"id": r.task.id, "key": key, "style": f"{src.source}/{src.kit}",
                 "keywords": [k for k in src.keywords.split() if k in FIT_STYLE_KEYWORDS]}  # fmt: skip
        if key in cached:
            entry.update({k: v for k, v in cached[key].items() if k not in entry})
        else:
            todo.append((len(entries), (r.task.id, str(path), fit_config)))
        entries.append(entry)
    for (index, _), (_, res) in zip(
        todo,
        _pool_map(_fit_clip, [t for _, t in todo], config.workers, "fit recordings", quiet),
        strict=True,
    ):
        entries[index].update(res)
    payload = {"version": fit.FIT_VERSION, "config": asdict(fit_config), "fits": entries}
    tmp = out / f".{FITS_NAME}.tmp"
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(out / FITS_NAME)
    return entries


def fit_summary(fits: list[dict]) -> dict:
    """Median log-mel distance of the fits and their share with f0 at 25 ms within 10 %."""
    if not fits:
        return {"n": 0}
    dist = [e["log_mel_db"] for e in fits]
    f0 = [e["f0_25ms"] for e in fits]
    hits = [bool(a > 0 and b == b and abs(b / a - 1.0) <= 0.10) for a, b in f0]
    return {"n": len(fits), "median_log_mel_db": round(float(np.median(dist)), 3),
            "f0_25ms_within_10pct": round(float(np.mean(hits)), 3)}  # fmt: skip


def prepare_procedural(
    tasks: list[Task], results: list[ClipResult], fits: list[dict], config: BuildConfig,
    out: Path, quiet: bool,
) -> tuple[list[Task], dict]:  # fmt: skip
    """Give each procedural kick its recipe: ``fit_share`` of them (by each task's seed) are drawn
    around the fits (:func:`kickgen.data.fit.draw_around`), the others come from the style
    families; each kind under its own acceptance model (:mod:`kickgen.data.realism`), learnt from
    ``PILOT`` uncalibrated kicks of that kind against the real training recordings. Returns the
    tasks and each model's pilot acceptance rate."""
    kept = [r for r in results if not r.error]
    held_out = held_out_real(kept, config)
    real = [r.descriptors for r in kept if r.task.kind == "real" and _group(r) not in held_out]
    fits_path = str(out / FITS_NAME) if fits else ""
    for task in tasks:
        rng = np.random.default_rng([task.seed, 0x73686172])
        task.fits = fits_path if fits and rng.random() < config.fit_share else ""
    report = {}
    if len(real) < 5:
        return tasks, report
    for name, path in (("families", ""), ("fitted", fits_path)):
        members = [t for t in tasks if t.fits == path]
        if not members or (name == "fitted" and not path):
            continue
        pilot_tasks = [Task(f"pilot-{j}", "synth", _stable_seed(config.seed, "pilot", name, j), fits=path)
                       for j in range(PILOT)]  # fmt: skip
        pilot = _pool_map(_pilot_features, pilot_tasks, config.workers, f"calibrate {name}", quiet)
        model = realism.acceptance_model(
            realism.features_of(real), np.stack([f for f in pilot if f is not None])
        )
        for task in members:
            task.calibration = model
        report[name] = round(model["pilot_acceptance"], 3)
    return tasks, report


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


def held_out_real(kept: list[ClipResult], config: BuildConfig) -> set[str]:
    """The groups of the kept real recordings that go to validation (:func:`hold_out_real`)."""
    real_groups: dict[str, tuple[str, int]] = {}
    acoustic = set()
    for r in kept:
        if r.task.kind == "real":
            kit = f"{r.task.source.source}/{r.task.source.kit}"
            count = real_groups.get(_group(r), (kit, 0))[1]
            real_groups[_group(r)] = (kit, count + 1)
            if "acoustic" in r.task.source.keywords.split():
                acoustic.add(_group(r))
    return hold_out_real(
        real_groups, config.val_real_fraction, config.seed, config.val_real, config.val_kits,
        acoustic,
    )  # fmt: skip


def label_clips(
    kept: list[ClipResult], config: BuildConfig
) -> tuple[list[dict[str, str]], list[str]]:
    """Keywords (names without the measurable words, plus what the measurements earn), the
    vocabulary, the splits and the metadata rows of the kept clips."""
    labelled, keyword_groups = [], {}
    for r in kept:
        src = r.task.source
        name_kw = src.keywords.split() if src else list(r.style_keywords)
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
    held_out = held_out_real(kept, config)
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
    fits = report.get("fits", {})
    if fits.get("n"):
        lines.insert(3, f"fits: {fits['n']} real training recordings, median log-mel distance {fits['median_log_mel_db']:.2f} dB, f0 at 25 ms within 10 % for {100 * fits['f0_25ms_within_10pct']:.0f} %")  # fmt: skip
    for name, line in report.get("open_sources", {}).items():
        if line.startswith("missing"):
            lines.append(f"  open source {name} {line}")
    for item in report["skipped"][:12]:
        lines.append(f"  skipped {item['file']}: {item['reason']}")
    return "\n".join(lines)
