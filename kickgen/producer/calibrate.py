"""Measure hygiene and the best-of sanity checks on real kicks of a corpus.

    python -m kickgen.producer.calibrate CORPUS_DIR [--limit 200]

Reads the clips of ``kind == real`` from ``CORPUS_DIR/metadata.csv`` and prints, as JSON: how
many pass every sanity check and which checks fail (so the thresholds reject generated junk,
not real kicks), and what the default hygiene leaves: the onset sample, |mean| / peak, the last
non-zero sample, the error of a -20 LUFS normalisation where the true-peak ceiling allows it,
and the loudness of the kicks normalised to a -1 dBTP true peak (the loudest a LUFS target can get).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np

from kickgen.audio import SAMPLE_RATE, read_audio, to_mono
from kickgen.descriptors import onset_index
from kickgen.producer.hygiene import (
    HygieneConfig,
    apply_hygiene,
    integrated_loudness,
    sanity_checks,
    to_db,
    true_peak,
)

LUFS_TARGET = -20.0


def calibrate(corpus_dir: Path, limit: int = 200, seed: int = 0) -> dict[str, object]:
    """The measurements of the module docstring on up to ``limit`` real clips (random, seeded)."""
    with (corpus_dir / "metadata.csv").open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("kind") == "real"]
    if not rows:
        raise SystemExit(f"{corpus_dir}/metadata.csv lists no clips of kind 'real'")
    pick = np.random.default_rng(seed).permutation(len(rows))[:limit]
    fails: Counter[str] = Counter()
    passed = 0
    onsets, dc, tails, lufs_err, at_ceiling = [], [], [], [], []
    for i in pick:
        data, sr = read_audio(corpus_dir / rows[i]["file"])
        x = to_mono(data).astype(np.float64)
        checks = sanity_checks(x)
        passed += all(checks.values())
        fails.update(k for k, ok in checks.items() if not ok)
        y = apply_hygiene(x)
        onsets.append(int(onset_index(y)[0]))
        dc.append(float(abs(y.mean()) / np.abs(y).max()))
        tails.append(float(np.nonzero(y)[0][-1] / SAMPLE_RATE))
        z = apply_hygiene(x, HygieneConfig(level="lufs", lufs=LUFS_TARGET))
        at_ceiling.append(integrated_loudness(y) - 1.0 - to_db(true_peak(y)))  # LUFS at -1 dBTP
        if to_db(true_peak(z)) < -1.001:  # the ceiling did not bind
            lufs_err.append(abs(integrated_loudness(z) - LUFS_TARGET))
    return {
        "clips": len(pick),
        "pass_all_checks": passed,
        "fails_per_check": dict(fails),
        "onset_sample_max": max(onsets),
        "dc_over_peak_max": max(dc),
        "last_nonzero_s_median": float(np.median(tails)),
        "lufs_error_db_max": max(lufs_err) if lufs_err else None,
        "lufs_ceiling_bound": len(pick) - len(lufs_err),
        "lufs_at_minus1_dbtp_quartiles": [
            round(float(q), 2) for q in np.percentile(at_ceiling, [25, 50, 75])
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kickgen.producer.calibrate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("corpus", type=Path, help="corpus folder (with metadata.csv)")
    parser.add_argument("--limit", type=int, default=200, help="clips to measure (default 200)")
    args = parser.parse_args(argv)
    print(json.dumps(calibrate(args.corpus, args.limit), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
