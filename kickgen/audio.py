"""Audio front end: the audio contract every kickgen component shares.

Everything here is plain torch/numpy/scipy/soundfile (no torchaudio). ``log_mel`` reproduces
``torchaudio.transforms.MelSpectrogram(sample_rate=44100, n_fft=2048, hop_length=512, n_mels=128)``
with its defaults, followed by ``log(mel.clamp(min=1e-5))``, so features prepared with the
reference preprocessing equal kickgen's.
"""

from __future__ import annotations

import functools
import math
import os
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch

SAMPLE_RATE = 44_100  # Hz
CLIP_SECONDS = 2.0
NUM_SAMPLES = 88_200  # CLIP_SECONDS * SAMPLE_RATE
N_FFT = 2048
HOP_LENGTH = 512
N_MELS = 128
N_FRAMES = 173  # 1 + NUM_SAMPLES // HOP_LENGTH (centre padding)
LOG_MEL_FLOOR = 1e-5  # mel power floor before the natural log
LOG_MEL_MIN = math.log(LOG_MEL_FLOOR)  # ≈ -11.513, the value of silence

PEAK_DBFS = -1.0  # reference preprocessing: peak normalisation target
FADE_OUT_SECONDS = 0.2  # reference preprocessing: linear fade at the end of the clip
OUTPUT_PEAK = 0.95  # generated WAVs are peak-normalised to this amplitude
SILENT_PEAK = 1e-6  # a clip peaking at or below this (-120 dBFS) is silence: never scaled up
MAX_SAMPLE = 1e3  # largest sample magnitude a file may hold (+60 dBFS; float WAVs may pass 1)


class AudioError(ValueError):
    """An audio file could not be read or holds no usable audio."""


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray | float:
    """HTK mel scale: 2595 · log10(1 + f / 700)."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray | float:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=8)
def _mel_filterbank_np(
    n_freqs: int, n_mels: int, sample_rate: int, f_min: float, f_max: float
) -> np.ndarray:
    all_freqs = np.linspace(0.0, sample_rate // 2, n_freqs)
    m_pts = np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2)
    f_pts = mel_to_hz(m_pts)  # (n_mels + 2,) band edges and centres in Hz
    f_diff = f_pts[1:] - f_pts[:-1]  # (n_mels + 1,)
    slopes = f_pts[None, :] - all_freqs[:, None]  # (n_freqs, n_mels + 2)
    rising = -slopes[:, :-2] / f_diff[:-1]
    falling = slopes[:, 2:] / f_diff[1:]
    # Triangles peak at 1.0 at their centre frequency: no area (Slaney) normalisation.
    return np.maximum(0.0, np.minimum(rising, falling))  # (n_freqs, n_mels)


def mel_filterbank(
    n_freqs: int = N_FFT // 2 + 1,
    n_mels: int = N_MELS,
    sample_rate: int = SAMPLE_RATE,
    f_min: float = 0.0,
    f_max: float | None = None,
) -> torch.Tensor:
    """Triangular HTK mel filters, ``(n_freqs, n_mels)``, float32."""
    f_max = float(sample_rate // 2) if f_max is None else float(f_max)
    fb = _mel_filterbank_np(n_freqs, n_mels, sample_rate, float(f_min), f_max)
    return torch.from_numpy(fb.astype(np.float32))


def _hann(device: torch.device | str | None = None) -> torch.Tensor:
    return torch.hann_window(N_FFT, periodic=True, device=device)


def power_spectrogram(wave: torch.Tensor) -> torch.Tensor:
    """|STFT|² with centre reflection padding: ``(..., L)`` → ``(..., 1025, 1 + L // 512)``."""
    shape = wave.shape
    flat = wave.reshape(-1, shape[-1]).float()
    spec = torch.stft(
        flat,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=N_FFT,
        window=_hann(flat.device),
        center=True,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    power = spec.real.square() + spec.imag.square()
    return power.reshape(*shape[:-1], power.shape[-2], power.shape[-1])


def mel_spectrogram(wave: torch.Tensor) -> torch.Tensor:
    """Mel power spectrogram: ``(..., L)`` → ``(..., 128, 1 + L // 512)``."""
    power = power_spectrogram(wave)
    fb = mel_filterbank().to(power.device)
    return torch.matmul(power.transpose(-1, -2), fb).transpose(-1, -2)


def log_mel(wave: torch.Tensor) -> torch.Tensor:
    """Natural-log mel spectrogram of the audio contract.

    ``(..., 88200)`` → ``(..., 128, 173)``; silence maps to ``log(1e-5) ≈ -11.51``.
    A 2-D input ``(1, 88200)`` gives the reference's ``(1, 128, 173)`` per clip.
    """
    return torch.log(mel_spectrogram(wave).clamp(min=LOG_MEL_FLOOR))


# --------------------------------------------------------------------------- file I/O


# Bounds every loader applies before it allocates anything: a 40 KB file whose header says 1 Hz
# would otherwise be resampled to 44.1 kHz as 882 M samples.
MIN_FILE_RATE = 8_000  # Hz, lowest sample rate a file may have
MAX_FILE_RATE = 192_000  # Hz, highest
MAX_FILE_SECONDS = 60.0  # longest audio decoded (a kick one-shot lasts a second or two)
MAX_FILE_CHANNELS = 32


def check_audio_header(
    name: str,
    sample_rate: int,
    frames: int,
    channels: int,
    max_seconds: float = MAX_FILE_SECONDS,
    max_channels: int = MAX_FILE_CHANNELS,
) -> None:
    """Refuse a file whose sample rate, length or channel count no kick has, before decoding it.

    Raises :class:`AudioError` naming ``name``. The resampled length is then at most
    ``MAX_FILE_SECONDS`` at 44.1 kHz.
    """
    if not MIN_FILE_RATE <= sample_rate <= MAX_FILE_RATE:
        raise AudioError(
            f"{name}: sample rate {sample_rate} Hz is outside {MIN_FILE_RATE}-{MAX_FILE_RATE} Hz; "
            "pass a file at a normal audio rate such as 44100 or 48000 Hz"
        )
    if not 1 <= channels <= max_channels:
        raise AudioError(f"{name}: {channels} channels; pass a mono or stereo file")
    if frames > max_seconds * sample_rate:
        raise AudioError(
            f"{name}: {frames / sample_rate:.1f} s long, more than the {max_seconds:g} s "
            "kickgen reads; pass a one-shot"
        )


def read_audio(
    source: str | Path | BinaryIO,
    name: str | None = None,
    max_seconds: float = MAX_FILE_SECONDS,
    max_channels: int = MAX_FILE_CHANNELS,
) -> tuple[np.ndarray, int]:
    """Read any soundfile-supported file (wav, flac, ogg, aiff) as float32 ``(frames, channels)``.

    ``source`` is a path or an open binary file (e.g. uploaded bytes in ``io.BytesIO``; ``name``
    then names it in errors). The header is checked by :func:`check_audio_header` before any
    sample is decoded. Raises :class:`AudioError` naming the file when it cannot be decoded,
    is out of bounds or is empty.
    """
    if isinstance(source, (str, Path)):
        name = name or str(source)
        source = os.fsencode(source)  # bytes: file names that are not valid UTF-8 open too
    name = name or "audio"
    try:
        with sf.SoundFile(source) as f:
            check_audio_header(name, f.samplerate, f.frames, f.channels, max_seconds, max_channels)
            data = f.read(dtype="float32", always_2d=True)
            sr = f.samplerate
    except AudioError:
        raise
    except Exception as exc:  # libsndfile raises several types for malformed files
        reason = str(exc).replace(
            f"Error opening {source!r}: ", ""
        )  # an open file's repr says nothing
        raise AudioError(f"{name}: cannot read audio ({reason})") from exc
    if data.size == 0:
        raise AudioError(f"{name}: file holds no audio samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{name}: audio holds NaN or infinite samples")
    peak = float(np.abs(data).max())
    if peak > MAX_SAMPLE:
        raise AudioError(
            f"{name}: samples reach {peak:.3g}, out of the range audio holds (at most {MAX_SAMPLE:g}, "
            "1 being full scale)"
        )
    return data, int(sr)


def to_mono(data: np.ndarray) -> np.ndarray:
    """``(frames, channels)`` or ``(frames,)`` → ``(frames,)`` by averaging the channels."""
    return data.mean(axis=1) if data.ndim == 2 else data


def resample(wave: np.ndarray, orig_sr: int, target_sr: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited polyphase resampling (Kaiser-windowed FIR), ``(..., L)`` along the last axis."""
    if orig_sr == target_sr:
        return wave.astype(np.float32, copy=False)
    # imported here, not with the module: scipy.signal takes ~1.7 s to import, a third of a cold CLI run
    from scipy.signal import resample_poly

    ratio = Fraction(target_sr, orig_sr).limit_denominator(10_000)
    out = resample_poly(wave, ratio.numerator, ratio.denominator, axis=-1, window=("kaiser", 8.0))
    return out.astype(np.float32)


def pad_or_trim(wave: np.ndarray, length: int = NUM_SAMPLES) -> np.ndarray:
    """Zero-pad or cut the last axis to ``length`` samples."""
    n = wave.shape[-1]
    if n >= length:
        return wave[..., :length]
    pad = [(0, 0)] * (wave.ndim - 1) + [(0, length - n)]
    return np.pad(wave, pad)


def normalize_peak(wave: np.ndarray, peak_dbfs: float = PEAK_DBFS) -> np.ndarray:
    """Scale so the absolute peak sits at ``peak_dbfs``; silence (a peak of at most
    :data:`SILENT_PEAK`) is returned unchanged."""
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    if peak <= SILENT_PEAK:  # scaling subnormal samples up would overflow float32
        return wave
    return wave * (10.0 ** (peak_dbfs / 20.0) / peak)


def fade_out(wave: np.ndarray, seconds: float = FADE_OUT_SECONDS) -> np.ndarray:
    """Linear fade to zero over the last ``seconds`` of the last axis."""
    n = min(int(round(seconds * SAMPLE_RATE)), wave.shape[-1])
    if n <= 0:
        return wave
    out = wave.copy()
    out[..., -n:] *= np.linspace(1.0, 0.0, n, dtype=out.dtype)
    return out


def preprocess(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """The reference preprocessing of a mono waveform.

    Resample to 44.1 kHz, pad or trim to 2 s, normalise to -1 dBFS peak, 0.2 s linear fade-out.
    Returns float32 ``(88200,)``.
    """
    wave = resample(np.asarray(wave, dtype=np.float32), sample_rate, SAMPLE_RATE)
    wave = pad_or_trim(wave, NUM_SAMPLES)
    wave = normalize_peak(wave, PEAK_DBFS)
    return fade_out(wave, FADE_OUT_SECONDS).astype(np.float32)


def load_audio(path: str | Path, *, raw: bool = False) -> torch.Tensor:
    """Load an audio file as a mono 44.1 kHz float32 tensor.

    With ``raw=False`` (default) the reference preprocessing is applied and the result is
    ``(88200,)``; with ``raw=True`` the file is only mixed to mono and resampled, full length.
    """
    data, sr = read_audio(path)
    mono = to_mono(data)
    if raw:
        return torch.from_numpy(resample(mono, sr, SAMPLE_RATE))
    return torch.from_numpy(preprocess(mono, sr))


def peak_normalize_output(wave: torch.Tensor, peak: float = OUTPUT_PEAK) -> torch.Tensor:
    """Scale each clip ``(..., L)`` so its absolute peak is ``peak`` (silent clips stay silent)."""
    peaks = wave.abs().amax(dim=-1, keepdim=True)
    return torch.where(peaks > 0, wave * (peak / peaks.clamp(min=1e-12)), wave)


def check_finite_output(path: str | Path, data: np.ndarray) -> None:
    """Refuse to write audio with NaN or infinite samples (PCM would turn them into full-scale
    DC); raises :class:`kickgen.output.OutputError` naming the file."""
    if not np.isfinite(data).all():
        from kickgen.output import OutputError, target_of

        raise OutputError(
            f"{target_of(path)}: the kick holds NaN or infinite samples, so nothing was written; "
            "lower --cfg-scale (3.0 is the default) or check the checkpoints"
        )


def write_wav(path: str | Path, wave: torch.Tensor | np.ndarray, subtype: str = "FLOAT") -> Path:
    """Write a mono 44.1 kHz WAV atomically (unique temp file + rename); ``subtype`` FLOAT, PCM_16
    or PCM_24. Non-finite samples and failed writes raise :class:`kickgen.output.OutputError`."""
    from kickgen.output import write_atomically

    data = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    data = np.asarray(data, dtype=np.float32).reshape(-1)
    check_finite_output(path, data)
    return write_atomically(
        path, lambda tmp: sf.write(str(tmp), data, SAMPLE_RATE, subtype=subtype, format="WAV")
    )
