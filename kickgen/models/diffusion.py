"""LatentUNet (the denoiser on the VAE's 8×11 latent) and NoiseScheduler (the DDPM forward process).

The U-Net predicts ``model.prediction_type`` ("v" for the shipped recipe, or "epsilon"). The type
is stored as a buffer, so ``load_state_dict`` of any checkpoint sets it, even when the model was
built from the guide's three constructor arguments. Samplers turn any prediction into (x0, eps)
with :meth:`NoiseScheduler.split_prediction`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

PREDICTION_TYPES = ("epsilon", "v")


@dataclass
class DiffusionConfig:
    latent_dim: int = 32  # latent channels, equal to the VAE's
    base_channels: int = 64  # U-Net width at 8×11; stages use base_channels * channel_mult
    channel_mult: tuple[int, ...] = (1, 2, 2)  # 8×11 → 4×6 → 2×3
    cond_dim: int = 256  # timestep + prompt embedding width fed to every residual block
    text_embed_dim: int = 64  # keyword embedding width of the KeywordEncoder
    dropout: float = 0.1  # dropout inside residual blocks
    timesteps: int = 1000  # DDPM steps of the forward process
    beta_start: float = 1e-4  # linear beta schedule, first step
    beta_end: float = 0.02  # linear beta schedule, last step
    prediction_type: str = "v"  # "v" (velocity, Salimans & Ho 2022) or "epsilon"
    # steps are divided by this before the sinusoidal embedding (see LatentUNet); 1 = the DDPM one
    time_scale: float = 32.0
    # training recipe (read by kickgen.train.diffusion)
    ema_decay: float = 0.999  # EMA of the weights that ship
    prompt_dropout: float = 0.15  # probability of training on the empty prompt (classifier-free)
    keyword_dropout: float = 0.2  # probability of dropping each single keyword of a prompt
    min_snr_gamma: float = 5.0  # min-SNR loss weighting (Hang et al. 2023); 0 disables it
    # extra loss weight of the latent's first column (the first 186 ms: click, pitch drop and
    # whether the body swells after the hit), relative to the other columns; 0 weighs all alike
    onset_weight: float = 0.0


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding: integer or float steps (B,) → (B, dim)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half
    )
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """Residual block with the conditioning vector added: (B, Cin, H, W), (B, E) → (B, Cout, H, W)."""

    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(16, cin // 4), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(min(16, cout // 4), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H·W positions: (B, C, H, W) → (B, C, H, W)."""

    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.norm = nn.GroupNorm(min(16, channels // 4), channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        seq = self.norm(x).flatten(2).transpose(1, 2)  # (B, H·W, C)
        out, _ = self.attn(seq, seq, seq, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class LatentUNet(nn.Module):
    """Denoiser on scaled VAE latents.

    ``forward(x, t, cond)``: x (B, latent_dim, 8, 11), t (B,) integer steps, cond (B, cond_dim)
    from the KeywordEncoder → prediction (B, latent_dim, 8, 11) of type ``self.prediction_type``.

    The steps enter through a sinusoidal embedding of ``t / time_scale``. The DDPM embedding
    (``time_scale`` 1) has a feature that turns once every 6.3 steps, and the U-Net's output wiggles
    at that scale (already at initialisation, and training never removes it): a solver taking
    steps of 20–50 timesteps samples those wiggles as noise, and DPM-Solver++ 20 strayed further
    from the exact solution than DDIM 50. At 32 the fastest feature turns once every 201 steps
    and the output is smooth in t (BENCHMARKS.md, *Solver agreement*).
    """

    def __init__(
        self,
        latent_dim: int = DiffusionConfig.latent_dim,
        base_channels: int = DiffusionConfig.base_channels,
        cond_dim: int = DiffusionConfig.cond_dim,
        channel_mult: tuple[int, ...] = DiffusionConfig.channel_mult,
        dropout: float = DiffusionConfig.dropout,
        prediction_type: str = DiffusionConfig.prediction_type,
        time_scale: float = DiffusionConfig.time_scale,
    ):
        super().__init__()
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(
                f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}"
            )
        self.latent_dim = latent_dim
        self.time_dim = base_channels
        self.time_scale = time_scale
        self.time_mlp = nn.Sequential(
            nn.Linear(base_channels, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim)
        )
        chans = [base_channels * m for m in channel_mult]  # e.g. 64, 128, 128
        self.conv_in = nn.Conv2d(latent_dim, chans[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        prev = chans[0]
        skip_chans = []
        for i, ch in enumerate(chans):
            self.down_blocks.append(ResBlock(prev, ch, cond_dim, dropout))
            skip_chans.append(ch)
            prev = ch
            is_last = i == len(chans) - 1
            self.downsamples.append(
                nn.Identity() if is_last else nn.Conv2d(ch, ch, 3, stride=2, padding=1)
            )
        self.mid1 = ResBlock(prev, prev, cond_dim, dropout)
        self.mid_attn = SelfAttention(prev)
        self.mid2 = ResBlock(prev, prev, cond_dim, dropout)
        self.up_blocks = nn.ModuleList()
        for ch, skip in zip(reversed(chans), reversed(skip_chans), strict=True):
            self.up_blocks.append(ResBlock(prev + skip, ch, cond_dim, dropout))
            prev = ch
        self.norm_out = nn.GroupNorm(min(16, prev // 4), prev)
        self.conv_out = nn.Conv2d(prev, latent_dim, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)
        # 1 = "v", 0 = "epsilon": a buffer so that load_state_dict carries the checkpoint's type
        self.register_buffer(
            "prediction_code", torch.tensor(PREDICTION_TYPES.index(prediction_type))
        )

    @property
    def prediction_type(self) -> str:
        """What ``forward`` predicts: "v" or "epsilon"."""
        return PREDICTION_TYPES[int(self.prediction_code)]

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        steps = t / self.time_scale  # exact for time_scale 1: the DDPM embedding's steps
        emb = self.time_mlp(timestep_embedding(steps, self.time_dim)) + cond  # (B, cond_dim)
        h = self.conv_in(x)
        skips = []
        for block, down in zip(self.down_blocks, self.downsamples, strict=True):
            h = block(h, emb)
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for block in self.up_blocks:
            skip = skips.pop()
            if h.shape[-2:] != skip.shape[-2:]:  # 2×3 → 4×6 → 8×11 (nearest, then crop)
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")[
                    ..., : skip.shape[-2], : skip.shape[-1]
                ]
            h = block(torch.cat([h, skip], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


class NoiseScheduler(nn.Module):
    """Linear-beta DDPM forward process. Holds no parameters, only schedule buffers.

    ``alpha_bars[t]`` = ∏_{s≤t} (1 - beta_s), shape (timesteps,).
    """

    def __init__(
        self,
        timesteps: int = DiffusionConfig.timesteps,
        beta_start: float = DiffusionConfig.beta_start,
        beta_end: float = DiffusionConfig.beta_end,
    ):
        super().__init__()
        self.timesteps = timesteps
        betas = torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)
        alpha_bars = torch.cumprod(1.0 - betas, dim=0)
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas", (1.0 - betas).float(), persistent=False)
        self.register_buffer("alpha_bars", alpha_bars.float(), persistent=False)

    def _coefs(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ab = self.alpha_bars.to(t.device)[t].view(-1, 1, 1, 1)
        return ab.sqrt(), (1.0 - ab).sqrt()

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ᾱ_t)·x0 + sqrt(1-ᾱ_t)·noise, all (B, C, H, W), t (B,)."""
        a, s = self._coefs(t)
        return a * x0 + s * noise

    def velocity(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v-prediction target: v = sqrt(ᾱ_t)·noise - sqrt(1-ᾱ_t)·x0."""
        a, s = self._coefs(t)
        return a * noise - s * x0

    def split_prediction(
        self, model_output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, prediction_type: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn a model output of ``prediction_type`` into (x0, eps) estimates at step t (B,)."""
        a, s = self._coefs(t)
        if prediction_type == "v":
            x0 = a * x_t - s * model_output
            eps = s * x_t + a * model_output
        elif prediction_type == "epsilon":
            eps = model_output
            x0 = (x_t - s * eps) / a
        else:
            raise ValueError(
                f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}"
            )
        return x0, eps

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio ᾱ_t / (1 - ᾱ_t), shape (B,)."""
        ab = self.alpha_bars.to(t.device)[t]
        return ab / (1.0 - ab)
