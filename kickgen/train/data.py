"""The corpus as training tensors.

Reads through ``kickgen.data.corpus`` (``load_split``, ``load_vocab``) when that module is present,
else straight from the corpus contract: ``CORPUS/cache/{split}.pt`` and ``CORPUS/vocab.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from kickgen.audio import N_FRAMES, N_MELS, NUM_SAMPLES
from kickgen.train.runtime import TrainingError


@dataclass
class SplitData:
    """One split in memory: waves (N, 88200) and log_mels (N, 128, 173), both float16."""

    ids: list[str]
    waves: torch.Tensor
    log_mels: torch.Tensor
    keywords: list[list[str]]

    def __len__(self) -> int:
        return len(self.ids)


def load_split_data(corpus_dir: str | Path, split: str) -> SplitData:
    """Load ``split`` ("train" or "val") of the corpus at ``corpus_dir``; one-line errors."""
    corpus_dir = Path(corpus_dir)
    try:
        from kickgen.data.corpus import load_split  # the corpus engineer's reader
    except ImportError:
        load_split = None
    if load_split is not None:
        split_obj = load_split(corpus_dir, split)
        data = {
            "ids": list(split_obj.ids),
            "waves": torch.as_tensor(split_obj.waves),
            "log_mels": torch.as_tensor(split_obj.log_mels),
            "keywords": [list(k) for k in split_obj.keywords],
        }
    else:
        path = corpus_dir / "cache" / f"{split}.pt"
        if not path.exists():
            raise TrainingError(
                f"{path}: corpus cache not found; build the corpus with `kickgen data build`"
            )
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise TrainingError(
                f"{path}: corpus cache is unreadable ({type(exc).__name__}); rebuild it"
            ) from exc
    waves = data["waves"].to(torch.float16)
    log_mels = data["log_mels"].to(torch.float16)
    n = len(data["ids"])
    if waves.shape != (n, NUM_SAMPLES) or log_mels.shape != (n, N_MELS, N_FRAMES):
        raise TrainingError(
            f"{corpus_dir}: {split} split has waves {tuple(waves.shape)} and log_mels {tuple(log_mels.shape)}, "
            f"expected ({n}, {NUM_SAMPLES}) and ({n}, {N_MELS}, {N_FRAMES}); rebuild the corpus"
        )
    if n == 0:
        raise TrainingError(
            f"{corpus_dir}: the {split} split is empty; rebuild the corpus with more clips"
        )
    return SplitData(list(data["ids"]), waves, log_mels, [list(k) for k in data["keywords"]])


def load_vocab_list(corpus_dir: str | Path) -> list[str]:
    """The corpus vocabulary (list of keywords)."""
    corpus_dir = Path(corpus_dir)
    try:
        from kickgen.data.corpus import load_vocab
    except ImportError:
        load_vocab = None
    if load_vocab is not None:
        return list(load_vocab(corpus_dir))
    path = corpus_dir / "vocab.json"
    try:
        return list(json.loads(path.read_text())["vocab"])
    except FileNotFoundError as exc:
        raise TrainingError(
            f"{path}: vocabulary not found; build the corpus with `kickgen data build`"
        ) from exc
    except (ValueError, KeyError) as exc:
        raise TrainingError(
            f'{path}: not a vocabulary file ({{"vocab": [...]}}); rebuild the corpus'
        ) from exc


def write_tiny_corpus(
    directory: str | Path, n_train: int = 8, n_val: int = 4, seed: int = 0
) -> Path:
    """Write a tiny synthetic corpus (decaying sine kicks) in the contract's layout, for tests."""
    from kickgen.audio import SAMPLE_RATE, log_mel

    directory = Path(directory)
    (directory / "cache").mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    words = ["808", "909", "deep", "punchy", "short", "long"]
    t = torch.arange(NUM_SAMPLES) / SAMPLE_RATE
    for split, n in (("train", n_train), ("val", n_val)):
        f0 = 40 + 80 * torch.rand(n, 1, generator=gen)  # Hz
        decay = 0.05 + 0.4 * torch.rand(n, 1, generator=gen)  # s
        waves = 0.9 * torch.sin(2 * torch.pi * f0 * t) * torch.exp(-t / decay)
        kws = [[words[int(torch.randint(0, len(words), (1,), generator=gen))]] for _ in range(n)]
        torch.save(
            {
                "ids": [f"{split}{i}" for i in range(n)],
                "waves": waves.half(),
                "log_mels": log_mel(waves).half(),
                "keywords": kws,
                "groups": [f"{split}{i}" for i in range(n)],
            },
            directory / "cache" / f"{split}.pt",
        )
    (directory / "vocab.json").write_text(json.dumps({"vocab": words, "min_count": 1}))
    return directory
