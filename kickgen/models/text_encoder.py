"""KeywordEncoder: a prompt's vocabulary ids → one conditioning vector for the U-Net."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn


class KeywordEncoder(nn.Module):
    """Mean of keyword embeddings → MLP → (B, cond_dim); an empty prompt uses a learned null vector.

    Called as ``enc([[3, 17], [], [5]], device)``: one list of vocabulary indices per prompt.
    """

    def __init__(self, vocab_size: int, embed_dim: int = 64, cond_dim: int = 256):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(max(vocab_size, 1), embed_dim)
        self.null_embedding = nn.Parameter(torch.zeros(embed_dim))
        nn.init.normal_(self.null_embedding, std=0.02)
        self.proj = nn.Sequential(
            nn.Linear(embed_dim, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim)
        )

    def forward(
        self, token_ids: Sequence[Sequence[int]], device: torch.device | str | None = None
    ) -> torch.Tensor:
        """``token_ids``: B lists of vocabulary indices (may be empty) → (B, cond_dim)."""
        device = self.null_embedding.device if device is None else torch.device(device)
        longest = max((len(ids) for ids in token_ids), default=0)
        batch = len(token_ids)
        ids = torch.zeros(batch, max(longest, 1), dtype=torch.long)
        mask = torch.zeros(batch, max(longest, 1))
        for i, row in enumerate(token_ids):
            for j, tok in enumerate(row):
                tok = int(tok)
                if not 0 <= tok < self.vocab_size:
                    raise ValueError(
                        f"keyword id {tok} is outside the vocabulary of {self.vocab_size} entries"
                    )
                ids[i, j] = tok
                mask[i, j] = 1.0
        ids, mask = ids.to(device), mask.to(device)
        emb = self.embedding(ids) * mask[..., None]  # (B, L, E)
        count = mask.sum(dim=1, keepdim=True)  # (B, 1)
        mean = emb.sum(dim=1) / count.clamp(min=1.0)  # (B, E)
        pooled = torch.where(count > 0, mean, self.null_embedding.expand_as(mean))
        return self.proj(pooled)  # (B, cond_dim)
