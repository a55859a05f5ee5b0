"""What every part of ``kickgen eval`` reads: the run's settings (:class:`EvalConfig`), a corpus
split (:class:`EvalSplit`, :func:`load_eval_split`), seeded picks of its rows (:func:`pick`), the
validation clips measured once (:class:`Reference`) and the real training recordings that stand
as the floor (:func:`training_floor`).

The parts (:mod:`~kickgen.evaluation.benchmark`, :mod:`~kickgen.evaluation.reconstruction`,
:mod:`~kickgen.evaluation.generation`) and the runs (:mod:`~kickgen.evaluation.quality`) import
this module; it imports none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kickgen.errors import KickgenError
from kickgen.evaluation import metrics


class EvalError(KickgenError):
    """The evaluation cannot run on these inputs; the message names the file or value."""


@dataclass
class EvalConfig:
    """What one eval run measures; the defaults are the published run (≤ 15 min on 2 CPU cores)."""

    n: int = 128  # unconditional kicks: Fréchet, diversity, memorization, sanity
    n_prompt: int = 32  # kicks per (prompt, guidance) of the adherence study
    n_keyword: int = 8  # kicks per vocabulary keyword at the default guidance
    keywords: int = 16  # the most frequent training keywords get a row each
    n_recon: int = 24  # real validation recordings for reconstruction
    steps: int = 50  # sampler steps (the default generation setting)
    sampler: str = "ddim"  # ddim or dpm
    cfg_scale: float = 3.0  # default guidance: keyword sets and the spectrogram grid
    guidance: tuple[float, ...] = (1.0, 3.0, 5.0)  # scales of the adherence study
    seed: int = 1000  # kick i of every set uses seed + i
    batch_size: int = 16  # kicks per sampler batch
    max_reference: int = 1000  # at most this many real clips per split as reference sets
    examples: int = 6  # kicks per row in the spectrogram grid and WAV examples
    device: str = "cpu"
    threads: int | None = 1  # torch intra-op threads: 1 is fastest on a shared, loaded machine
    # (measured 10× faster than torch's 2 threads at load average 7-10 on 2 cores); None: torch's choice


@dataclass
class EvalSplit:
    """The part of a corpus split the eval reads."""

    ids: list[str]
    waves: torch.Tensor  # (N, 88200), float16 in the cache
    log_mels: torch.Tensor  # (N, 128, 173), float16 in the cache
    keywords: list[list[str]]
    kinds: list[str]  # real | synth | augmented | ... ("real" when the metadata has no kind)
    groups: list[str]  # the drum a clip belongs to (its layers and variants share it; else its id)


def load_eval_split(corpus_dir: Path, split: str) -> EvalSplit:
    """Read ``split`` of the corpus through :func:`kickgen.data.corpus.load_split`.

    Waveforms and log-mels stay in the cache's float16; the eval converts the rows it uses.
    """
    from kickgen.data.corpus import load_split

    data = load_split(corpus_dir, split)
    return EvalSplit(
        ids=list(data.ids),
        waves=data.waves,
        log_mels=data.log_mels,
        keywords=[list(k) for k in data.keywords],
        kinds=[str(row.get("kind") or "real") for row in data.metadata],
        groups=[str(row.get("group") or i) for row, i in zip(data.metadata, data.ids, strict=True)],
    )


def pick(n_total: int, n: int, seed: int) -> np.ndarray:
    """``n`` distinct indices of ``range(n_total)`` (all when n ≥ n_total), seeded, sorted."""
    if n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


@dataclass
class Reference:
    """The validation clips the eval compares against, measured once."""

    indices: np.ndarray  # rows of the validation split (at most max_reference)
    descriptors: dict[str, np.ndarray]  # of those rows
    std: metrics.Standardizer  # fitted on them: one scale for every comparison

    @classmethod
    def of(cls, val: EvalSplit, config: EvalConfig) -> Reference:
        indices = pick(len(val.ids), config.max_reference, config.seed)
        desc = metrics.describe_safe(val.waves[indices])
        return cls(indices, desc, metrics.Standardizer.fit(metrics.feature_matrix(desc)))

    def real(self, val: EvalSplit) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The real recordings among them (every clip when fewer than 2 are real)."""
        rows = [p for p, i in enumerate(self.indices) if val.kinds[i] == "real"]
        if len(rows) < 2:
            rows = list(range(len(self.indices)))
        return self.indices[rows], {k: v[rows] for k, v in self.descriptors.items()}


def training_floor(train: EvalSplit, config: EvalConfig, minimum: int) -> np.ndarray:
    """Up to ``config.n`` real training recordings (every training clip when fewer than
    ``minimum`` are real), seeded: the floor set that shows how far real kicks sit from real ones."""
    rows = np.array([i for i, k in enumerate(train.kinds) if k == "real"], dtype=int)
    if len(rows) < minimum:
        rows = np.arange(len(train.ids))
    return rows[pick(len(rows), config.n, config.seed + 1)]
