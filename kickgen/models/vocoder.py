"""HiFiGANGenerator: log-mel (B, 128, T) → waveform (B, 1, T·512) at 44.1 kHz.

A HiFi-GAN (Kong et al. 2020) generator: a 7-tap input conv, transposed-conv upsampling stages,
each followed by a multi-receptive-field (MRF) fusion of dilated residual blocks. Weight norm is
on every learned conv while training; ``remove_weight_norm()`` folds it away for inference.

Two changes for kicks, both switchable in :class:`VocoderConfig`:

- **Body source** (as in neural source-filter vocoders): a kick's body sits at 40–80 Hz, below
  the mel frame rate 44100 / 512 ≈ 86 Hz. A stack of convolutions that is equivariant to
  one-frame shifts turns a steady mel into a waveform that repeats every 512 samples, so a plain
  HiFi-GAN trained on our compute put every body at 86 Hz. The generator therefore estimates the
  body pitch and amplitude of every frame from the mel itself (:class:`BodyPitch`, a matched
  filter against the mel of pure sines), integrates the pitch into a phase, and feeds sines of
  that phase into every upsampling stage. Nothing but the mel goes in, as the contract says.
- **iSTFT head** (as in iSTFTNet, Kaneko et al. 2022): the last upsampling stages are replaced by
  an inverse STFT of predicted magnitude and phase (n_fft 32, hop 8), so two transposed-conv
  stages (8 · 8) reach the hop length 512 and the high-rate stages, most of the cost, go away.
  ``istft_n_fft=0`` gives HiFi-GAN V1's waveform head (used to rebuild the reference's vocoder).
- **Noise source** (``noise_source``, as the unvoiced source of neural source-filter vocoders and
  the noise inputs of Parallel WaveGAN): white noise at the sample rate goes into every stage
  beside the body source. Without it, everything the generator makes comes from frame-rate
  features through convolutions that shift with the frame grid, so the noise of a kick's decay
  repeats every 512 samples (a comb the ear hears as a buzz at 86 Hz, measured by
  :func:`kickgen.evaluation.metrics.frame_comb`). At inference the noise is one fixed sequence
  (:func:`fixed_noise`), the same for every clip, so outputs stay deterministic and do not
  depend on the batch a clip is vocoded in; training draws fresh noise per crop.

In eval mode the waveform then goes through :func:`kickgen.griffin_lim.noise_phase_high_band`
(``noise_phase_hz``: the band above it takes the phase of fixed noise after the click, which
removes the frame-rate comb that the noise source alone did not) and
:func:`kickgen.griffin_lim.refine_to_mel` (``refine_iters`` iterations): alternating projections
that move its band energies onto the input mel and keep its own phase and fine structure.
Training sees the raw generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from kickgen.audio import HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, mel_spectrogram
from kickgen.griffin_lim import refine_to_mel, refined_length

LRELU_SLOPE = 0.1


@dataclass
class VocoderConfig:
    in_channels: int = 128  # mel bands
    upsample_initial_channel: int = 128  # channels after the input conv; halved per stage
    upsample_rates: tuple[int, ...] = (8, 8)  # product × iSTFT hop = hop length 512
    upsample_kernel_sizes: tuple[int, ...] = (16, 16)  # 2× the rates (no checkerboard)
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)  # MRF branches
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    mel_center: float = 0.0  # log-mel value mapped to 0 at the input
    mel_scale: float = 6.0  # log-mel units per unit of normalised input
    istft_n_fft: int = 32  # iSTFT head (hop n_fft/4); 0 = HiFi-GAN V1 conv + tanh waveform head
    source_harmonics: int = 3  # body-source sines (harmonics of the body pitch); 0 = no source
    noise_source: bool = True  # white noise into every stage (breaks the frame-rate comb); files
    # saved before this field existed were built without it (FIELDS_ADDED)
    refine_iters: int = 16  # eval mode: refine_to_mel iterations on the output; 0 = raw generator
    # eval mode, first: noise phase above this after the click (0 = off); a checkpoint saved
    # before this field existed gets this default
    noise_phase_hz: float = 1000.0
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


class BodyPitch(nn.Module):
    """Per-frame body pitch (Hz) and amplitude of a kick from its log-mel: (B, 128, T) → 2 × (B, T).

    A matched filter: the mel power of the lowest ``bands`` bands is projected onto the
    (normalised) mel power of pure sines from ``f_min`` to ``f_max`` Hz in 0.5 Hz steps and the
    best-matching sine wins; its projection gives the amplitude. On real validation kicks the
    median error against the waveform's measured body pitch is under 1 Hz, where interpolating
    between the 20 Hz-wide mel bands is off by 2–6 Hz. Frames more than ``floor_db`` below the
    loudest frame keep the pitch of the last louder frame, so the phase runs on smoothly.
    """

    def __init__(
        self, bands: int = 14, f_min: float = 20.0, f_max: float = 300.0, floor_db: float = 50.0
    ):
        super().__init__()
        freqs = torch.arange(f_min, f_max, 0.5)
        t = torch.arange(2 * N_FFT) / SAMPLE_RATE
        sines = torch.sin(2 * math.pi * freqs[:, None] * t[None])
        power = mel_spectrogram(sines)[:, :bands, 2]  # (F, bands), a frame inside the sine
        norm = power.norm(dim=1, keepdim=True)
        self.register_buffer("freqs", freqs, persistent=False)
        self.register_buffer("templates", power / norm, persistent=False)  # unit vectors
        self.register_buffer(
            "template_norm", norm[:, 0], persistent=False
        )  # |mel power| of a unit sine
        self.bands = bands
        self.floor = 10.0 ** (-floor_db / 10.0)

    def scores(self, log_mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 128, T) log-mel → (matched-filter scores (B, F, T), low-band power norm (B, T)).

        The score of sine f in a frame is the projection of the frame's low-band mel power onto
        that sine's unit template; divided by the norm it is their cosine similarity, in [0, 1].
        Differentiable: the VAE's pitch loss (:func:`kickgen.train.vae.pitch_loss`) reads it too.
        """
        power = log_mel[:, : self.bands].float().exp()  # (B, bands, T)
        score = torch.einsum("fk,bkt->bft", self.templates, power)  # (B, F, T)
        return score, power.norm(dim=1)

    @torch.no_grad()
    def forward(self, log_mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score, _ = self.scores(log_mel)
        best, idx = score.max(dim=1)  # (B, T)
        f0 = self.freqs[idx]
        amplitude = (best.clamp(min=0) / self.template_norm[idx]).sqrt()  # sine amplitude
        loud = best >= best.amax(dim=1, keepdim=True) * self.floor
        loud[:, 0] = True
        frames = torch.arange(f0.shape[1], device=f0.device).expand_as(f0)
        last_loud = torch.where(loud, frames, torch.zeros_like(frames)).cummax(dim=1).values
        return f0.gather(1, last_loud), amplitude


def body_source(f0: torch.Tensor, amplitude: torch.Tensor, harmonics: int) -> torch.Tensor:
    """Frame pitch and amplitude (B, T) → source (B, harmonics + 1, T·512) at the sample rate.

    Channels: sin(k·φ) for k = 1…harmonics, where φ integrates the pitch (linearly interpolated
    between frame centres, frame j at sample j·512), and amplitude · sin(φ), a sine model of the
    body. The phase starts at 0 on the first sample.
    """
    b, t = f0.shape
    pos = torch.arange(t * HOP_LENGTH, device=f0.device, dtype=torch.float32) / HOP_LENGTH
    i0 = pos.floor().long().clamp(max=t - 1)
    i1 = (i0 + 1).clamp(max=t - 1)
    frac = pos - i0
    f_up = f0[:, i0] * (1 - frac) + f0[:, i1] * frac  # (B, L) Hz
    a_up = amplitude[:, i0] * (1 - frac) + amplitude[:, i1] * frac
    step = f_up.double() / SAMPLE_RATE  # cycles per sample
    cycles = torch.cumsum(step, dim=1) - step  # exclusive: sample 0 has phase 0
    phase = (2 * math.pi * cycles.remainder(1.0)).float()
    sines = [torch.sin(k * phase) for k in range(1, harmonics + 1)]
    return torch.stack([*sines, a_up * torch.sin(phase)], dim=1)


NOISE_SEED = 0  # the inference noise sequence
GENERATOR_MARGIN_FRAMES = 8  # eval mode: frames generated past those refine_to_mel refines


def fixed_noise(length: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The noise source's input at inference: (1, 1, length) standard normal, seed ``NOISE_SEED``."""
    gen = torch.Generator().manual_seed(NOISE_SEED)
    return torch.randn(1, 1, length, generator=gen).to(device)


def _zero_conv(channels_in: int, channels_out: int, stride: int) -> nn.Conv1d:
    """A strided conv from the sample rate to a stage's rate, starting at zero (the stage
    first works as if the input were absent and learns to use it). Kernel 2 · stride, so that
    each output sees two of its hops; a stage at the sample rate itself (stride 1) gets kernel 1,
    as kernel 2 without padding would leave it one sample short."""
    kernel = 2 * stride if stride > 1 else 1
    conv = nn.Conv1d(channels_in, channels_out, kernel, stride, padding=stride // 2)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class HiFiGANGenerator(nn.Module):
    """Log-mel (B, in_channels, T) → waveform (B, 1, T·512), full scale ±1.

    The waveform head ends in tanh, as HiFi-GAN V1. The iSTFT head is not clamped: a hard clamp
    holds overshooting peaks flat for many samples (a clipped kick), and gives training no
    gradient to pull them back; the pipeline scales every kick to its 0.95 peak afterwards.
    """

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
        istft_n_fft: int = VocoderConfig.istft_n_fft,
        source_harmonics: int = VocoderConfig.source_harmonics,
        noise_source: bool = VocoderConfig.noise_source,
        refine_iters: int = VocoderConfig.refine_iters,
        noise_phase_hz: float = VocoderConfig.noise_phase_hz,
    ):
        super().__init__()
        istft_hop = istft_n_fft // 4 if istft_n_fft else 1
        if math.prod(upsample_rates) * istft_hop != HOP_LENGTH:
            raise ValueError(
                f"upsample_rates {upsample_rates} (times the iSTFT hop {istft_hop}) must multiply "
                f"to the hop length {HOP_LENGTH}"
            )
        if len(upsample_kernel_sizes) != len(upsample_rates):
            raise ValueError("upsample_kernel_sizes needs one kernel per upsample rate")
        if in_channels != N_MELS and source_harmonics:
            raise ValueError(f"the body source reads the {N_MELS}-band mel; use source_harmonics=0")
        self.mel_center = mel_center
        self.mel_scale = mel_scale
        self.num_kernels = len(resblock_kernel_sizes)
        self.istft_n_fft = istft_n_fft
        self.istft_hop = istft_hop
        self.source_harmonics = source_harmonics
        self.refine_iters = refine_iters
        self.noise_phase_hz = noise_phase_hz
        self.conv_pre = weight_norm(nn.Conv1d(in_channels, upsample_initial_channel, 7, padding=3))
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        self.source_convs = nn.ModuleList()
        self.noise_convs = nn.ModuleList()
        ch = upsample_initial_channel
        rate_so_far = 1
        for rate, kernel in zip(upsample_rates, upsample_kernel_sizes, strict=True):
            up = nn.ConvTranspose1d(ch, ch // 2, kernel, stride=rate, padding=(kernel - rate) // 2)
            self.ups.append(_init_wn(up))
            ch //= 2
            rate_so_far *= rate
            for k, d in zip(resblock_kernel_sizes, resblock_dilations, strict=True):
                self.resblocks.append(MRFResBlock(ch, k, tuple(d)))
            if source_harmonics:  # sample-rate source → this stage's rate
                self.source_convs.append(
                    _zero_conv(source_harmonics + 1, ch, HOP_LENGTH // rate_so_far)
                )  # starts as a plain HiFi-GAN; learns to use the source
            if noise_source:
                self.noise_convs.append(_zero_conv(1, ch, HOP_LENGTH // rate_so_far))
        self.body_pitch = BodyPitch() if source_harmonics else None
        out_channels = istft_n_fft + 2 if istft_n_fft else 1  # (n_fft/2+1) magnitudes + phases
        self.conv_post = _init_wn(nn.Conv1d(ch, out_channels, 7, padding=3))
        if istft_n_fft:
            self.register_buffer("istft_window", torch.hann_window(istft_n_fft), persistent=False)

    def forward(self, log_mel: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 128, T) or (1, 128, T) log-mel → (B, 1, T·512).

        ``noise`` (B or 1, 1, T·512): the noise source's input (only with ``noise_source``);
        default :func:`fixed_noise`.

        In eval mode with refinement the generator runs only on the frames that
        :func:`~kickgen.griffin_lim.refine_to_mel` refines (up to the last frame within 80 dB of
        the peak, plus its margin) and ``GENERATOR_MARGIN_FRAMES`` more; the samples after them
        are silence. A kick is quiet long before its 2 s end, so most of the generator's work
        went into samples more than 80 dB down.
        """
        frames = log_mel.shape[-1]
        if self.noise_convs and noise is None:
            noise = fixed_noise(frames * HOP_LENGTH, log_mel.device)
        keep = frames
        if not self.training and self.refine_iters:
            needed = refined_length(log_mel, frames * HOP_LENGTH) // HOP_LENGTH
            keep = min(frames, needed + GENERATOR_MARGIN_FRAMES)
        if noise is not None:
            noise = noise[..., : keep * HOP_LENGTH]
        wave = self._generate(log_mel[..., :keep], noise)
        return self._refine(F.pad(wave, (0, (frames - keep) * HOP_LENGTH)), log_mel)

    def _generate(self, log_mel: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """The generator itself: (B, 128, T) → raw waveform (B, 1, T·512)."""
        frames = log_mel.shape[-1]
        x = self.conv_pre((log_mel - self.mel_center) / self.mel_scale)
        source = None
        if self.body_pitch is not None:
            source = body_source(*self.body_pitch(log_mel), self.source_harmonics)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            if source is not None:
                x = x + self.source_convs[i](source)[..., : x.shape[-1]]
            if self.noise_convs:
                x = x + self.noise_convs[i](noise)[..., : x.shape[-1]]
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels  # MRF fusion
        x = self.conv_post(F.leaky_relu(x))  # default slope 0.01, as HiFi-GAN
        if not self.istft_n_fft:
            return torch.tanh(x)
        bins = self.istft_n_fft // 2 + 1
        magnitude = torch.exp(x[:, :bins].clamp(max=math.log(100.0)))
        spec = torch.polar(magnitude, x[:, bins:])  # phase unconstrained, as Vocos
        wave = torch.istft(
            spec,
            self.istft_n_fft,
            self.istft_hop,
            window=self.istft_window,
            center=True,
            length=frames * HOP_LENGTH,
        )
        return wave.unsqueeze(1)

    def _refine(self, wave: torch.Tensor, log_mel: torch.Tensor) -> torch.Tensor:
        """(B, 1, L) → (B, 1, L): :func:`refine_to_mel` in eval mode, the raw output in training."""
        if self.training or not self.refine_iters:
            return wave
        refined = refine_to_mel(
            wave[:, 0], log_mel, self.refine_iters, noise_phase_hz=self.noise_phase_hz
        )
        return refined.unsqueeze(1)

    def remove_weight_norm(self) -> None:
        """Fold the weight-norm parametrisation into plain weights (inference; idempotent)."""
        for module in self.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
