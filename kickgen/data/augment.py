"""Augmentations of real recordings: each makes a new variant that keeps the drum's group.

Every operation works on an onset-aligned mono clip ``(L,)`` at 44.1 kHz and returns a new
array (never in place). Keywords follow the variant because the build measures each variant
again (:func:`kickgen.descriptors.measured_keywords`): a pitch shift up can make a deep kick
lose "deep", a shortened decay makes it "short", saturation can make it "distorted".

| operation | parameter range (``AUGMENT_RANGES``) |
| --- | --- |
| ``pitch_shift``: resampling, like tape (pitch and length change together) | ±3 semitones |
| ``gain_drive``: gain into the synth's soft clipper | 0–18 dB |
| ``eq_tilt``: spectral tilt around 1 kHz | ±3 dB/octave |
| ``transient``: scale the first ~10 ms against the body | ×0.5–×2.5 |
| ``shorten_decay``: an extra exponential fade after a hold | -40 dB after 0.12–0.6 s |
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from kickgen.audio import SAMPLE_RATE
from kickgen.data.synth import DB40, saturate

AUGMENT_RANGES: dict[str, tuple[float, float]] = {
    "pitch_shift": (-3.0, 3.0),  # semitones
    "gain_drive": (0.0, 18.0),  # dB of drive
    "eq_tilt": (-3.0, 3.0),  # dB per octave around 1 kHz
    "transient": (0.5, 2.5),  # gain of the first 10 ms relative to the body
    "shorten_decay": (0.12, 0.6),  # s to the extra fade's -40 dB
}
TRANSIENT_S = 0.010  # the attack that `transient` scales


def pitch_shift(wave: np.ndarray, semitones: float) -> np.ndarray:
    """Resample so it plays ``semitones`` higher (and shorter) at the same sample rate."""
    if abs(semitones) < 1e-6:
        return wave.copy()
    ratio = Fraction(2.0 ** (-semitones / 12.0)).limit_denominator(200)  # output/input length
    return resample_poly(wave, ratio.numerator, ratio.denominator, window=("kaiser", 8.0))


def gain_drive(wave: np.ndarray, drive_db: float) -> np.ndarray:
    """Drive the peak-normalised clip into the synth's soft clipper."""
    peak = max(float(np.abs(wave).max()), 1e-12)
    return saturate(wave / peak, drive_db) * peak


def eq_tilt(wave: np.ndarray, db_per_octave: float) -> np.ndarray:
    """Tilt the spectrum by ``db_per_octave`` around 1 kHz (FFT, zero phase), flat below 20 Hz."""
    n = wave.size
    spec = np.fft.rfft(wave, n=2 * n)
    freqs = np.fft.rfftfreq(2 * n, 1.0 / SAMPLE_RATE)
    octaves = np.log2(np.maximum(freqs, 20.0) / 1000.0)
    gain = 10.0 ** (db_per_octave * octaves / 20.0)
    return np.fft.irfft(spec * gain, n=2 * n)[:n]


def transient(wave: np.ndarray, amount: float, onset: int = 0) -> np.ndarray:
    """Scale the first ``TRANSIENT_S`` after ``onset`` by ``amount``, blending back over 10 ms."""
    t = (np.arange(wave.size) - onset) / SAMPLE_RATE
    blend = np.clip((t - TRANSIENT_S) / TRANSIENT_S, 0.0, 1.0)  # 0 in the attack → 1 after 20 ms
    curve = amount + (1.0 - amount) * blend
    curve[t < 0] = amount
    return wave * curve


def shorten_decay(wave: np.ndarray, seconds: float, onset: int = 0) -> np.ndarray:
    """Fade exponentially after a 30 ms hold so that the fade reaches -40 dB at ``seconds``."""
    hold = 0.030
    t = np.maximum((np.arange(wave.size) - onset) / SAMPLE_RATE - hold, 0.0)
    return wave * np.exp(-DB40 * t / max(seconds - hold, 1e-3))


OPERATIONS = ("pitch_shift", "gain_drive", "eq_tilt", "transient", "shorten_decay")


def random_augment(
    wave: np.ndarray, rng: np.random.Generator, onset: int = 0
) -> tuple[np.ndarray, str]:
    """Apply 2 or 3 distinct operations with parameters drawn from ``AUGMENT_RANGES``.

    Returns the variant (not normalised) and a description such as
    ``"pitch_shift=+1.52 eq_tilt=-0.8"`` for the manifest.
    """
    n_ops = int(rng.integers(2, 4))
    chosen = sorted(rng.choice(len(OPERATIONS), size=n_ops, replace=False))
    out = wave
    applied = []
    for index in chosen:
        name = OPERATIONS[index]
        lo, hi = AUGMENT_RANGES[name]
        value = float(rng.uniform(lo, hi))
        if name == "pitch_shift":
            out = pitch_shift(out, value)
        elif name == "gain_drive":
            out = gain_drive(out, value)
        elif name == "eq_tilt":
            out = eq_tilt(out, value)
        elif name == "transient":
            out = transient(out, value, onset)
        else:
            out = shorten_decay(out, value, onset)
        applied.append(f"{name}={value:+.3g}")
    return out, " ".join(applied)
