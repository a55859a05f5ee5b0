"""Kick descriptors: what a kick measurably is, from its waveform.

Shared by corpus labelling (measured keywords such as "deep", "short", "distorted") and by
evaluation (do "deep" generations have a lower body pitch than "high" ones?). Everything works on
44.1 kHz mono waveforms given as numpy arrays or torch tensors, one clip ``(L,)`` or a batch
``(B, L)``; FFTs, filters and envelopes run on the whole batch at once, only the pitch tracker
loops over clips. About 15 ms per 2 s clip on one idle core.

| name | unit | meaning |
| --- | --- | --- |
| ``peak_dbfs`` | dBFS | absolute peak |
| ``rms_dbfs`` | dBFS | RMS from the onset to the -40 dB point |
| ``silent`` | 0/1 | peak below ``SILENCE_DBFS`` (-60 dBFS) |
| ``clip_fraction`` | 0..1 | samples in flat tops (>= 3 consecutive samples at the peak value, within 1e-6) over the active samples |
| ``clipped`` | 0/1 | peak at digital full scale (>= 0.999) or >= ``CLIP_SAMPLES`` (16) samples in flat tops: a clean wave touches its peak with a sample or two, a clipped one holds it at every cycle |
| ``onset`` | s | first sample whose magnitude reaches ``ONSET_DB`` (-30 dB) below the peak |
| ``attack`` | s | onset to the loudest sample |
| ``decay_6``, ``decay_20``, ``decay_40`` | s | onset to the last time the RMS envelope (window: one body period) is within 6/20/40 dB of its maximum |
| ``body_pitch`` | Hz | median instantaneous frequency of the low-passed body from ``BODY_START`` (40 ms) to 1 s after the onset, while it is within 30 dB of its maximum |
| ``start_pitch`` | Hz | frequency of the first full cycle of the body after the onset |
| ``pitch_glide`` | semitones | ``12·log2(start_pitch / body_pitch)``: positive for a downward sweep |
| ``f0_10ms``, ``f0_25ms``, ``f0_50ms``, ``f0_100ms`` | Hz | the body's frequency 10/25/50/100 ms after the onset: the pitch track interpolated there (zero crossings of the band-passed body: one period per half cycle, at its middle, through a 5-value running median) |
| ``sweep_time`` | s | onset until the pitch track first comes within ``SWEEP_TOLERANCE`` (10 %) of ``body_pitch`` |
| ``click_db`` | dB | share of the energy of the first 20 ms after the onset that lies above 1 kHz (0 dB: all click) |
| ``punch`` | 0..1 | energy in the first 50 ms after the onset over the energy in the first 300 ms |
| ``centroid`` | Hz | spectral centroid of the whole clip (energy-weighted) |
| ``sub_ratio`` | 0..1 | share of the clip's energy below 60 Hz |
| ``low_ratio`` | 0..1 | share of the clip's energy below 150 Hz |
| ``harmonic_db`` | dB | harmonics 2–8 of the body pitch (minus the noise halfway between them) over the fundamental, a THD: below -60 dB for a clean sine, above -20 dB when clipped |
| ``crest_db`` | dB | peak over RMS from the onset to the -40 dB point |
| ``hit_harmonic_db`` | dB | the hit's grit: energy of the first 50 ms after the onset between the sweeping fundamental (1.5 × the pitch track's highest value there, at least 40 Hz above it) and 1 kHz (where ``click_db`` begins), over the energy below it |
| ``swell_db`` | dB | how far the 5-ms RMS envelope's maximum 30–250 ms after the onset lies above its maximum in the first 30 ms: negative when the hit leads its body, above 1 dB when the body swells after the hit |

The pitch envelope (``f0_*``, ``sweep_time``) is what makes a kick a kick: a body that starts
high and falls to its resting pitch over the first 30–100 ms. ``pitch_glide`` compares only the
first cycle with the body, so one fast cycle followed by a steady tone reads as a large glide;
``f0_25ms`` and ``sweep_time`` tell that apart from a real sweep.

Decay times are measured from the onset, so a kick whose amplitude is ``exp(-t/τ)`` from its
onset has ``decay_20 = τ·ln 10``. A decay that never reaches its level reports the time from the
onset to the end of the clip. ``measured_keywords`` turns descriptors into the keywords the
corpus may attach by measurement; its thresholds are the table ``KEYWORD_RULES``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from kickgen.audio import HOP_LENGTH, SAMPLE_RATE

SILENCE_DBFS = -60.0  # a clip whose peak is below this is silent
FULL_SCALE = 0.999  # a peak at or above this is at the digital ceiling
CEILING_TOLERANCE = 1e-6  # relative: samples this close to the peak sit at the ceiling
CLIP_RUN = 3  # consecutive samples at the peak that make a flat top
CLIP_SAMPLES = 16  # this many samples in flat tops make a clip clipped (a 16-bit sine: <= 6)
ONSET_DB = -30.0  # onset: first sample within 30 dB of the peak
ENVELOPE_WINDOW = (0.002, 0.040)  # s: the RMS envelope spans one body period, within these
BODY_START = 0.040  # s after the onset: the pitch glide is over, the body has begun
BODY_FLOOR_DB = -30.0  # pitch cycles quieter than this (re the body's maximum) are ignored
PITCH_RANGE = (25.0, 400.0)  # Hz searched for the body's dominant partial
PITCH_SPAN = 1.0  # s after the onset that the pitch tracker reads
PITCH_TIMES = (0.010, 0.025, 0.050, 0.100)  # s after the onset: the pitch envelope's probes
TRACK_MEDIAN = 5  # values (half cycles) in the pitch track's running median
SWEEP_TOLERANCE = 0.10  # sweep_time: until the pitch is within 10 % of the body pitch
CLICK_WINDOW = 0.020  # s after the onset where the click lives
CLICK_HZ = 1000.0  # the click is the energy above this frequency
PUNCH_WINDOWS = (0.050, 0.300)  # s: punch = energy(first 50 ms) / energy(first 300 ms)
SUB_HZ = 60.0
LOW_HZ = 150.0
HARMONIC_WINDOW = (0.030, 0.330)  # s after the onset where harmonics are measured
HARMONICS = range(2, 9)  # harmonics counted by harmonic_db
HARMONIC_BAND = 0.04  # ± relative band around each harmonic (glides widen all partials alike)
HIT_WINDOW = 0.050  # s after the onset: the hit, where hit_harmonic_db is measured
HIT_FUNDAMENTAL = (1.5, 40.0)  # the hit's fundamental band: below max(1.5 × f0, f0 + 40 Hz)
SWELL_WINDOW = 0.005  # s: the RMS envelope swell_db reads
SWELL_SPAN = (0.030, 0.250)  # s after the onset: the hit before the first, the body to the second

DESCRIPTOR_NAMES: tuple[str, ...] = (
    "peak_dbfs", "rms_dbfs", "silent", "clip_fraction", "clipped", "onset", "attack",
    "decay_6", "decay_20", "decay_40", "body_pitch", "start_pitch", "pitch_glide",
    "click_db", "punch", "centroid", "sub_ratio", "low_ratio", "harmonic_db", "crest_db",
    "f0_10ms", "f0_25ms", "f0_50ms", "f0_100ms", "sweep_time", "hit_harmonic_db", "swell_db",
)  # fmt: skip
PITCH_ENVELOPE_NAMES: tuple[str, ...] = tuple(f"f0_{round(t * 1000)}ms" for t in PITCH_TIMES)

_EPS = 1e-12


def _as_batch(waves: np.ndarray | torch.Tensor) -> tuple[np.ndarray, bool]:
    """``(L,)`` or ``(B, L)`` numpy/torch → float64 ``(B, L)`` and whether the input was 1-D."""
    if isinstance(waves, torch.Tensor):
        waves = waves.detach().cpu().double().numpy()
    arr = np.asarray(waves, dtype=np.float64)
    if arr.ndim == 1:
        return arr[None, :], True
    if arr.ndim != 2:
        raise ValueError(f"waves must be (L,) or (B, L), got shape {arr.shape}")
    return arr, False


def _db(x: np.ndarray | float) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(np.asarray(x, dtype=np.float64), _EPS))


def rms_envelope(wave: np.ndarray, window: int) -> np.ndarray:
    """RMS of one clip ``(L,)`` over the ``window`` samples that start at each sample, scaled so
    a sine of amplitude A reads A: ``(L,)`` → ``(L,)``. A window of one period of the body has no
    ripple, and looking forward keeps an exponential decay's times exact (a constant factor).
    """
    window = max(int(window), 1)
    csum = np.concatenate([[0.0], np.cumsum(wave.astype(np.float64) ** 2)])
    idx = np.arange(wave.size)
    lo = idx
    hi = np.minimum(idx + window, wave.size)
    mean_sq = (csum[hi] - csum[lo]) / window
    return np.sqrt(2.0 * np.maximum(mean_sq, 0.0))


def onset_index(waves: np.ndarray | torch.Tensor, threshold_db: float = ONSET_DB) -> np.ndarray:
    """First sample within ``threshold_db`` of each clip's peak: ``(B, L)`` → int ``(B,)``."""
    x, _ = _as_batch(waves)
    mag = np.abs(x)
    peak = mag.max(axis=-1, keepdims=True)
    above = mag >= np.maximum(peak, _EPS) * 10.0 ** (threshold_db / 20.0)
    return np.argmax(above, axis=-1)


def _ceiling_count(x: np.ndarray) -> int:
    """Samples of ``x`` in flat runs (>= ``CLIP_RUN`` consecutive samples) at its absolute peak,
    within ``CEILING_TOLERANCE``: a clean waveform touches its peak with a sample or two, a
    clipped one holds it for several samples at every cycle's top."""
    mag = np.abs(x)
    peak = mag.max() if mag.size else 0.0
    if peak <= 0:
        return 0
    at_peak = (mag >= peak * (1.0 - CEILING_TOLERANCE)).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], at_peak, [0]])))
    runs = edges[1::2] - edges[::2]  # lengths of the runs at the peak
    return int(runs[runs >= CLIP_RUN].sum())


def _pitch_track(
    x: np.ndarray, onset: int, stop: int, sample_rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """Instantaneous frequency of the body from its zero crossings.

    ``x`` is one clip ``(L,)``; returns cycle times (s after the onset) and frequencies (Hz) of
    the dominant low partial, only for cycles within ``BODY_FLOOR_DB`` of the loudest one.
    """
    seg = x[onset:stop]
    if seg.size < sample_rate // 50:
        return np.zeros(0), np.zeros(0)
    # 1. rough dominant partial from the spectrum of the first 400 ms
    head = seg[: int(0.4 * sample_rate)]
    n_fft = 1 << 16
    spec = np.abs(np.fft.rfft(head * np.hanning(head.size), n=n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    band = (freqs >= PITCH_RANGE[0]) & (freqs <= PITCH_RANGE[1])
    rough = float(freqs[band][np.argmax(spec[band])])
    # 2. band-pass around it (zero phase) so zero crossings follow that partial, glide included
    high = min(max(4.0 * rough, 250.0), 0.45 * sample_rate)
    from scipy.signal import butter, sosfiltfilt  # on first use: see describe_batch

    sos = butter(4, [15.0, high], btype="band", fs=sample_rate, output="sos")
    y = sosfiltfilt(sos, seg)
    # 3. zero crossings both ways, linearly interpolated: a period spans every other crossing,
    #    so the track has a value each half cycle (the first one half a period sooner)
    idx = np.nonzero(np.signbit(y[:-1]) != np.signbit(y[1:]))[0]
    if idx.size < 3:
        return np.zeros(0), np.zeros(0)
    frac = y[idx] / (y[idx] - y[idx + 1])
    t_cross = (idx + frac) / sample_rate  # (n,) s after the onset
    periods = t_cross[2:] - t_cross[:-2]
    mids = 0.5 * (t_cross[2:] + t_cross[:-2])
    # 4. keep cycles whose amplitude is within BODY_FLOOR_DB of the loudest cycle
    amp = np.array([np.abs(y[a : b + 1]).max() for a, b in zip(idx[:-2], idx[2:], strict=True)])
    keep = amp >= amp.max() * 10.0 ** (BODY_FLOOR_DB / 20.0)
    # 5. a running median over TRACK_MEDIAN values: a glitch of a cycle or two (a crossing added
    #    by noise or a second mode) goes, a monotone sweep passes unchanged
    freqs = 1.0 / periods[keep]
    if freqs.size >= TRACK_MEDIAN:
        half = TRACK_MEDIAN // 2
        padded = np.pad(freqs, half, mode="edge")
        freqs = np.median(np.lib.stride_tricks.sliding_window_view(padded, TRACK_MEDIAN), axis=1)
    return mids[keep], freqs


def pitch_envelope(
    waves: np.ndarray | torch.Tensor, times: np.ndarray, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """The body's frequency (Hz) at ``times`` (s after each clip's onset), as ``describe`` reads
    ``f0_*``: ``(B, L)`` or ``(L,)`` → ``(B, T)``; NaN before the first and after the last cycle the
    tracker keeps (and for a clip with no pitch)."""
    x, _ = _as_batch(waves)
    times = np.asarray(times, dtype=np.float64)
    out = np.full((len(x), times.size), np.nan)
    onset = onset_index(x)
    for i in range(len(x)):
        o = int(onset[i])
        t, f = _pitch_track(
            x[i], o, min(x.shape[1], o + int(PITCH_SPAN * sample_rate)), sample_rate
        )
        if f.size:
            out[i] = np.interp(times, t, f, left=np.nan, right=np.nan)
    return out


def sweep_time(times: np.ndarray, freqs: np.ndarray, body: float) -> float:
    """Seconds from the onset until the pitch track ``(times, freqs)`` (cycle midpoints, Hz)
    first comes within ``SWEEP_TOLERANCE`` of ``body`` Hz, interpolated between the two cycles
    around the crossing: 0 when the first cycle is already there, the last cycle's time when
    the track never gets there."""
    if not freqs.size or body <= 0:
        return 0.0
    off = np.abs(freqs / body - 1.0)  # (n,) relative distance from the body pitch
    inside = np.flatnonzero(off <= SWEEP_TOLERANCE)
    if not inside.size:
        return float(times[-1])
    i = int(inside[0])
    if i == 0:
        return 0.0
    a, b = off[i - 1], off[i]
    return float(times[i - 1] + (times[i] - times[i - 1]) * (a - SWEEP_TOLERANCE) / (a - b))


def _band_power(power: np.ndarray, freqs: np.ndarray, f: float) -> float:
    """Power of the spectrum ``power`` within ±HARMONIC_BAND (relative) of ``f`` Hz."""
    return float(power[np.abs(freqs - f) <= HARMONIC_BAND * f].sum())


def _swell_db(wave: np.ndarray, onset: int, sample_rate: int) -> float:
    """``swell_db`` of one clip ``(L,)`` whose onset is sample ``onset``."""
    env = rms_envelope(wave, max(int(round(SWELL_WINDOW * sample_rate)), 1))
    split, end = (onset + int(round(t * sample_rate)) for t in SWELL_SPAN)
    hit, body = env[onset:split], env[split:end]
    if not hit.size or not body.size:
        return -100.0
    return float(_db((float(body.max()) / max(float(hit.max()), _EPS)) ** 2))  # amplitudes


MEL_HIT_FRAMES = 3  # mel frames (hop 11.6 ms) from the onset frame that hold the hit
MEL_SWELL_END = 0.250  # s after the onset frame: where the body's rise is looked for


def mel_swell_db(log_mels: torch.Tensor) -> torch.Tensor:
    """``swell_db`` read from log-mels ``(B, n_mels, T)`` before any waveform exists: the frame
    power (the mel bands sum to about the power of the 46-ms window) at most 250 ms after the
    onset frame over its maximum in the hit's first three frames, in dB, ``(B,)``.

    The window smears the click into the body, so it reads higher than ``swell_db``: on 384
    generated kicks a value above 1 dB caught 95 % of the kicks whose ``swell_db`` passes 1 dB
    and 10 % of the others (docs/experiments.md, *Kicks that hit*).
    """
    power = log_mels.float().exp().sum(1)  # (B, T)
    peak = power.max(1, keepdim=True).values
    onset = (power >= peak * 10 ** (ONSET_DB / 10)).float().argmax(1)  # first frame within 30 dB
    frames = torch.arange(power.shape[1], device=power.device)[None, :] - onset[:, None]
    end = int(round(MEL_SWELL_END * SAMPLE_RATE / HOP_LENGTH))
    hit = power.masked_fill((frames < 0) | (frames >= MEL_HIT_FRAMES), 0.0).max(1).values
    body = power.masked_fill((frames < MEL_HIT_FRAMES) | (frames > end), 0.0).max(1).values
    return 10.0 * torch.log10(body.clamp(min=_EPS) / hit.clamp(min=_EPS))


def _hit_harmonic_db(
    wave: np.ndarray, onset: int, times: np.ndarray, freqs: np.ndarray, sample_rate: int
) -> float:
    """``hit_harmonic_db`` of one clip ``(L,)``: its pitch track ``(times, freqs)`` (s after the
    onset, Hz) gives the fundamental's highest frequency in the hit."""
    seg = wave[onset : onset + int(round(HIT_WINDOW * sample_rate))]
    in_hit = freqs[times <= HIT_WINDOW]
    if seg.size < 256 or not in_hit.size:
        return -100.0
    top = float(in_hit.max())
    edge = max(HIT_FUNDAMENTAL[0] * top, top + HIT_FUNDAMENTAL[1])
    power = np.abs(np.fft.rfft(seg * np.hanning(seg.size), n=1 << 14)) ** 2
    f = np.fft.rfftfreq(1 << 14, 1.0 / sample_rate)
    fundamental = float(power[f < edge].sum())
    harmonics = float(power[(f >= edge) & (f < CLICK_HZ)].sum())
    return float(_db(harmonics / max(fundamental, _EPS)))


def describe_batch(
    waves: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE
) -> dict[str, np.ndarray]:
    """Descriptors of a batch ``(B, L)`` (or one clip ``(L,)``): name → float64 ``(B,)``.

    The names, units and definitions are the table of this module's docstring.
    """
    x, _ = _as_batch(waves)
    b, n = x.shape
    out = {name: np.zeros(b) for name in DESCRIPTOR_NAMES}
    mag = np.abs(x)
    peak = mag.max(axis=-1)  # (B,)
    out["peak_dbfs"] = 20.0 * np.log10(np.maximum(peak, _EPS))
    out["silent"] = (out["peak_dbfs"] < SILENCE_DBFS).astype(np.float64)
    onset = onset_index(x)  # (B,)
    out["onset"] = onset / sample_rate

    for i in range(b):
        o = int(onset[i])
        out["attack"][i] = max(int(np.argmax(mag[i])) - o, 0) / sample_rate
        # pitch first: one period of the body is the envelope's window
        times, f_inst = _pitch_track(
            x[i], o, min(n, o + int(PITCH_SPAN * sample_rate)), sample_rate
        )
        if f_inst.size:
            body = f_inst[times >= BODY_START]
            if body.size < 3:
                body = f_inst[-3:]
            out["body_pitch"][i] = float(np.median(body))
            out["start_pitch"][i] = float(f_inst[0])
            out["pitch_glide"][i] = 12.0 * math.log2(out["start_pitch"][i] / out["body_pitch"][i])
            for name, t in zip(PITCH_ENVELOPE_NAMES, PITCH_TIMES, strict=True):
                out[name][i] = float(np.interp(t, times, f_inst))
            out["sweep_time"][i] = sweep_time(times, f_inst, out["body_pitch"][i])
        out["swell_db"][i] = _swell_db(x[i], o, sample_rate)
        out["hit_harmonic_db"][i] = _hit_harmonic_db(x[i], o, times, f_inst, sample_rate)
        f0 = out["body_pitch"][i]
        window = sample_rate / f0 if f0 > 0 else ENVELOPE_WINDOW[1] * sample_rate
        window = float(np.clip(window, *(w * sample_rate for w in ENVELOPE_WINDOW)))
        env = rms_envelope(x[i], int(round(window)))  # (L,)
        env_db = 20.0 * np.log10(np.maximum(env / max(env.max(), _EPS), _EPS))
        for level in (6, 20, 40):
            last = n - 1 - int(np.argmax(env_db[::-1] >= -level))  # last sample within `level` dB
            out[f"decay_{level}"][i] = max(last + 1 - o, 0) / sample_rate
    stop = np.minimum(onset + np.maximum((out["decay_40"] * sample_rate).astype(int), 1), n)

    # whole-clip spectrum: centroid, sub and low ratios
    power = np.abs(np.fft.rfft(x, axis=-1)) ** 2  # (B, n//2+1)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    total = power.sum(axis=-1) + _EPS
    out["centroid"] = (power * freqs).sum(axis=-1) / total
    out["sub_ratio"] = power[:, freqs < SUB_HZ].sum(axis=-1) / total
    out["low_ratio"] = power[:, freqs < LOW_HZ].sum(axis=-1) / total

    # scipy.signal on first use, not with the module: it takes ~1.7 s to import, and every
    # kickgen command loads this module (kickgen eval registers through it)
    from scipy.signal import butter, sosfiltfilt

    click_sos = butter(4, CLICK_HZ, btype="high", fs=sample_rate, output="sos")
    n_click = int(round(CLICK_WINDOW * sample_rate))
    n_fft_h = 1 << 15
    h_freqs = np.fft.rfftfreq(n_fft_h, 1.0 / sample_rate)
    for i in range(b):
        o, s = int(onset[i]), int(stop[i])
        if out["silent"][i]:
            continue
        active = x[i, o:s]
        rms = math.sqrt(float(np.mean(active**2))) if active.size else 0.0
        out["rms_dbfs"][i] = 20.0 * math.log10(max(rms, _EPS))
        out["crest_db"][i] = 20.0 * math.log10(max(peak[i], _EPS) / max(rms, _EPS))
        at_ceiling = _ceiling_count(x[i])
        out["clip_fraction"][i] = at_ceiling / max(s - o, 1)
        out["clipped"][i] = float(peak[i] >= FULL_SCALE or at_ceiling >= CLIP_SAMPLES)

        # click: the share of the first 20 ms's energy that lies above CLICK_HZ
        margin = n_click  # filter a little around the window, not the whole clip
        lo, hi = max(o - margin, 0), min(o + n_click + margin, n)
        padded = hi - lo > 3 * (2 * len(click_sos) + 1)  # what sosfiltfilt needs
        high = sosfiltfilt(click_sos, x[i, lo:hi]) if padded else x[i, lo:hi] * 0.0
        hi_energy = float((high[o - lo : o - lo + n_click] ** 2).sum())
        attack_energy = float((x[i, o : o + n_click] ** 2).sum())
        out["click_db"][i] = float(_db(hi_energy / max(attack_energy, _EPS)))

        p_a = int(PUNCH_WINDOWS[0] * sample_rate)
        p_b = int(PUNCH_WINDOWS[1] * sample_rate)
        out["punch"][i] = float(
            (x[i, o : o + p_a] ** 2).sum() / ((x[i, o : o + p_b] ** 2).sum() + _EPS)
        )

        # harmonic content of the body around the measured pitch
        f0 = out["body_pitch"][i]
        h_a = o + int(HARMONIC_WINDOW[0] * sample_rate)
        h_b = min(o + int(HARMONIC_WINDOW[1] * sample_rate), n)
        body_seg = x[i, h_a:h_b]
        if f0 > 0 and body_seg.size > 256:
            hspec = np.abs(np.fft.rfft(body_seg * np.hanning(body_seg.size), n=n_fft_h)) ** 2

            fund = _band_power(hspec, h_freqs, f0)
            # harmonic partials above the noise found halfway between them
            harm = sum(
                max(
                    _band_power(hspec, h_freqs, k * f0)
                    - _band_power(hspec, h_freqs, (k + 0.5) * f0),
                    0.0,
                )
                for k in HARMONICS
                if (k + 0.5) * f0 < 0.45 * sample_rate
            )
            out["harmonic_db"][i] = float(_db(harm / max(fund, _EPS)))
        else:
            out["harmonic_db"][i] = -100.0
    return out


def describe(wave: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE) -> dict[str, float]:
    """Descriptors of one clip ``(L,)``: name → float (see the module docstring)."""
    batch = describe_batch(wave, sample_rate)
    return {k: float(v[0]) for k, v in batch.items()}


# --------------------------------------------------------------------------- measured keywords

DEEP_HZ = 48.0  # body pitch at or below: "deep"
HIGH_HZ = 72.0  # body pitch at or above: "high"
SUB_RATIO = 0.6  # share of energy below 60 Hz at or above: "sub"
SHORT_S = 0.25  # decay to -40 dB at or below: "short"
LONG_S = 0.6  # decay to -40 dB at or above: "long"
PUNCH_MIN = 0.55  # punchy: this share of the first 300 ms in the first 50 ms ...
PUNCH_ATTACK_S = 0.010  # ... reached within 10 ms ...
PUNCH_CLICK_DB = -36.0  # ... with some attack above 1 kHz
CLICKY_DB = -18.0  # click share of the attack at or above: "clicky"
SOFT_CLICK_DB = -36.0  # soft: click at or below this ...
SOFT_HARMONIC_DB = -25.0  # ... and a clean body
HARD_CLICK_DB = -26.0  # hard: click at or above this ...
HARD_CREST_DB = 10.0  # ... and a dense body (crest factor at or below)
DISTORTED_HARMONIC_DB = -16.0  # distorted: harmonics at or above this ...
DISTORTED_CREST_DB = 12.0  # ... in a dense body (crest factor at or below)
CLEAN_HARMONIC_DB = -40.0  # harmonics at or below: "clean"


@dataclass(frozen=True)
class KeywordRule:
    """A keyword the corpus attaches only when a clip's descriptors satisfy ``test``."""

    keyword: str
    rule: str  # the test in words, for the dataset card
    test: Callable[[Mapping[str, float]], bool]


KEYWORD_RULES: tuple[KeywordRule, ...] = (
    KeywordRule("deep", f"body_pitch ≤ {DEEP_HZ:g} Hz", lambda d: 0 < d["body_pitch"] <= DEEP_HZ),
    KeywordRule("high", f"body_pitch ≥ {HIGH_HZ:g} Hz", lambda d: d["body_pitch"] >= HIGH_HZ),
    KeywordRule("sub", f"sub_ratio ≥ {SUB_RATIO:g}", lambda d: d["sub_ratio"] >= SUB_RATIO),
    KeywordRule("short", f"decay_40 ≤ {SHORT_S:g} s", lambda d: d["decay_40"] <= SHORT_S),
    KeywordRule("long", f"decay_40 ≥ {LONG_S:g} s", lambda d: d["decay_40"] >= LONG_S),
    KeywordRule(
        "punchy",
        f"punch ≥ {PUNCH_MIN:g}, attack ≤ {PUNCH_ATTACK_S * 1000:g} ms, click_db ≥ {PUNCH_CLICK_DB:g} dB",
        lambda d: (
            d["punch"] >= PUNCH_MIN
            and d["attack"] <= PUNCH_ATTACK_S
            and d["click_db"] >= PUNCH_CLICK_DB
        ),
    ),
    KeywordRule("clicky", f"click_db ≥ {CLICKY_DB:g} dB", lambda d: d["click_db"] >= CLICKY_DB),
    KeywordRule(
        "soft",
        f"click_db ≤ {SOFT_CLICK_DB:g} dB, harmonic_db ≤ {SOFT_HARMONIC_DB:g} dB",
        lambda d: d["click_db"] <= SOFT_CLICK_DB and d["harmonic_db"] <= SOFT_HARMONIC_DB,
    ),
    KeywordRule(
        "hard",
        f"click_db ≥ {HARD_CLICK_DB:g} dB, crest_db ≤ {HARD_CREST_DB:g} dB",
        lambda d: d["click_db"] >= HARD_CLICK_DB and d["crest_db"] <= HARD_CREST_DB,
    ),
    KeywordRule(
        "distorted",
        f"harmonic_db ≥ {DISTORTED_HARMONIC_DB:g} dB, crest_db ≤ {DISTORTED_CREST_DB:g} dB",
        lambda d: d["harmonic_db"] >= DISTORTED_HARMONIC_DB and d["crest_db"] <= DISTORTED_CREST_DB,
    ),
    KeywordRule(
        "clean",
        f"harmonic_db ≤ {CLEAN_HARMONIC_DB:g} dB",
        lambda d: d["harmonic_db"] <= CLEAN_HARMONIC_DB,
    ),
)

MEASURED_KEYWORDS: frozenset[str] = frozenset(rule.keyword for rule in KEYWORD_RULES)


def measured_keywords(descriptors: Mapping[str, float]) -> list[str]:
    """The keywords of ``KEYWORD_RULES`` that one clip's descriptors satisfy, in table order.

    The corpus attaches these by measurement only: a name that says "deep" does not make a
    clip deep, its body pitch does.
    """
    if descriptors.get("silent", 0.0):
        return []
    return [rule.keyword for rule in KEYWORD_RULES if rule.test(descriptors)]
