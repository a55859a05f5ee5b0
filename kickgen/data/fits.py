"""The build's fits and calibration: the kick model fitted to every real training recording
(``fits.json``), and each procedural kick's recipe and acceptance model.

:func:`fit_recordings` fits :mod:`kickgen.data.fit`'s model to the real training recordings (the
validation ones, :func:`kickgen.data.split.held_out_real`, are never fitted), reusing the fits of
a previous build (:func:`read_fits`) whose key still matches. :func:`prepare_procedural` sends
``fit_share`` of the procedural tasks around those fits and the others to the style families,
each kind under an acceptance model (:mod:`kickgen.data.realism`) learnt from ``PILOT`` draws.

:mod:`kickgen.data.build` runs it between the clips of the sources and the procedural clips
(both made by :mod:`kickgen.data.clips`, whose draws give the pilots and whose worker pool runs
the fits); the held-out recordings come from :mod:`kickgen.data.split`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from kickgen.audio import load_audio
from kickgen.data import fit, realism, synth
from kickgen.data.clips import ClipResult, pilot_features, pool_map
from kickgen.data.plan import BuildConfig, Task, stable_seed
from kickgen.data.split import group_of, held_out_real

FITS_NAME = "fits.json"  # the corpus's fits of its real training recordings
PILOT = 240  # uncalibrated kicks of each procedural kind its acceptance model learns from
FIT_STYLE_KEYWORDS = frozenset(k for fam in synth.FAMILIES.values() for k in fam.keywords)


def read_fits(out: Path) -> dict[str, dict]:
    """The fits a previous build left in ``out``, by cache key (empty when there are none)."""
    try:
        data = json.loads((out / FITS_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return {e["key"]: e for e in data.get("fits", []) if "key" in e}


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
        if r.task.kind != "real" or group_of(r) in held_out:
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
        pool_map(_fit_clip, [t for _, t in todo], config.workers, "fit recordings", quiet),
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
    real = [r.descriptors for r in kept if r.task.kind == "real" and group_of(r) not in held_out]
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
        pilot_tasks = [Task(f"pilot-{j}", "synth", stable_seed(config.seed, "pilot", name, j), fits=path)
                       for j in range(PILOT)]  # fmt: skip
        pilot = pool_map(pilot_features, pilot_tasks, config.workers, f"calibrate {name}", quiet)
        model = realism.acceptance_model(
            realism.features_of(real), np.stack([f for f in pilot if f is not None])
        )
        for task in members:
            task.calibration = model
        report[name] = round(model["pilot_acceptance"], 3)
    return tasks, report
