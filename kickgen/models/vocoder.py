"""HiFiGANGenerator: log-mel (B, 128, T) → waveform (B, 1, T·512) at 44.1 kHz.

A HiFi-GAN (Kong et al. 2020) generator: a 7-tap input conv, transposed-conv upsampling stages
whose strides multiply to the hop length 512, each followed by a multi-receptive-field (MRF)
fusion of dilated residual blocks, and a 7-tap output conv with tanh. Weight norm is on every conv
while training; ``remove_weight_norm()`` folds it away for inference.

Sized for training on a few CPU cores: 128 initial channels instead of HiFi-GAN V1's 512 (the
reference's 256), halving at each of the four upsampling stages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from kickgen.audio import HOP_LENGTH

LRELU_SLOPE = 0.1


@dataclass
class VocoderConfig:
    in_channels: int = 128  # mel bands
    upsample_initial_channel: int = 128  # channels after the input conv; halved per stage
    upsample_rates: tuple[int, ...] = (8, 8, 4, 2)  # product = hop length 512
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 8, 4)  # 2× the rates (no checkerboard)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)  # MRF branches
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    mel_center: float = 0.0  # log-mel value mapped to 0 at the input
    mel_scale: float = 6.0  # log-mel units per unit of normalised input
    # training recipe (read by kickgen.train.vocoder)
    segment_samples: int = 8192  # waveform crop per training example (16 frames)
    mel_loss_weight: float = 45.0  # weight of the L1 log-mel loss (HiFi-GAN's λ_mel)
    feature_loss_weight: float = 2.0  # weight of discriminator feature matching (λ_fm)
    adv_loss_weight: float = 1.0  # weight of the least-squares adversarial loss


def _padding(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


def _init_wn(conv: nn.Module) -> nn.Module:
    """HiFi-GAN init (weights ~ N(0, 0.01)), then weight norm."""
    nn.init.normal_(conv.weight, 0.0, 0.01)
    return weight_norm(conv)


class MRFResBlock(nn.Module):
    """HiFi-GAN ResBlock1: pairs of (dilated conv, conv) with leaky ReLU, residual each: (B,C,L)→(B,C,L)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]):
        super().__init__()
        self.convs1 = nn.ModuleList(
            _init_wn(nn.Conv1d(channels, channels, kernel, dilation=d, padding=_padding(kernel, d)))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            _init_wn(nn.Conv1d(channels, channels, kernel, padding=_padding(kernel)))
            for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            h = c1(F.leaky_relu(x, LRELU_SLOPE))
            x = x + c2(F.leaky_relu(h, LRELU_SLOPE))
        return x


class HiFiGANGenerator(nn.Module):
    """Log-mel (B, in_channels, T) → waveform in [-1, 1], (B, 1, T·prod(upsample_rates))."""

    def __init__(
        self,
        in_channels: int = VocoderConfig.in_channels,
        upsample_initial_channel: int = VocoderConfig.upsample_initial_channel,
        upsample_rates: tuple[int, ...] = VocoderConfig.upsample_rates,
        upsample_kernel_sizes: tuple[int, ...] = VocoderConfig.upsample_kernel_sizes,
        resblock_kernel_sizes: tuple[int, ...] = VocoderConfig.resblock_kernel_sizes,
        resblock_dilations: tuple[tuple[int, ...], ...] = VocoderConfig.resblock_dilations,
        mel_center: float = VocoderConfig.mel_center,
        mel_scale: float = VocoderConfig.mel_scale,
    ):
        super().__init__()
        if math.prod(upsample_rates) != HOP_LENGTH:
            raise ValueError(
                f"upsample_rates {upsample_rates} must multiply to the hop length {HOP_LENGTH}"
            )
        if len(upsample_kernel_sizes) != len(upsample_rates):
            raise ValueError("upsample_kernel_sizes needs one kernel per upsample rate")
        self.mel_center = mel_center
        self.mel_scale = mel_scale
        self.num_kernels = len(resblock_kernel_sizes)
        self.conv_pre = weight_norm(nn.Conv1d(in_channels, upsample_initial_channel, 7, padding=3))
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        ch = upsample_initial_channel
        for rate, kernel in zip(upsample_rates, upsample_kernel_sizes, strict=True):
            up = nn.ConvTranspose1d(ch, ch // 2, kernel, stride=rate, padding=(kernel - rate) // 2)
            self.ups.append(_init_wn(up))
            ch //= 2
            for k, d in zip(resblock_kernel_sizes, resblock_dilations, strict=True):
                self.resblocks.append(MRFResBlock(ch, k, tuple(d)))
        self.conv_post = _init_wn(nn.Conv1d(ch, 1, 7, padding=3))

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        """(B, 128, T) or (1, 128, T) log-mel → (B, 1, T·512)."""
        x = self.conv_pre((log_mel - self.mel_center) / self.mel_scale)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels  # MRF fusion
        x = self.conv_post(F.leaky_relu(x))  # default slope 0.01, as HiFi-GAN
        return torch.tanh(x)

    def remove_weight_norm(self) -> None:
        """Fold the weight-norm parametrisation into plain weights (inference; idempotent)."""
        for module in self.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
