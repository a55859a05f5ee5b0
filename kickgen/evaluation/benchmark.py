"""The kick benchmark: named sets of kicks against the real validation recordings.

Per-descriptor quartiles (:data:`TABLE_DESCRIPTORS`, pitch envelope first; :func:`descriptor_table`),
the interval of the recordings' median over drums (:func:`median_interval`), each set as a whole
against a reference (:func:`realism`: kernel distance, classifier two-sample AUC, Fréchet distance,
diversity), all three at once (:func:`benchmark_against_real`), and the sanity summary of a set
(:func:`sanity_summary`: the defects a producer hears at once). Reconstruction, generation and
``kickgen eval --kicks`` all report through these; the report reads their constants from here.
"""

from __future__ import annotations

import numpy as np
import torch

from kickgen.evaluation import metrics
from kickgen.evaluation.inputs import EvalSplit

# Descriptors of the per-descriptor tables, in reading order: the pitch envelope first.
TABLE_DESCRIPTORS: tuple[tuple[str, str], ...] = (
    ("f0_10ms", "Hz"), ("f0_25ms", "Hz"), ("f0_50ms", "Hz"), ("f0_100ms", "Hz"),
    ("sweep_ratio", "×"), ("sweep_time", "s"), ("body_pitch", "Hz"), ("click_db", "dB"),
    ("punch", ""), ("hit_harmonic_db", "dB"), ("swell_db", "dB"), ("decay_20", "s"),
    ("harmonic_db", "dB"), ("centroid", "Hz"),
)  # fmt: skip
SWELL_DB = 1.0  # a kick whose body rises this far above its hit swells (descriptors.swell_db)


def with_sweep_ratio(desc: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``desc`` plus ``sweep_ratio`` = f0(25 ms) / f0(100 ms): above 1 for a falling sweep, 1 for a
    steady tone (the ratio the kick-benchmark tables lead with)."""
    ratio = np.asarray(desc["f0_25ms"]) / np.maximum(np.asarray(desc["f0_100ms"]), 1e-9)
    return {**desc, "sweep_ratio": np.where(np.asarray(desc["f0_100ms"]) > 0, ratio, 0.0)}


def one_per_group(desc: dict[str, np.ndarray], groups: list[str]) -> dict[str, np.ndarray]:
    """Each group's median of every descriptor in ``desc`` (one value per drum, in order of first
    appearance), so that a drum recorded in five velocity layers counts once, like a drum
    recorded once."""
    rows = group_rows(groups)
    return {
        name: np.array([np.median(np.asarray(v)[idx]) for idx in rows]) for name, v in desc.items()
    }


def group_rows(groups: list[str]) -> list[list[int]]:
    """The clips of each group (``groups[i]`` is clip i's), groups in order of first appearance."""
    rows: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        rows.setdefault(g, []).append(i)
    return list(rows.values())


INTERVAL_LEVEL = 0.9  # coverage of the eval's intervals: medians over drums, sanity pass rates
MEDIAN_DRAWS = 2000  # bootstrap draws of the medians' interval


def median_interval(
    desc: dict[str, np.ndarray], groups: list[str], seed: int, level: float = INTERVAL_LEVEL
) -> dict[str, list[float]]:
    """``{descriptor: [low, high]}`` for ``TABLE_DESCRIPTORS``: the ``level`` interval of the median
    of ``desc`` over clips when their drums (``groups``) are drawn again with replacement
    (``MEDIAN_DRAWS`` percentile-bootstrap draws; a drum's velocity layers come and go together).

    A validation split of ten drums pins its medians down only roughly: a generated median
    inside this interval is as near as another draw of ten drums would be.
    """
    desc = with_sweep_ratio(desc)
    drums = group_rows(groups)
    rng = np.random.default_rng(seed)
    draws = [np.concatenate([drums[j] for j in row])
             for row in rng.integers(0, len(drums), size=(MEDIAN_DRAWS, len(drums)))]  # fmt: skip
    tail = 50.0 * (1.0 - level)
    out = {}
    for name, _ in TABLE_DESCRIPTORS:
        values = np.asarray(desc[name], dtype=np.float64)
        medians = [np.median(values[rows]) for rows in draws]
        out[name] = [float(q) for q in np.percentile(medians, (tail, 100.0 - tail))]
    return out


def reference_sets(val: EvalSplit, rows: np.ndarray, desc: dict[str, np.ndarray]) -> dict:
    """The real validation recordings ``rows`` (descriptors ``desc``) as the descriptor tables
    show them: every clip, and each drum once (:func:`one_per_group`)."""
    return {"validation_real": desc,
            "validation_real_drums": one_per_group(desc, [val.groups[int(i)] for i in rows])}  # fmt: skip


def descriptor_table(sets: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list[float]]]:
    """``{descriptor: {set: [q25, median, q75]}}`` for ``TABLE_DESCRIPTORS`` over named sets."""
    sets = {label: with_sweep_ratio(desc) for label, desc in sets.items()}
    return {
        name: {
            label: [float(q) for q in np.percentile(d[name], (25, 50, 75))]
            for label, d in sets.items()
        }
        for name, _ in TABLE_DESCRIPTORS
    }


def realism(std: metrics.Standardizer, reference: dict[str, np.ndarray],
            sets: dict[str, dict[str, np.ndarray]], seed: int) -> dict[str, dict]:  # fmt: skip
    """Each named set against ``reference`` on the standardised descriptors: kernel distance
    (with its spread over halves), classifier two-sample AUC, Fréchet distance, diversity."""
    ref = std(metrics.feature_matrix(reference))
    out = {"reference": {"n": len(ref), "diversity": metrics.mean_pairwise_distance(ref)}}
    for label, desc in sets.items():
        x = std(metrics.feature_matrix(desc))
        row: dict = {"n": len(x), "diversity": metrics.mean_pairwise_distance(x)}
        row["diversity_ratio"] = row["diversity"] / max(out["reference"]["diversity"], 1e-12)
        row["frechet"] = metrics.frechet_distance(x, ref)
        if min(len(x), len(ref)) >= 5:
            row["kernel"] = metrics.kernel_distance(x, ref, seed=seed)
            row["classifier"] = metrics.classifier_auc(x, ref, seed=seed)
        out[label] = row
    return out


def benchmark_against_real(val: EvalSplit, rows: np.ndarray, desc: dict[str, np.ndarray],
                           sets: dict[str, dict[str, np.ndarray]], std: metrics.Standardizer,
                           seed: int) -> dict:  # fmt: skip
    """The kick benchmark of named ``sets`` against the real validation recordings ``rows``
    (descriptors ``desc``): the descriptor table (every clip, each drum once, then ``sets``),
    the interval of the recordings' medians over drums (:func:`median_interval`), and
    :func:`realism`."""
    return {
        "table": descriptor_table({**reference_sets(val, rows, desc), **sets}),
        "median_interval": median_interval(desc, [val.groups[int(i)] for i in rows], seed),
        "realism": realism(std, desc, sets, seed),
    }


LATE_PEAK_DB = (1.0, 3.0)  # the report gives the shares of kicks loudest this far after the hit


def late_key(db: float) -> str:
    """The sanity summary's key for the share loudest more than ``db`` dB after the hit."""
    return f"late_{db:g}db"


def sanity_summary(waves: torch.Tensor | np.ndarray, descriptors: dict[str, np.ndarray]) -> dict:
    """Pass rates of :func:`metrics.sanity_checks` over ``waves`` ``(B, L)``, plus ``late_1db``
    and ``late_3db``: the shares whose loudest sample lies more than 1 and 3 dB above the loudest
    of their first 30 ms (:func:`metrics.late_peak_db`), so a miss of the attack check reads as
    a plateau or a swell, and ``pass_interval``, the ``INTERVAL_LEVEL`` interval of the share
    passing every check (:func:`metrics.pass_interval`)."""
    checks = metrics.sanity_checks(waves, descriptors)
    out: dict = {name: float(np.mean(v)) for name, v in checks.items()}
    out["pass_interval"] = list(
        metrics.pass_interval(int(checks["pass"].sum()), len(checks["pass"]), INTERVAL_LEVEL)
    )
    late = metrics.late_peak_db(waves)
    for db in LATE_PEAK_DB:
        out[late_key(db)] = float(np.mean(late > db))
    out["swell"] = float(np.mean(np.asarray(descriptors["swell_db"]) > SWELL_DB))
    return out
