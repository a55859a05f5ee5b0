"""Reading a built corpus: the API training and evaluation use.

```python
from kickgen.data.corpus import load_split, load_vocab
train = load_split("corpus", "train")   # CorpusSplit
train.waves      # torch.float16 (N, 88200), onset-aligned, -1 dBFS peak
train.log_mels   # torch.float16 (N, 128, 173), natural-log mel of the audio contract
train.keywords   # list[list[str]], only vocabulary words
vocab = load_vocab("corpus")             # list[str]
```
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from kickgen.audio import N_FRAMES, N_MELS, NUM_SAMPLES
from kickgen.errors import KickgenError

SPLITS = ("train", "val")


class CorpusError(KickgenError):
    """A corpus folder is missing or incomplete."""


@dataclass
class CorpusSplit:
    """One split of a corpus, row i of every field describing the same clip."""

    ids: list[str]
    waves: torch.Tensor  # float16 (N, 88200)
    log_mels: torch.Tensor  # float16 (N, 128, 173)
    keywords: list[list[str]]
    groups: list[str]
    metadata: list[dict[str, str]]  # the clip's metadata.csv row

    def __len__(self) -> int:
        return len(self.ids)


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise CorpusError(f"{path}: {what} not found; build the corpus with `kickgen data build`")
    return path


def load_vocab(corpus_dir: str | Path) -> list[str]:
    """The corpus vocabulary (``vocab.json``), most frequent keyword first."""
    path = _need(Path(corpus_dir) / "vocab.json", "vocabulary")
    try:
        vocab = json.loads(path.read_text())["vocab"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorpusError(f"{path}: not a kickgen vocabulary ({exc}); rebuild the corpus") from exc
    return [str(v) for v in vocab]


def read_metadata(corpus_dir: str | Path) -> list[dict[str, str]]:
    """All rows of ``metadata.csv``."""
    path = _need(Path(corpus_dir) / "metadata.csv", "metadata")
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def load_split(corpus_dir: str | Path, split: str) -> CorpusSplit:
    """Load ``cache/{split}.pt`` (safe ``weights_only`` load) with its metadata rows."""
    if split not in SPLITS:
        raise CorpusError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    corpus_dir = Path(corpus_dir)
    path = _need(corpus_dir / "cache" / f"{split}.pt", "cache")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and what to do
        raise CorpusError(f"{path}: unreadable corpus cache ({exc}); rebuild the corpus") from exc
    waves, mels = data["waves"], data["log_mels"]
    n = len(data["ids"])
    if waves.shape != (n, NUM_SAMPLES) or mels.shape != (n, N_MELS, N_FRAMES):
        raise CorpusError(
            f"{path}: waves {tuple(waves.shape)} / log_mels {tuple(mels.shape)} do not match "
            f"{n} clips of ({NUM_SAMPLES},) / ({N_MELS}, {N_FRAMES}); rebuild the corpus"
        )
    rows = {row["id"]: row for row in read_metadata(corpus_dir)}
    missing = [i for i in data["ids"] if i not in rows]
    if missing:
        raise CorpusError(
            f"{corpus_dir / 'metadata.csv'}: no row for clip {missing[0]}; rebuild the corpus"
        )
    return CorpusSplit(
        ids=list(data["ids"]),
        waves=waves,
        log_mels=mels,
        keywords=[list(k) for k in data["keywords"]],
        groups=list(data["groups"]),
        metadata=[rows[i] for i in data["ids"]],
    )
