"""One-shot hygiene: what a producer expects of a kick sample, applied and measured.

:func:`apply_hygiene` runs, in order, on one raw vocoder output ``(L,)`` at 44.1 kHz:

1. **DC**: subtract the clip's median, a constant offset (the kick oscillates around it), then
   a 2nd-order Butterworth high-pass at ``dc_hz`` (forward only, so nothing rings before the
   onset) removes what is left of the DC and sub-sonic drift.
2. **key** (off by default): with ``key`` set (a note name such as ``"F"``), move the body
   pitch to the nearest octave of that note, click kept (:func:`kickgen.producer.tuning.tune_to_key`).
   It runs before the onset and the fade, which it would otherwise move.
3. **onset**: shift the kick so its onset (first sample within 30 dB of the peak, as
   :func:`kickgen.descriptors.onset_index` measures it) sits ``preroll_ms`` after sample 0; the
   pre-roll fades in (raised cosine) so sample 0 is silent. It runs after the DC step, whose
   phase shift would otherwise move the onset again.
4. **fade**: ``"decay"`` (default) measures the kick's own decay (the -40 dB point of
   ``decay_40`` in :mod:`kickgen.descriptors`) and fades from there to silence over
   ``decay_fade_ms`` with a cubic; a kick that never decays fades over the last ``decay_fade_ms``.
   ``"reference"`` is the reference system's cubic fade from 1.0 s to 1.75 s and silence to 2 s;
   ``"none"`` leaves the tail.
5. **level**: ``"peak"`` scales to ``peak`` (0.95, the output contract) sample peak, or true peak
   with ``true_peak=True``; ``"lufs"`` scales to ``lufs`` integrated loudness (ITU-R BS.1770-4,
   K-weighted and gated, :func:`integrated_loudness`) and lowers the gain where the true peak
   would pass ``ceiling_dbtp``; ``"none"`` keeps the level.
6. **trim** (off by default): cut the silent tail after the last sample within ``trim_db`` of the
   peak (plus 10 ms), giving a file shorter than 2 s.

:func:`sanity_checks` (the eval's checks of one raw kick) is what ``--best-of K`` ranks
candidates by.

scipy.signal is imported inside the functions that filter: it takes about 1.7 s to import, and
``kickgen generate`` loads this module for its flags whether or not it filters.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from kickgen.audio import SAMPLE_RATE
from kickgen.descriptors import describe, onset_index
from kickgen.errors import KickgenError

FADES = ("decay", "reference", "none")
LEVELS = ("peak", "lufs", "none")
TRIM_MARGIN_S = 0.010  # kept after the last audible sample when trimming
MIN_CEILING_DBTP = -30.0  # level="lufs": the lowest true-peak ceiling (-inf would give silence)
MIN_TRIM_DB, MAX_TRIM_DB = -120.0, -20.0  # trim's "silent" threshold re the peak

# ITU-R BS.1770-4 K-weighting: the analog prototypes of its two 48 kHz biquads, so the filter can
# be built at any sample rate by the bilinear transform (with pre-warping at f0).
SHELF_F0 = 1681.974450955533  # Hz, stage 1 high shelf (head effects)
SHELF_GAIN_DB = 3.999843853973347
SHELF_Q = 0.7071752369554196
SHELF_VB_EXP = 0.4996667741545416  # band gain exponent of the shelf's prototype
HIGHPASS_F0 = 38.13547087602444  # Hz, stage 2 high-pass (RLB weighting)
HIGHPASS_Q = 0.5003270373238773
LOUDNESS_OFFSET = -0.691  # dB, so a 997 Hz sine at 0 dBFS reads -3.01 LUFS in one channel
BLOCK_S = 0.400  # gating block length
BLOCK_STEP_S = 0.100  # 75 % overlap
ABSOLUTE_GATE = -70.0  # LUFS
RELATIVE_GATE = -10.0  # LU below the absolutely-gated loudness
TRUE_PEAK_OVERSAMPLE = 4


class HygieneError(KickgenError):
    """A hygiene option has a value it cannot use; the message names it."""


@dataclass(frozen=True)
class HygieneConfig:
    """Options of :func:`apply_hygiene` (see the module docstring); defaults are the defaults."""

    align_onset: bool = True
    preroll_ms: float = 0.5  # onset this long after sample 0
    dc_hz: float | None = 10.0  # high-pass cutoff; None keeps DC
    fade: str = "decay"  # decay | reference | none
    decay_fade_ms: float = 100.0  # cubic fade length of the decay-aware fade
    level: str = "peak"  # peak | lufs | none
    peak: float = 0.95  # linear peak target of level="peak"
    true_peak: bool = False  # level="peak": normalise the 4× oversampled peak instead
    lufs: float = (
        -22.0
    )  # level="lufs" target: 3 in 4 real kicks reach it under -1 dBTP (calibrate.py)
    ceiling_dbtp: float = -1.0  # level="lufs": the true peak stays at or under this
    trim: bool = False  # cut the silent tail
    trim_db: float = -60.0  # "silent": below this re the peak
    key: str | None = (
        None  # tune the body to the nearest octave of this note (e.g. "F"); None keeps it
    )

    def check(self) -> None:
        if self.fade not in FADES:
            raise HygieneError(f"fade={self.fade!r}: use one of {', '.join(FADES)}")
        if self.level not in LEVELS:
            raise HygieneError(f"level={self.level!r}: use one of {', '.join(LEVELS)}")
        if not 0.0 < self.peak <= 1.0:
            raise HygieneError(f"peak={self.peak!r}: use a linear peak in (0, 1], e.g. 0.95")
        if not -70.0 < self.lufs < 0.0:
            raise HygieneError(
                f"lufs={self.lufs!r}: use a loudness target between -70 and 0 LUFS, e.g. -22"
            )
        if not MIN_CEILING_DBTP <= self.ceiling_dbtp <= 0.0:  # lower, and the kick is silence
            raise HygieneError(
                f"ceiling_dbtp={self.ceiling_dbtp!r}: use {MIN_CEILING_DBTP:g} to 0 dBTP, e.g. -1"
            )
        if not 0.0 <= self.preroll_ms <= 20.0:
            raise HygieneError(f"preroll_ms={self.preroll_ms!r}: use 0 to 20 ms")
        if not 1.0 <= self.decay_fade_ms <= 1000.0:
            raise HygieneError(f"decay_fade_ms={self.decay_fade_ms!r}: use 1 to 1000 ms")
        if self.dc_hz is not None and not 1.0 <= self.dc_hz <= 30.0:
            raise HygieneError(f"dc_hz={self.dc_hz!r}: use a cutoff from 1 to 30 Hz, or None")
        if not MIN_TRIM_DB <= self.trim_db <= MAX_TRIM_DB:
            raise HygieneError(
                f"trim_db={self.trim_db!r}: use {MIN_TRIM_DB:g} to {MAX_TRIM_DB:g} dB re the peak, e.g. -60"
            )
        if self.key is not None:
            from kickgen.producer.tuning import TuningError, parse_key

            try:
                parse_key(self.key)
            except TuningError as exc:
                raise HygieneError(str(exc)) from None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# --------------------------------------------------------------------------- loudness


def k_weighting(sample_rate: int = SAMPLE_RATE) -> list[tuple[np.ndarray, np.ndarray]]:
    """BS.1770 K-weighting as two biquads ``[(b, a), (b, a)]`` for ``sample_rate``.

    At 48 kHz they equal the standard's published coefficients (tests check them).
    """
    k = math.tan(math.pi * SHELF_F0 / sample_rate)
    vh = 10.0 ** (SHELF_GAIN_DB / 20.0)
    vb = vh**SHELF_VB_EXP
    a0 = 1.0 + k / SHELF_Q + k * k
    shelf_b = (
        np.array([vh + vb * k / SHELF_Q + k * k, 2.0 * (k * k - vh), vh - vb * k / SHELF_Q + k * k])
        / a0
    )
    shelf_a = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / SHELF_Q + k * k) / a0])
    k = math.tan(math.pi * HIGHPASS_F0 / sample_rate)
    a0 = 1.0 + k / HIGHPASS_Q + k * k
    hp_b = np.array([1.0, -2.0, 1.0])
    hp_a = np.array([1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / HIGHPASS_Q + k * k) / a0])
    return [(shelf_b, shelf_a), (hp_b, hp_a)]


def integrated_loudness(wave: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE) -> float:
    """Integrated loudness of a mono clip ``(L,)`` in LUFS (ITU-R BS.1770-4).

    K-weighting, mean square over 400 ms blocks every 100 ms, absolute gate -70 LUFS, relative
    gate -10 LU. A clip shorter than one block is measured as one block (zero-padded). Returns
    ``-inf`` for silence.
    """
    from scipy.signal import lfilter  # scipy.signal on first use: see the module docstring

    x = _as_np(wave)
    for b, a in k_weighting(sample_rate):
        x = lfilter(b, a, x)
    block = int(round(BLOCK_S * sample_rate))
    step = int(round(BLOCK_STEP_S * sample_rate))
    if x.size < block:
        x = np.pad(x, (0, block - x.size))
    starts = np.arange(0, x.size - block + 1, step)
    csum = np.concatenate([[0.0], np.cumsum(x * x)])
    z = (csum[starts + block] - csum[starts]) / block  # (J,) mean square per block
    with np.errstate(divide="ignore"):
        levels = LOUDNESS_OFFSET + 10.0 * np.log10(z)
    gated = z[levels > ABSOLUTE_GATE]
    if gated.size == 0:
        return -math.inf
    relative = LOUDNESS_OFFSET + 10.0 * math.log10(gated.mean()) + RELATIVE_GATE
    final = z[(levels > ABSOLUTE_GATE) & (levels > relative)]
    return LOUDNESS_OFFSET + 10.0 * math.log10(final.mean())


def true_peak(wave: np.ndarray | torch.Tensor, oversample: int = TRUE_PEAK_OVERSAMPLE) -> float:
    """Linear true peak of ``(L,)``: the peak of the signal ``oversample``× upsampled (polyphase FIR)."""
    x = _as_np(wave)
    if x.size == 0:
        return 0.0
    from scipy.signal import resample_poly

    up = resample_poly(x, oversample, 1)
    return float(max(np.abs(up).max(), np.abs(x).max()))


def to_db(linear: float) -> float:
    """20·log10 of a linear amplitude (``-inf`` for 0)."""
    return 20.0 * math.log10(linear) if linear > 0 else -math.inf


# --------------------------------------------------------------------------- steps


def align_onset(
    x: np.ndarray, preroll_ms: float = 0.5, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Shift ``(L,)`` so the onset is ``preroll_ms`` after sample 0 (zero-padded at the end)."""
    if not np.any(x):
        return x.copy()
    onset = int(onset_index(x)[0])
    pre = int(round(preroll_ms * 1e-3 * sample_rate))
    start = max(onset - pre, 0)
    out = np.zeros_like(x)
    out[: x.size - start] = x[start:]
    lead = onset - start  # samples before the onset
    if lead > 0:
        out[:lead] *= 0.5 - 0.5 * np.cos(
            np.pi * np.arange(lead) / lead
        )  # raised-cosine fade-in from 0
    return out


def remove_dc(x: np.ndarray, cutoff_hz: float = 10.0, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """2nd-order Butterworth high-pass at ``cutoff_hz``, forward only (no pre-ringing)."""
    from scipy.signal import butter, sosfilt

    sos = butter(2, cutoff_hz, btype="high", fs=sample_rate, output="sos")
    return sosfilt(sos, x)


def decay_fade(x: np.ndarray, fade_ms: float = 100.0, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Cubic fade ``(1 − u)³`` to silence starting where the kick has decayed by 40 dB.

    The -40 dB point is ``onset + decay_40`` from :func:`kickgen.descriptors.describe`; the fade
    ends ``fade_ms`` later (or at the clip's end, moving the fade earlier) and silence follows.
    """
    if not np.any(x):
        return x.copy()
    d = describe(x, sample_rate)
    n = int(round(fade_ms * 1e-3 * sample_rate))
    n = min(n, x.size)
    start = int(round((d["onset"] + d["decay_40"]) * sample_rate))
    start = min(start, x.size - n)
    gain = np.ones(x.size)
    u = np.arange(n) / n
    gain[start : start + n] = (1.0 - u) ** 3
    gain[start + n :] = 0.0
    return x * gain


def reference_fade(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The reference's cubic fade from 1.0 s to 1.75 s, silence after (any clip length)."""
    from kickgen.pipeline import FADE_END_S, FADE_START_S

    t = np.arange(x.size) / sample_rate
    u = np.clip((t - FADE_START_S) / (FADE_END_S - FADE_START_S), 0.0, 1.0)
    return x * (1.0 - u) ** 3


def normalize_level(
    x: np.ndarray, cfg: HygieneConfig, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Scale to the level ``cfg`` asks for (silence stays silent)."""
    if cfg.level == "none" or not np.any(x):
        return x
    if cfg.level == "peak":
        peak = true_peak(x) if cfg.true_peak else float(np.abs(x).max())
        return x * (cfg.peak / peak)
    gain_db = cfg.lufs - integrated_loudness(x, sample_rate)
    headroom_db = cfg.ceiling_dbtp - to_db(true_peak(x))
    return x * 10.0 ** (min(gain_db, headroom_db) / 20.0)


def trim_tail(x: np.ndarray, trim_db: float = -60.0, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Cut after the last sample within ``trim_db`` of the peak, keeping 10 ms more."""
    mag = np.abs(x)
    if not np.any(mag):
        return x
    loud = np.nonzero(mag >= mag.max() * 10.0 ** (trim_db / 20.0))[0]
    end = min(int(loud[-1]) + 1 + int(round(TRIM_MARGIN_S * sample_rate)), x.size)
    return x[:end]


def apply_hygiene(wave: np.ndarray | torch.Tensor, cfg: HygieneConfig | None = None) -> np.ndarray:
    """Raw kick ``(L,)`` at 44.1 kHz → cleaned float32 ``(L,)`` (shorter with ``trim``). See the module docstring."""
    cfg = cfg or HygieneConfig()
    cfg.check()
    x = _as_np(wave)
    if cfg.dc_hz is not None:
        x = remove_dc(x - np.median(x), cfg.dc_hz)
    if cfg.key is not None:
        from kickgen.producer.tuning import tune_to_key

        x, _ = tune_to_key(x, cfg.key)
    if cfg.align_onset:
        x = align_onset(x, cfg.preroll_ms)
    if cfg.fade == "decay":
        x = decay_fade(x, cfg.decay_fade_ms)
    elif cfg.fade == "reference":
        x = reference_fade(x)
    x = normalize_level(x, cfg)
    if cfg.trim:
        x = trim_tail(x, cfg.trim_db)
    return x.astype(np.float32)


# --------------------------------------------------------------------------- checks


def sanity_checks(raw: np.ndarray | torch.Tensor) -> dict[str, bool]:
    """Which of the eval's sanity and shape checks (:data:`kickgen.evaluation.metrics.SANITY_CHECKS`
    then ``SHAPE_CHECKS``) the raw kick ``(L,)`` passes, by name, measured as ``kickgen eval`` measures a kick: on the
    pipeline's output of it (:func:`kickgen.pipeline.postprocess`: faded, scaled to a 0.95 peak,
    so a raw peak above full scale is no clipping). ``--best-of K`` ranks its candidates by the
    checks the eval reports: one definition of a sane kick serves both."""
    from kickgen.evaluation import metrics
    from kickgen.pipeline import postprocess

    out = postprocess(torch.from_numpy(_as_np(raw)).unsqueeze(0))
    checks = metrics.sanity_checks(out)
    return {name: bool(checks[name][0]) for name in metrics.SANITY_CHECKS + metrics.SHAPE_CHECKS}


def _as_np(wave: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().cpu().numpy()
    x = np.asarray(wave, dtype=np.float64)
    if x.ndim != 1:
        raise HygieneError(f"expected one clip (L,), got shape {x.shape}")
    return x
