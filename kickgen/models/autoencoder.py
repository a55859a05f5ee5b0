"""KickVAE: log-mel spectrogram (B, 1, 128, 173) <-> latent (B, latent_dim, 8, 11).

With ``time_fold = 1``, four stride-2 stages halve both axes (128→64→32→16→8, 173→87→44→22→11);
the decoder mirrors them with transposed convolutions and crops 128×176 back to 128×173. One
latent column then spans 16 mel frames (186 ms), longer than a kick's whole pitch sweep.

``time_fold`` keeps finer time inside the same latent shape: with ``time_fold = f`` (2 or 4) the
last log2(f) stages halve frequency only, the latent is ``(latent_dim / f, 8, 11·f)`` (one column
per 4 mel frames, 46 ms, at f = 4), and it is folded into ``(latent_dim, 8, 11)`` by
space-to-depth along time (fine column f·j + k becomes channel block k of column j); ``decode``
unfolds it. The guide fixes only the latent's shape, so the diffusion model sees
``(latent_dim, 8, 11)`` either way. The shipped VAE (the defaults) folds by 4 with latent 32:
8 channels per 46 ms column.

The latent the outside world sees is *scaled*: ``encode`` returns ``(mu - latent_shift) /
latent_scale`` and ``decode`` undoes it, with shift and scale stored as buffers (so they travel in
``model_state_dict``). Training sets them from the training set after the VAE has converged, so
the diffusion model sees roughly unit-variance latents and ``vae.decode(sampler output)`` is right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from kickgen.audio import LOG_MEL_MIN, N_FRAMES, N_MELS

FIT_RANGE_NEPERS = 8.0 * math.log(10.0)  # 80 dB of power in natural-log units


@dataclass
class VAEConfig:
    # The defaults are the shipped VAE's (the guide builds KickVAE(latent_dim=cfg.latent_dim) and
    # loads the file into it); files store their own values and load as they were saved.
    latent_dim: int = 32  # latent channels; the latent is (latent_dim, 8, 11)
    channels: tuple[int, ...] = (16, 32, 64, 128)  # output channels of the 4 stride-2 stages
    norm_groups: int = 4  # GroupNorm groups in every residual block
    mel_center: float = 0.0  # log-mel value mapped to 0 at the input (log-mels span ≈ -11.5..12.5)
    mel_scale: float = 6.0  # log-mel units per unit of normalised input
    time_fold: int = 4  # 1, 2 or 4: latent columns per 16 mel frames, folded into the channels


class ResBlock2d(nn.Module):
    """GroupNorm → SiLU → 3×3 conv, twice, plus identity: (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class KickVAE(nn.Module):
    """Variational autoencoder of kick log-mels.

    ``encode(x)`` → scaled mu ``(B, latent_dim, 8, 11)``; ``decode(z)`` → log-mel ``(B, 1, 128, 173)``.
    Training uses ``encode_dist`` (unscaled mu, logvar) and ``decode_raw`` (unclamped).
    """

    def __init__(
        self,
        latent_dim: int = VAEConfig.latent_dim,
        channels: tuple[int, ...] = VAEConfig.channels,
        norm_groups: int = VAEConfig.norm_groups,
        mel_center: float = VAEConfig.mel_center,
        mel_scale: float = VAEConfig.mel_scale,
        time_fold: int = VAEConfig.time_fold,
    ):
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"KickVAE needs 4 stage channels (one per halving), got {channels}")
        if time_fold not in (1, 2, 4) or latent_dim % time_fold:
            raise ValueError(
                f"time_fold {time_fold} must be 1, 2 or 4 and divide latent_dim {latent_dim}"
            )
        self.config = VAEConfig(latent_dim, tuple(channels), norm_groups, mel_center, mel_scale,
                                time_fold)  # fmt: skip
        self.latent_dim = latent_dim
        self.time_fold = time_fold
        fine = latent_dim // time_fold  # channels of the unfolded latent
        freq_only = {1: 0, 2: 1, 4: 2}[time_fold]  # trailing stages that keep the time axis
        c = list(channels)
        # encoder: (B, 1, 128, 173) → (B, c3, 8, 11·time_fold)
        self.enc_in = nn.Conv2d(1, c[0], 3, padding=1)
        enc = []
        prev = c[0]
        for i, ch in enumerate(c):
            stride = (2, 1) if i >= 4 - freq_only else 2
            enc += [nn.Conv2d(prev, ch, 3, stride=stride, padding=1), ResBlock2d(ch, norm_groups)]
            prev = ch
        self.encoder = nn.Sequential(*enc)
        self.enc_out = nn.Sequential(
            nn.GroupNorm(norm_groups, c[-1]), nn.SiLU(), nn.Conv2d(c[-1], 2 * fine, 1)
        )
        # decoder: (B, latent_dim / f, 8, 11·f) → (B, 1, 128, 176) → crop to 173 frames
        self.dec_in = nn.Sequential(
            nn.Conv2d(fine, c[-1], 3, padding=1), ResBlock2d(c[-1], norm_groups)
        )
        dec = []
        outs = c[-2::-1] + [c[0]]  # e.g. 128, 64, 32, 32
        prev = c[-1]
        for i, ch in enumerate(outs):
            up = (
                nn.ConvTranspose2d(prev, ch, (4, 3), stride=(2, 1), padding=1)
                if i < freq_only  # mirrors the encoder's frequency-only stages
                else nn.ConvTranspose2d(prev, ch, 4, stride=2, padding=1)
            )
            dec += [nn.GroupNorm(norm_groups, prev), nn.SiLU(), up]
            if i < len(outs) - 1:  # no residual block at full resolution (too slow on CPU)
                dec.append(ResBlock2d(ch, norm_groups))
            prev = ch
        self.decoder = nn.Sequential(*dec)
        self.dec_out = nn.Sequential(nn.SiLU(), nn.Conv2d(prev, 1, 3, padding=1))
        # latent normalisation, set after training (see kickgen.train.vae)
        self.register_buffer("latent_shift", torch.zeros(1, latent_dim, 1, 1))
        self.register_buffer("latent_scale", torch.ones(1, latent_dim, 1, 1))

    # ------------------------------------------------------------------ time folding
    def fold(self, z: torch.Tensor) -> torch.Tensor:
        """Fine latent (B, C, 8, 11·f) → (B, C·f, 8, 11): fine column f·j + k → block k of column j."""
        f = self.time_fold
        if f == 1:
            return z
        b, c, h, w = z.shape
        return z.view(b, c, h, w // f, f).permute(0, 4, 1, 2, 3).reshape(b, c * f, h, w // f)

    def unfold(self, z: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`fold`: (B, C·f, 8, 11) → (B, C, 8, 11·f)."""
        f = self.time_fold
        if f == 1:
            return z
        b, cf, h, w = z.shape
        return z.view(b, f, cf // f, h, w).permute(0, 2, 3, 4, 1).reshape(b, cf // f, h, w * f)

    # ------------------------------------------------------------------ training interface
    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel (B, 1, 128, 173) → unscaled (mu, logvar), each (B, latent_dim, 8, 11)."""
        cfg = self.config
        h = self.enc_in((x - cfg.mel_center) / cfg.mel_scale)
        h = self.enc_out(self.encoder(h))
        mu, logvar = h.chunk(2, dim=1)
        return self.fold(mu), self.fold(logvar.clamp(-30.0, 20.0))

    def decode_raw(self, z_raw: torch.Tensor) -> torch.Tensor:
        """Unscaled latent (B, latent_dim, 8, 11) → unclamped log-mel (B, 1, 128, 173)."""
        h = self.dec_out(self.decoder(self.dec_in(self.unfold(z_raw))))
        h = h[..., :N_MELS, :N_FRAMES]  # (B, 1, 128, 176) → (B, 1, 128, 173)
        return h * self.config.mel_scale + self.config.mel_center

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reparameterised pass for training: x (B,1,128,173) → (recon, mu, logvar), unscaled."""
        mu, logvar = self.encode_dist(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode_raw(z), mu, logvar

    # ------------------------------------------------------------------ inference interface
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel (B, 1, 128, 173) → scaled latent mean (B, latent_dim, 8, 11)."""
        mu, _ = self.encode_dist(x)
        return (mu - self.latent_shift) / self.latent_scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latent (B, latent_dim, 8, 11) → log-mel (B, 1, 128, 173), floored at log(1e-5)."""
        mel = self.decode_raw(z * self.latent_scale + self.latent_shift)
        return mel.clamp(min=LOG_MEL_MIN)

    @torch.no_grad()
    def set_latent_stats(self, mu: torch.Tensor) -> None:
        """Set shift/scale from unscaled means (N, latent_dim, 8, 11): per-channel mean, global std."""
        shift = mu.mean(dim=(0, 2, 3)).view(1, -1, 1, 1)
        scale = (mu - shift).std().clamp(min=1e-6)  # one scale keeps channels' relative sizes
        self.latent_shift.copy_(shift)
        self.latent_scale.fill_(float(scale))


def fit_latent(vae: nn.Module, x: torch.Tensor, steps: int = 25, lr: float = 0.02) -> torch.Tensor:
    """The scaled latents ``(B, latent_dim, 8, 11)`` whose decodings are nearest the log-mels
    ``x (B, 1, 128, 173)``: from ``vae.encode``, ``steps`` Adam steps on the L1 distance between
    the decoding and ``x``, both floored 80 dB below ``x``'s peak (the eval's log-mel distance).

    The encoder is amortised: its mean is a good latent, not the best one. On the 24 real
    validation recordings 25 steps take the round trip from 2.21 to 1.96 dB log-mel and a variation
    at strength 0 from 2.54 to 2.43 dB (docs/experiments.md, *Init kicks*), about 0.25 s per clip on one
    core. Each clip is encoded and fitted on its own: Adam's steps follow the sign of gradients
    that rounding alone would change, so in a batch a clip's latent would depend on the others.
    Runs with autograd on, also when called in inference mode; only the latent moves.
    """
    return torch.cat([_fit_one(vae, clip, steps, lr) for clip in x.split(1)])


def _fit_one(vae: nn.Module, x: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone()
        latent = vae.encode(x).detach().clone().requires_grad_(True)
        floor = x.amax() - FIT_RANGE_NEPERS
        target = torch.maximum(x, floor)
        opt = torch.optim.Adam([latent], lr=lr)
        for _ in range(steps):
            loss = (torch.maximum(vae.decode(latent), floor) - target).abs().mean()
            (latent.grad,) = torch.autograd.grad(loss, [latent])
            opt.step()
        return latent.detach()
