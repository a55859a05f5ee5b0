"""Make the clips of a corpus build: one :class:`~kickgen.data.plan.Task` → one checked clip.

:func:`make_clip` loads a source file (repairing digital clipping with :func:`declip`), draws an
augmented variant (:mod:`kickgen.data.augment`) or a procedural kick (a style family of
:mod:`kickgen.data.synth`, or a draw around the fits of :mod:`kickgen.data.fit`, kept or drawn
again by the acceptance model of :mod:`kickgen.data.realism`), then aligns it
(:func:`align_onset`: the onset ``PREROLL_S`` into the clip), applies the reference
preprocessing and checks it (:func:`finish_clip`; :func:`check_made_kick` for clips the build
makes), and writes ``clips/{kind}/{id}.wav``. :func:`make_clips` and :func:`pool_map` run many
in spawned worker processes, in task order.

The tasks come from :mod:`kickgen.data.plan`; :mod:`kickgen.data.fits` calibrates the procedural
tasks first; :mod:`kickgen.data.build` runs the stages. The eval prepares folders of kicks with
:func:`align_onset` too (:mod:`kickgen.evaluation.quality`).
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kickgen.audio import NUM_SAMPLES, SAMPLE_RATE, AudioError, log_mel, preprocess, write_wav
from kickgen.data import augment, fit, realism, synth
from kickgen.data.collect import count_hits, load_source
from kickgen.data.plan import Task, stable_seed
from kickgen.descriptors import CEILING_TOLERANCE, describe, onset_index
from kickgen.errors import KickgenError
from kickgen.evaluation import metrics
from kickgen.progress import Progress

PREROLL_S = 0.001  # s of lead-in kept before the onset
MAX_ONSET_S = 0.005  # s: every clip's onset must be this early
DECLIP_MAX = 0.25  # declip(): apex at most 25 % above the clipped peak (soft cap)
AUGMENT_TRIES = 8  # draws of an augmented variant until one passes check_made_kick
RENDERED_KINDS = ("drumsynth", "kicker")  # presets kickgen renders: checked as made kicks


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
    seed = task.seed if k == 0 else stable_seed(task.seed, "try", k)
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


def pilot_features(task: Task) -> np.ndarray | None:
    """Compared descriptors of one uncalibrated procedural kick (an acceptance model's pilot)."""
    try:
        _, desc = finish_clip(_draw_once(task, 0)[0])
    except AudioError:
        return None
    return realism.features_of([desc])[0]


def _init_worker() -> None:
    torch.set_num_threads(1)


def _run_task(args: tuple[Task, Path]) -> ClipResult:
    return make_clip(*args)


def pool_map(fn, items: list, workers: int, label: str, quiet: bool) -> list:
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
