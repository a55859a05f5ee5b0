"""Griffin-Lim fallback vocoder: log-mel ``(B, 128, T)`` → waveform ``(B, T·512 − 512)``.

Used only when no HiFi-GAN checkpoint is given. Two stages:

1. Mel inversion. The mel power is ``M = Fᵀ P`` with the filterbank ``F (1025, 128)`` and the
   power spectrogram ``P ≥ 0``. The reference takes the pseudo-inverse of ``Fᵀ`` and clamps the
   negative powers it produces; kickgen solves the non-negative least-squares problem
   ``min_{P ≥ 0} ½‖Fᵀ P − M‖²`` with accelerated projected gradient (FISTA), started from the
   clamped pseudo-inverse.
2. Phase recovery. Fast Griffin-Lim (Perraudin, Balazs & Søndergaard 2013): Griffin-Lim with a
   momentum term (0.99) on the projected spectrogram, which converges in far fewer iterations
   than plain Griffin-Lim.

:func:`reference_log_mel_to_audio` keeps the reference's recipe (pseudo-inverse, 64 plain
iterations) for comparison; ``kickgen bench --griffin-lim`` measures both.
"""

from __future__ import annotations

import functools

import torch

from kickgen.audio import HOP_LENGTH, N_FFT, N_FRAMES, N_MELS, NUM_SAMPLES, mel_filterbank

NNLS_ITERS = 200  # FISTA iterations of the mel inversion
FAST_GL_ITERS = 32  # phase iterations with momentum
MOMENTUM = 0.99  # Perraudin et al.'s recommended value
REFERENCE_GL_ITERS = 64  # the reference's plain Griffin-Lim


@functools.lru_cache(maxsize=4)
def _mel_basis(device: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(Fᵀ (128, 1025), pinv(Fᵀ) (1025, 128), Lipschitz constant of the NNLS gradient)``."""
    fb = mel_filterbank().double()  # (1025, 128)
    a = fb.T.contiguous()  # (128, 1025): mel = a @ power
    pinv = torch.linalg.pinv(a)  # (1025, 128)
    lipschitz = float(torch.linalg.eigvalsh(a @ a.T).max())
    return a.float().to(device), pinv.float().to(device), lipschitz


def mel_to_power_pinv(mel_power: torch.Tensor) -> torch.Tensor:
    """The reference's inversion: ``pinv(Fᵀ) M`` clamped at 0. ``(..., 128, T)`` → ``(..., 1025, T)``."""
    _, pinv, _ = _mel_basis(str(mel_power.device))
    return (pinv @ mel_power).clamp(min=0.0)


def mel_to_power_nnls(mel_power: torch.Tensor, n_iter: int = NNLS_ITERS) -> torch.Tensor:
    """Non-negative least squares ``min_{P ≥ 0} ½‖Fᵀ P − M‖²`` by FISTA.

    ``(..., 128, T)`` mel power → ``(..., 1025, T)`` linear power, every entry ≥ 0.
    """
    a, _, lipschitz = _mel_basis(str(mel_power.device))
    step = 1.0 / lipschitz
    p = mel_to_power_pinv(mel_power)  # feasible start
    y, t = p, 1.0
    for _ in range(n_iter):
        grad = a.T @ (a @ y - mel_power)  # (..., 1025, T)
        p_next = (y - step * grad).clamp(min=0.0)
        t_next = 0.5 * (1.0 + (1.0 + 4.0 * t * t) ** 0.5)
        y = p_next + ((t - 1.0) / t_next) * (p_next - p)
        p, t = p_next, t_next
    return p


def _stft(wave: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    return torch.stft(
        wave, N_FFT, HOP_LENGTH, N_FFT, window, center=True, pad_mode="reflect", return_complex=True
    )


def _istft(spec: torch.Tensor, window: torch.Tensor, length: int) -> torch.Tensor:
    return torch.istft(spec, N_FFT, HOP_LENGTH, N_FFT, window, center=True, length=length)


def default_length(n_frames: int) -> int:
    """Samples to rebuild from ``n_frames`` centred frames: 88,200 for the 173-frame clip."""
    return NUM_SAMPLES if n_frames == N_FRAMES else (n_frames - 1) * HOP_LENGTH


def griffin_lim(
    magnitude: torch.Tensor,
    n_iter: int = FAST_GL_ITERS,
    momentum: float = MOMENTUM,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Phase recovery from an STFT magnitude ``(B, 1025, T)`` → waveform ``(B, L)``.

    ``L`` is :func:`default_length` (88,200 for T = 173).

    ``momentum=0`` is the classic Griffin-Lim; 0.99 is fast Griffin-Lim. Phases start random
    (drawn from ``generator``, seed 0 when None, so the result is deterministic).
    """
    if magnitude.ndim != 3 or magnitude.shape[1] != N_FFT // 2 + 1:
        raise ValueError(f"magnitude has shape {tuple(magnitude.shape)}: expected (B, 1025, T)")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    length = default_length(magnitude.shape[-1])
    window = torch.hann_window(N_FFT, periodic=True, device=magnitude.device)
    phase = torch.rand(magnitude.shape, generator=generator) * (2 * torch.pi)
    angles = torch.polar(torch.ones_like(phase), phase).to(magnitude.device)  # (B, 1025, T) unit
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        rebuilt = _stft(_istft(magnitude * angles, window, length), window)  # projection
        accelerated = rebuilt - (momentum / (1.0 + momentum)) * previous if momentum else rebuilt
        angles = accelerated / accelerated.abs().clamp(min=1e-16)
        previous = rebuilt
    return _istft(magnitude * angles, window, length)


def _check_log_mel(log_mel: torch.Tensor) -> torch.Tensor:
    if log_mel.ndim == 2:
        log_mel = log_mel.unsqueeze(0)
    if log_mel.ndim != 3 or log_mel.shape[1] != N_MELS:
        raise ValueError(f"log-mel has shape {tuple(log_mel.shape)}: expected (B, 128, T)")
    return log_mel.float()


def log_mel_to_audio(
    log_mel: torch.Tensor,
    n_iter: int = FAST_GL_ITERS,
    nnls_iters: int = NNLS_ITERS,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """kickgen's Griffin-Lim: NNLS mel inversion + fast Griffin-Lim.

    ``(B, 128, T)`` natural-log mel power → waveform ``(B, L)``, 88,200 samples for T = 173.
    """
    log_mel = _check_log_mel(log_mel)
    power = mel_to_power_nnls(log_mel.exp(), nnls_iters)
    return griffin_lim(power.sqrt(), n_iter=n_iter, momentum=MOMENTUM, generator=generator)


def reference_log_mel_to_audio(
    log_mel: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The reference's recipe, kept for comparison: pseudo-inverse + 64 plain Griffin-Lim iterations."""
    log_mel = _check_log_mel(log_mel)
    power = mel_to_power_pinv(log_mel.exp())
    return griffin_lim(power.sqrt(), n_iter=REFERENCE_GL_ITERS, momentum=0.0, generator=generator)
