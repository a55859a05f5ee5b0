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

:func:`refine_to_mel` is the same alternating-projection idea applied to a waveform that already
exists (the HiFi-GAN's): it moves the waveform's band energies onto the target mel and keeps its
own fine structure and phase. :func:`noise_phase_high_band`, run before it, gives the HiFi-GAN's
high band after the click the phase of noise, which removes its frame-rate comb.
"""

from __future__ import annotations

import functools
import math
import warnings

import torch
import torch.nn.functional as F

from kickgen.audio import (
    HOP_LENGTH,
    LOG_MEL_FLOOR,
    N_FFT,
    N_FRAMES,
    N_MELS,
    NUM_SAMPLES,
    SAMPLE_RATE,
    mel_filterbank,
)

NNLS_ITERS = 200  # FISTA iterations of the mel inversion
FAST_GL_ITERS = 32  # phase iterations with momentum
MOMENTUM = 0.99  # Perraudin et al.'s recommended value
REFERENCE_GL_ITERS = 64  # the reference's plain Griffin-Lim
REFINE_MOMENTUM = 0.9  # momentum of refine_to_mel (measured best of 0, 0.5, 0.9, 0.99)
REFINE_MAX_GAIN = 4.0  # largest amplitude change per iteration, nepers (± 35 dB)
REFINE_RANGE_DB = 80.0  # refine up to the last frame within this range of the target's peak
REFINE_MARGIN_FRAMES = 4  # frames refined past it (one STFT window spans 4 hops)
NOISE_PHASE_SEED = 0  # the noise whose phase the high band takes (one fixed sequence)
NOISE_PHASE_XFADE_HZ = 500.0  # own phase below the cutoff, noise phase above cutoff + this
CLICK_KEEP_S = 0.003  # the waveform's own high band is kept this long after the onset ...
CLICK_FADE_S = 0.005  # ... then crossfaded to the noise-phase one over this


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
    """``torch.stft(wave, N_FFT, HOP_LENGTH, N_FFT, window, center=True, pad_mode="reflect",
    return_complex=True)`` for waveforms ``(B, L)``, the same to the bit in 85 % of its time: the
    reflections at both ends are two small copies instead of a padding kernel over the whole clip."""
    pad = N_FFT // 2
    if wave.shape[-1] <= pad:
        raise ValueError(f"a waveform of {wave.shape[-1]} samples is too short for the STFT")
    padded = torch.cat(
        [wave[..., 1 : pad + 1].flip(-1), wave, wave[..., -pad - 1 : -1].flip(-1)], -1
    )
    frames = padded.unfold(-1, N_FFT, HOP_LENGTH) * window  # (B, T, N_FFT)
    return torch.fft.rfft(frames, dim=-1).transpose(-1, -2)


def _overlap_add(frames: torch.Tensor) -> torch.Tensor:
    """Frames ``(B, T, N_FFT)`` one hop apart → their sum ``(B, (T − 1)·HOP + N_FFT)``.

    The hop divides the window, so each frame is ``N_FFT / HOP`` hop-long chunks and chunk j lands
    j hops after its frame's start: one strided add per chunk. The chunks are added last first,
    the order in which ``torch.istft`` adds them, so the sums are the same to the bit.
    """
    b, count, _ = frames.shape
    per = N_FFT // HOP_LENGTH
    chunks = frames.reshape(b, count, per, HOP_LENGTH)
    out = frames.new_zeros(b, count + per - 1, HOP_LENGTH)
    for j in range(per - 1, -1, -1):
        out[:, j : j + count] += chunks[:, :, j]
    return out.reshape(b, -1)


def _window_envelope(window: torch.Tensor, count: int) -> torch.Tensor:
    """The overlap-added squared window of ``count`` frames, ``(1, (count − 1)·HOP + N_FFT)``, that
    :func:`_istft` divides by."""
    return _overlap_add(window.square().expand(1, count, N_FFT))


def _istft(
    spec: torch.Tensor, window: torch.Tensor, length: int, envelope: torch.Tensor | None = None
) -> torch.Tensor:
    """``torch.istft(spec, N_FFT, HOP_LENGTH, N_FFT, window, center=True, length=length)`` for
    spectrograms ``(B, 1025, T)``, the same to the bit in a quarter of its time: it skips the
    generic overlap-add and the overlap check that ``torch.istft`` runs on every call, which cost
    more than the inverse FFT here (refinement calls this 17 times per clip). ``envelope``:
    :func:`_window_envelope` of ``window`` and ``T`` frames, for a caller that inverts many
    spectrograms of one size."""
    count = spec.shape[-1]
    frames = torch.fft.irfft(spec.transpose(1, 2), N_FFT, dim=-1) * window  # (B, T, N_FFT)
    start = N_FFT // 2
    wave = _overlap_add(frames)[:, start : start + length]
    if envelope is None:
        envelope = _window_envelope(window, count)
    wave = wave / envelope[:, start : start + length]
    if wave.shape[-1] < length:  # asked for more than the frames span: zeros, as torch.istft
        wave = F.pad(wave, (0, length - wave.shape[-1]))
    return wave


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
    envelope = _window_envelope(window, magnitude.shape[-1])
    for _ in range(n_iter):
        rebuilt = _stft(_istft(magnitude * angles, window, length, envelope), window)  # projection
        accelerated = rebuilt - (momentum / (1.0 + momentum)) * previous if momentum else rebuilt
        angles = accelerated / accelerated.abs().clamp(min=1e-16)
        previous = rebuilt
    return _istft(magnitude * angles, window, length, envelope)


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


@functools.lru_cache(maxsize=4)
def _refine_bases(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Fᵀ (128, 1025), W (1025, 128))`` as sparse CSR matrices: the filterbank, and each STFT
    bin's share of the mel bands (rows of ``W`` sum to 1; 0 for a bin no band covers). A bin lies
    in at most two bands, so the sparse products take a tenth of the dense ones' time. Built
    outside inference mode, so that the cached tensors also serve a vocoder run with autograd on."""
    with torch.inference_mode(False), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        fb = mel_filterbank()  # (1025, 128)
        shares = fb / fb.sum(dim=1, keepdim=True).clamp(min=1e-8)
        return fb.T.to_sparse_csr().to(device), shares.to_sparse_csr().to(device)


def _band_gains(spec: torch.Tensor, log_mel: torch.Tensor) -> torch.Tensor:
    """Per-bin amplitude gains ``(B, 1025, T')`` that bring the mel of ``spec`` onto the target.

    ``log_mel`` is the target, ``(B, 128, T)``. The log amplitude ratio of every band (target over
    current, both floored as ``log_mel`` is) is spread over the bins by each bin's share of the
    bands. Frames of ``spec`` past the last target frame take the last frame's gains.
    """
    fb_t, shares = _refine_bases(str(spec.device))
    batch, bins, count = spec.shape
    frames = min(count, log_mel.shape[-1])
    head = spec[..., :frames]
    power = (head * head.conj()).real  # |spec|² (B, 1025, frames), without abs's square root
    columns = power.transpose(0, 1).reshape(bins, batch * frames)  # a view for one clip
    current = torch.sparse.mm(fb_t, columns).clamp_(min=LOG_MEL_FLOOR).log_()  # (128, B·frames)
    target = log_mel[..., :frames].transpose(0, 1).reshape(N_MELS, batch * frames)
    ratio = (target - current).mul_(0.5).clamp_(-REFINE_MAX_GAIN, REFINE_MAX_GAIN)
    log_gain = torch.sparse.mm(shares, ratio).reshape(bins, batch, frames).transpose(0, 1)
    if count > frames:
        log_gain = torch.nn.functional.pad(log_gain, (0, count - frames), mode="replicate")
    return log_gain.exp()


def refined_length(log_mel: torch.Tensor, length: int) -> int:
    """Samples from the start that :func:`refine_to_mel` works on: up to the last frame (of any
    clip) with a band within ``REFINE_RANGE_DB`` of its clip's peak, plus a margin; the whole
    ``length`` when the kick rings to the end."""
    loudest = log_mel.amax(dim=1)  # (B, T), natural log of power
    floor = loudest.amax(dim=1, keepdim=True) - REFINE_RANGE_DB / (10.0 / math.log(10.0))
    frames = torch.arange(loudest.shape[-1], device=log_mel.device)
    last = int(torch.where(loudest > floor, frames, 0).amax())
    return min(length, (last + 1 + REFINE_MARGIN_FRAMES) * HOP_LENGTH)


def refine_to_mel(
    wave: torch.Tensor,
    log_mel: torch.Tensor,
    n_iter: int,
    momentum: float = REFINE_MOMENTUM,
    noise_phase_hz: float = 0.0,
) -> torch.Tensor:
    """Bring a waveform's mel onto a target log-mel: ``(B, L)``, ``(B, 128, T)`` → ``(B, L)``.

    Alternating projections, as in Griffin-Lim, between the spectrograms whose mel equals the
    target (approximately: every bin scaled by its bands' amplitude ratios, :func:`_band_gains`)
    and the consistent ones (iSTFT then STFT), with fast Griffin-Lim's momentum on the
    consistent estimate. Unlike Griffin-Lim the magnitude inside a band is not fixed: the input's
    own fine structure and phase stay, only band energies move. On the shipped HiFi-GAN's output
    this removes its band-level errors (measured in the model card); ``n_iter=0`` returns
    ``wave`` unchanged. ``L`` may run past the target's frames (the vocoder's ``T·512``).

    A kick is quiet long before the clip ends (the last frame within 80 dB of the peak is frame
    62 of 173 in the median validation clip), so only the samples up to
    :func:`refined_length` are refined; the rest is the input, joined by a one-window crossfade
    more than 80 dB down. With ``noise_phase_hz`` the samples refined first go through
    :func:`noise_phase_high_band`.
    """
    if n_iter <= 0:
        return wave
    length = refined_length(log_mel, wave.shape[-1])
    head = wave[..., :length]
    if noise_phase_hz:
        head = noise_phase_high_band(head, noise_phase_hz)
    target = log_mel[..., : 1 + length // HOP_LENGTH].float()  # (B, 128, T')
    window = torch.hann_window(N_FFT, periodic=True, device=wave.device)
    spec = _stft(head, window)
    envelope = _window_envelope(window, spec.shape[-1])
    previous = None
    for _ in range(n_iter):
        rebuilt = _stft(_istft(spec * _band_gains(spec, target), window, length, envelope), window)
        spec = (
            rebuilt
            if previous is None
            else torch.add(rebuilt, previous, alpha=-momentum / (1.0 + momentum))
        )
        previous = rebuilt
    refined = _istft(spec * _band_gains(spec, target), window, length, envelope)
    if length == wave.shape[-1]:
        return refined
    fade = torch.linspace(1.0, 0.0, N_FFT, device=wave.device)  # refined → input over one window
    refined[..., -N_FFT:] = refined[..., -N_FFT:] * fade + head[..., -N_FFT:] * (1.0 - fade)
    return torch.cat([refined, wave[..., length:]], dim=-1)


@functools.lru_cache(maxsize=4)
def _phase_noise(device: str) -> torch.Tensor:
    """Unit-magnitude STFT ``(1, 1025, 174)`` of one clip's length of fixed white noise (the
    vocoder's output, 173 frames · 512 samples). A shorter waveform takes its first frames: every
    clip refines its own length, so one spectrogram serves them all."""
    with torch.inference_mode(False):
        noise = torch.randn(
            1, N_FRAMES * HOP_LENGTH, generator=torch.Generator().manual_seed(NOISE_PHASE_SEED)
        )
        spec = _stft(noise, torch.hann_window(N_FFT, periodic=True))
        return (spec / spec.abs().clamp(min=1e-12)).to(device)


def _phase_noise_frames(frames: int, device: str) -> torch.Tensor:
    """The first ``frames`` frames of :func:`_phase_noise` (longer waveforms: the noise repeats)."""
    noise = _phase_noise(device)
    if frames > noise.shape[-1]:
        noise = noise.repeat(1, 1, -(-frames // noise.shape[-1]))
    return noise[..., :frames]


def noise_phase_high_band(wave: torch.Tensor, cutoff_hz: float) -> torch.Tensor:
    """``(B, L)`` → ``(B, L)``: after the click, the band above ``cutoff_hz`` takes the phase of
    fixed noise (its magnitudes smoothed over frequency); the band below and the first
    ``CLICK_KEEP_S`` after each clip's onset stay the waveform's own.

    A generator built from frame-rate features repeats its high band every hop (512 samples), a
    comb heard as an 86 Hz buzz in the decay (:func:`kickgen.evaluation.metrics.frame_comb`).
    Real kicks have noise there, so the high band gets the phase of noise, fading in over
    ``NOISE_PHASE_XFADE_HZ`` above the cutoff, and keeps its magnitudes (and so its mel) up to a
    5-bin smoothing over frequency that evens out the comb's lines 4 bins apart. The click, a
    coherent transient that noise phase would smear over a 46 ms window, keeps its own phase:
    the output is the input until ``CLICK_KEEP_S`` after the onset (the first sample within 30 dB
    of the peak) and the noise-phase signal from ``CLICK_KEEP_S + CLICK_FADE_S`` on. The noise is
    the same for every clip, so the result is deterministic and independent of the batch.
    """
    from kickgen.descriptors import onset_index

    window = torch.hann_window(N_FFT, periodic=True, device=wave.device)
    spec = _stft(wave, window)  # (B, 1025, T)
    freqs = torch.linspace(0.0, SAMPLE_RATE / 2, spec.shape[1], device=wave.device)
    mix = ((freqs - cutoff_hz) / NOISE_PHASE_XFADE_HZ).clamp(0.0, 1.0)[:, None]  # (1025, 1)
    magnitude = spec.abs()
    own = spec / magnitude.clamp(min=1e-12)
    phase = own * (1.0 - mix) + _phase_noise_frames(spec.shape[-1], str(wave.device)) * mix
    # a signal that repeats every hop has lines every 4 bins (86 Hz): [1, 2, 2, 2, 1] / 8 (a 4-bin
    # mean, then a 2-bin mean) sums every 4-bin period once, so it evens them out; five shifted
    # adds over the bins, edges replicated (a 1-channel conv1d over every frame took 3× as long)
    bins = magnitude.shape[1]
    padded = torch.cat([magnitude[:, :1], magnitude[:, :1], magnitude, magnitude[:, -1:],
                        magnitude[:, -1:]], dim=1)  # fmt: skip
    smooth = padded[:, 1 : bins + 1] + padded[:, 2 : bins + 2] + padded[:, 3 : bins + 3]
    smooth = smooth.mul_(2.0).add_(padded[:, :bins]).add_(padded[:, 4:]).mul_(0.125)
    magnitude = magnitude * (1.0 - mix) + smooth * mix
    noisy = _istft(magnitude * phase / phase.abs().clamp(min=1e-12), window, wave.shape[-1])
    onset = torch.as_tensor(onset_index(wave.detach().cpu()), device=wave.device)[:, None]
    after = torch.arange(wave.shape[-1], device=wave.device)[None] - onset  # samples after onset
    keep = 1.0 - (after - CLICK_KEEP_S * SAMPLE_RATE) / (CLICK_FADE_S * SAMPLE_RATE)
    keep = keep.clamp(0.0, 1.0).to(wave.dtype)  # 1 up to the click's end, 0 after the fade
    return wave * keep + noisy * (1.0 - keep)
