"""The corpus as training tensors, and what a training run starts from (:func:`start_run`).

Reads through ``kickgen.data.corpus`` (``load_split``, ``load_vocab``) when that module is present,
else straight from the corpus contract: ``CORPUS/cache/{split}.pt`` and ``CORPUS/vocab.json``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from kickgen.audio import N_FRAMES, N_MELS, NUM_SAMPLES
from kickgen.train.runtime import TrainingError, load_state, read_tensors, restore


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
        data = read_tensors(path, "corpus cache", "rebuild it")
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


def synth_kicks(n: int, seed: int = 0) -> tuple[torch.Tensor, list[list[str]]]:
    """Simple synthetic kicks for tests and vocoder warm-up: (n, 88200) float32 and keywords.

    A sine whose pitch glides exponentially from 80–400 Hz to 35–90 Hz, an exponential amplitude
    decay of 0.08–0.9 s, a short filtered-noise click, and optional tanh drive.
    """
    from kickgen.audio import SAMPLE_RATE

    gen = torch.Generator().manual_seed(seed)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, 1, generator=gen)

    t = torch.arange(NUM_SAMPLES) / SAMPLE_RATE  # (L,) seconds
    f_end, f_start = uniform(35, 90), uniform(80, 400)
    glide, decay = uniform(0.005, 0.08), uniform(0.08, 0.9)  # s
    freq = f_end + (f_start - f_end) * torch.exp(-t / glide)  # (n, L) Hz
    phase = 2 * torch.pi * torch.cumsum(freq, dim=-1) / SAMPLE_RATE
    body = torch.sin(phase) * torch.exp(-t / decay)
    click_env = torch.exp(-t / uniform(0.001, 0.006))
    noise = torch.randn(n, NUM_SAMPLES, generator=gen)
    noise = noise - torch.roll(noise, 1, dims=-1) * uniform(0.0, 0.95)  # brighter or duller click
    wave = body + uniform(0.0, 0.6) * click_env * noise
    driven = torch.rand(n, 1, generator=gen) < 0.3  # 30 % get tanh drive
    drive = torch.where(driven, uniform(1.0, 6.0), torch.ones(n, 1))
    wave = torch.tanh(drive * wave) / torch.tanh(drive)
    wave = wave / wave.abs().amax(dim=-1, keepdim=True) * 0.891  # -1 dBFS peak
    fade = int(0.2 * SAMPLE_RATE)
    wave[:, -fade:] *= torch.linspace(1.0, 0.0, fade)
    keywords = [
        [
            "synth",
            "short" if float(d) < 0.2 else "long" if float(d) > 0.5 else "mid",
            "deep" if float(f) < 50 else "high",
        ]
        for d, f in zip(decay[:, 0], f_end[:, 0], strict=True)
    ]
    return wave, keywords


def write_synth_corpus(
    directory: str | Path, n_train: int = 8, n_val: int = 4, seed: int = 0
) -> Path:
    """Write a corpus of :func:`synth_kicks` in the contract's layout (metadata.csv,
    cache/{split}.pt, vocab.json).

    Tiny ones make test corpora; large ones a warm-up corpus for the vocoder.
    """
    from kickgen.audio import log_mel

    directory = Path(directory)
    (directory / "cache").mkdir(parents=True, exist_ok=True)
    vocab: set[str] = set()
    rows: list[dict[str, str]] = []
    for i, (split, n) in enumerate((("train", n_train), ("val", n_val))):
        waves, kws = synth_kicks(n, seed * 2 + i)
        mels = torch.cat([log_mel(waves[j : j + 256]) for j in range(0, n, 256)])
        vocab.update(w for k in kws for w in k)
        ids = [f"synth-{split}-{j}" for j in range(n)]
        rows += [
            {"id": id_, "file": "", "source": "synth", "package": "", "kit": "",
             "licence": "kickgen (MIT)", "keywords": " ".join(kw), "split": split,
             "group": id_, "kind": "synth"}
            for id_, kw in zip(ids, kws, strict=True)
        ]  # fmt: skip
        torch.save(
            {
                "ids": ids,
                "waves": waves.half(),
                "log_mels": mels.half(),
                "keywords": kws,
                "groups": ids,
            },
            directory / "cache" / f"{split}.pt",
        )
    with (directory / "metadata.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (directory / "vocab.json").write_text(json.dumps({"vocab": sorted(vocab), "min_count": 1}))
    return directory


@dataclass
class RunStart:
    """What a training run starts from: its folder, the corpus splits and the state to resume."""

    model_type: str  # a key of STATE_KEYS
    run_dir: Path
    train: SplitData
    val: SplitData
    state: dict[str, Any] | None  # None: a fresh run

    def resume(self, parts: dict[str, Any], model_cfg: Any, tied: Sequence[str] = ()) -> int:
        """The step to start at: 0 for a fresh run, else the saved one, ``parts`` restored
        (``tied``: see :func:`restore`)."""
        if self.state is None:
            return 0
        restore(self.state, parts, model_cfg, self.run_dir, tied)
        return int(self.state["step"])

    def snapshot(self, step: int, parts: dict[str, Any], **extra: Any) -> dict[str, Any]:
        """The training state at ``step``: each part's ``state_dict()`` under its key (the keys
        :meth:`resume` restores), then ``extra`` (the configs, the vocabulary)."""
        weights = {key: part.state_dict() for key, part in parts.items()}
        return {"model_type": self.model_type, "step": step, **weights, **extra}


def start_run(cfg: Any, model_type: str, resume: bool) -> RunStart:
    """Load ``cfg.corpus``'s train and val splits and, when ``resume``, the state in
    ``cfg.run_dir``; then seed torch with ``cfg.seed`` for the fresh weights."""
    run_dir = Path(cfg.run_dir)
    train = load_split_data(cfg.corpus, "train")
    val = load_split_data(cfg.corpus, "val")
    state = load_state(run_dir, model_type) if resume else None
    torch.manual_seed(cfg.seed)
    return RunStart(model_type, run_dir, train, val, state)
