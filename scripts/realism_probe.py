"""A second opinion on the corpus's realism: gradient boosting instead of the card's logistic
regression.

The probe the synthesizer-realism issue measured with: a gradient-boosted classifier, 5-fold
cross-validated on the descriptor columns of ``metadata.csv`` (attack ... crest_db, then with the
pitch-envelope columns added), up to 400 clips of a kind against all real recordings; the AUC is
averaged over three seeds. It needs scikit-learn, which kickgen itself does not use:

    python -m pip install scikit-learn
    python scripts/realism_probe.py CORPUS [CORPUS ...]
"""

from __future__ import annotations

import csv
import sys

import numpy as np

BASE = ["attack", "decay_6", "decay_20", "decay_40", "body_pitch", "start_pitch", "pitch_glide",
        "click_db", "punch", "centroid", "sub_ratio", "low_ratio", "harmonic_db", "crest_db"]  # fmt: skip
PITCH = ["f0_10ms", "f0_25ms", "f0_50ms", "f0_100ms", "sweep_time"]


def auc(real: list[dict], other: list[dict], columns: list[str], seed: int) -> float:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    other = [other[i] for i in np.random.default_rng(seed).permutation(len(other))[:400]]
    x = np.nan_to_num(np.array([[float(r[c]) for c in columns] for r in real + other]))
    y = np.r_[np.ones(len(real)), np.zeros(len(other))]
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    model = GradientBoostingClassifier(random_state=seed)
    p = cross_val_predict(model, x, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def main(corpora: list[str]) -> None:
    for corpus in corpora:
        with open(f"{corpus}/metadata.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        real = [r for r in rows if r["kind"] == "real"]
        for kind in sorted({r["kind"] for r in rows} - {"real"}):
            other = [r for r in rows if r["kind"] == kind]
            base = np.mean([auc(real, other, BASE, s) for s in range(3)])
            full = np.mean([auc(real, other, BASE + PITCH, s) for s in range(3)])
            print(f"{corpus} {kind}: {len(other)} clips vs {len(real)} real recordings: "
                  f"AUC {base:.3f}, with the pitch envelope {full:.3f}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
