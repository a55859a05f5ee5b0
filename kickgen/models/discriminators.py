"""HiFi-GAN discriminators (training only): multi-period (MPD) and multi-scale (MSD).

Each discriminator returns (logits, feature maps) so the generator can be trained with the
least-squares adversarial loss and feature matching. Widths are reduced from HiFi-GAN's
(32→1024) so that training fits a few CPU cores; ``width`` scales them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

LRELU_SLOPE = 0.1


@dataclass
class DiscriminatorConfig:
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)  # MPD periods (samples)
    num_scales: int = 3  # MSD: raw, 2× and 4× average-pooled audio
    width: int = 16  # first-layer channels (×2 per layer up to ×8); HiFi-GAN: 32 (MPD), 128 (MSD)


def _conv_stack(
    convs: nn.ModuleList, conv_post: nn.Module, x: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``convs`` with leaky ReLU, then ``conv_post``: logits flattened to (B, N) and the feature
    map of every layer (for feature matching)."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LRELU_SLOPE)
        feats.append(x)
    x = conv_post(x)
    feats.append(x)
    return x.flatten(1), feats


class PeriodDiscriminator(nn.Module):
    """Reshape (B, 1, L) to (B, 1, L/p, p) and run 2-D convs along time: HiFi-GAN's DiscriminatorP."""

    def __init__(self, period: int, width: int):
        super().__init__()
        self.period = period
        chans = [1, width, width * 2, width * 4, width * 8]  # HiFi-GAN: 1, 32, 128, 512, 1024
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(chans[i], chans[i + 1], (5, 1), (3, 1), padding=(2, 0)))
            for i in range(4)
        )
        self.convs.append(weight_norm(nn.Conv2d(chans[-1], chans[-1], (5, 1), 1, padding=(2, 0))))
        self.conv_post = weight_norm(nn.Conv2d(chans[-1], 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, c, n = x.shape
        if n % self.period:
            x = F.pad(x, (0, self.period - n % self.period), mode="reflect")
        x = x.view(b, c, -1, self.period)  # (B, 1, L/p, p)
        return _conv_stack(self.convs, self.conv_post, x)


class ScaleDiscriminator(nn.Module):
    """Grouped strided 1-D convs on (B, 1, L): HiFi-GAN's DiscriminatorS (first scale spectral-normed)."""

    def __init__(self, width: int, use_spectral_norm: bool = False):
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        w = width  # HiFi-GAN: 128 → 1024
        self.convs = nn.ModuleList(
            [
                norm(nn.Conv1d(1, w, 15, 1, padding=7)),
                norm(nn.Conv1d(w, w * 2, 41, 2, groups=4, padding=20)),
                norm(nn.Conv1d(w * 2, w * 4, 41, 2, groups=16, padding=20)),
                norm(nn.Conv1d(w * 4, w * 8, 41, 4, groups=16, padding=20)),
                norm(nn.Conv1d(w * 8, w * 8, 41, 4, groups=16, padding=20)),
                norm(nn.Conv1d(w * 8, w * 8, 5, 1, padding=2)),
            ]
        )
        self.conv_post = norm(nn.Conv1d(w * 8, 1, 3, 1, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _conv_stack(self.convs, self.conv_post, x)


class MultiDiscriminator(nn.Module):
    """MPD + MSD together: waveform (B, 1, L) → lists of logits and of feature-map lists."""

    def __init__(self, config: DiscriminatorConfig | None = None):
        super().__init__()
        cfg = config or DiscriminatorConfig()
        self.config = cfg
        self.period_discs = nn.ModuleList(PeriodDiscriminator(p, cfg.width) for p in cfg.periods)
        self.scale_discs = nn.ModuleList(
            ScaleDiscriminator(cfg.width, use_spectral_norm=i == 0) for i in range(cfg.num_scales)
        )

    def forward(self, wave: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        logits, feats = [], []
        for disc in self.period_discs:
            lg, ft = disc(wave)
            logits.append(lg)
            feats.append(ft)
        x = wave
        for i, disc in enumerate(self.scale_discs):
            if i > 0:
                x = F.avg_pool1d(x, 4, 2, padding=2)
            lg, ft = disc(x)
            logits.append(lg)
            feats.append(ft)
        return logits, feats


def discriminator_loss(
    real_logits: list[torch.Tensor], fake_logits: list[torch.Tensor]
) -> torch.Tensor:
    """Least-squares GAN loss of the discriminators: mean (1 - D(real))² + D(fake)²."""
    return sum(
        torch.mean((1.0 - r) ** 2) + torch.mean(f**2)
        for r, f in zip(real_logits, fake_logits, strict=True)
    )


def generator_adv_loss(fake_logits: list[torch.Tensor]) -> torch.Tensor:
    """Least-squares GAN loss of the generator: mean (1 - D(fake))²."""
    return sum(torch.mean((1.0 - f) ** 2) for f in fake_logits)


def feature_matching_loss(
    real_feats: list[list[torch.Tensor]], fake_feats: list[list[torch.Tensor]]
) -> torch.Tensor:
    """L1 between discriminator feature maps of real and generated audio (real detached)."""
    loss = 0.0
    for rf, ff in zip(real_feats, fake_feats, strict=True):
        for r, f in zip(rf, ff, strict=True):
            loss = loss + torch.mean(torch.abs(r.detach() - f))
    return loss
