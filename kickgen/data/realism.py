"""How real the corpus's synthesized kicks look, and the acceptance model that makes them so.

The measure is the eval's classifier two-sample test (:func:`kickgen.evaluation.metrics.classifier_auc`
on the descriptors ``FEATURES``, pitch envelope included): a cross-validated logistic regression
telling one kind of clip from the real recordings, 0.5 when it cannot, 1.0 when it always can.
:func:`realism_table` runs it on a corpus's ``metadata.csv`` for every kind of clip.

The style families of :mod:`kickgen.data.synth` are re-calibrated with the same model turned
around: a logistic regression of the real training recordings against a pilot set of family
kicks estimates the density ratio real / synth as ``exp(score)`` (classes weighted equally), and
a family kick is kept with probability ``min(1, exp(score − cap))`` (``cap``: a high quantile of
the pilot's scores), else drawn again. The kept kicks' descriptor distribution is the families'
tilted toward the real recordings' (the means of the compared descriptors match), not just
clamped into their ranges.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from kickgen.evaluation import metrics

CAP_QUANTILE = 0.95  # the pilot score above which a procedural kick is always kept
MAX_TRIES = 16  # draws per procedural kick; the best-scoring one is kept when none is accepted
PER_KIND = 400  # clips of each kind in the realism test (as the first measurement)
L2 = 1.0  # of the acceptance model, as the realism test's classifier


def features_of_rows(rows: Sequence[Mapping[str, str]]) -> np.ndarray:
    """``FEATURES`` of metadata rows (the descriptor columns) as ``(N, D)``."""
    desc = {name: np.array([float(r[name]) for r in rows]) for name, _ in metrics.FEATURES}
    return metrics.feature_matrix(desc)


def features_of(descriptors: Sequence[Mapping[str, float]]) -> np.ndarray:
    """``FEATURES`` of descriptor dicts (one per clip) as ``(N, D)``."""
    desc = {name: np.array([d[name] for d in descriptors]) for name, _ in metrics.FEATURES}
    return metrics.feature_matrix(desc)


def acceptance_model(real: np.ndarray, pilot: np.ndarray) -> dict:
    """The density-ratio model of real ``(N, D)`` over pilot ``(M, D)`` features, as plain lists
    (it travels with each task to the workers): mean, scale, weights, bias and the cap."""
    std = metrics.Standardizer.fit(np.vstack([real, pilot]))
    x = np.vstack([std(real), std(pilot)])
    y = np.concatenate([np.ones(len(real)), np.zeros(len(pilot))])
    w = metrics._fit_logistic(x, y, L2)  # the realism test's own classifier
    scores = std(pilot) @ w[:-1] + w[-1]
    return {
        "mean": std.mean.tolist(),
        "scale": std.std.tolist(),
        "weights": w[:-1].tolist(),
        "bias": float(w[-1]),
        "cap": float(np.quantile(scores, CAP_QUANTILE)),
        "pilot_acceptance": float(np.mean(np.minimum(1.0, np.exp(scores - np.quantile(scores, CAP_QUANTILE))))),
    }  # fmt: skip


def score(model: Mapping, features: np.ndarray) -> np.ndarray:
    """Log density ratio (up to a constant) of features ``(N, D)`` → ``(N,)``."""
    z = (features - np.asarray(model["mean"])) / np.asarray(model["scale"])
    return z @ np.asarray(model["weights"]) + model["bias"]


def accept(model: Mapping, descriptors: Mapping[str, float], u: float) -> tuple[bool, float]:
    """Whether a kick with ``descriptors`` is kept, given a uniform draw ``u``; and its score."""
    s = float(score(model, features_of([descriptors]))[0])
    return bool(np.log(max(u, 1e-300)) < s - model["cap"]), s


def realism_table(
    rows: Sequence[Mapping[str, str]], per_kind: int = PER_KIND, seed: int = 0
) -> list[dict]:
    """Classifier AUC of each kind of clip (and of the procedural kicks by origin: drawn around the
    fits, style families) against the real recordings, all of them and the validation ones:
    ``[{"set", "n", "auc_real", "auc_val_real"}]`` (``auc_*`` is None when a set is too small)."""
    real = [r for r in rows if r["kind"] == "real"]
    val_real = [r for r in real if r["split"] == "val"]
    sets: dict[str, list] = {}
    for r in rows:
        if r["kind"] != "real":
            sets.setdefault(r["kind"], []).append(r)
        if r["kind"] == "synth":
            origin = (
                "synth: drawn around the fits" if r["kit"] == "fitted" else "synth: style families"
            )
            sets.setdefault(origin, []).append(r)
    sets["real: training recordings"] = [r for r in real if r["split"] == "train"]
    rng = np.random.default_rng(seed)
    out = []
    for name, members in sets.items():
        if len(members) > per_kind:
            members = [
                members[i] for i in sorted(rng.choice(len(members), per_kind, replace=False))
            ]
        row = {"set": name, "n": len(members), "auc_real": None, "auc_val_real": None}
        x = features_of_rows(members)
        for key, ref in (("auc_real", real), ("auc_val_real", val_real)):
            if min(len(members), len(ref)) >= 5 and not (
                key == "auc_real" and name.startswith("real")
            ):
                row[key] = metrics.classifier_auc(x, features_of_rows(ref), seed=seed)["auc"]
        out.append(row)
    return out
