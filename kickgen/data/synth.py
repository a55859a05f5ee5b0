"""The procedural kick synthesizer: style families, parameters, rendering and measured keywords.

A kick is a sum of layers shaped like a sound designer would shape them:

- **body**: an oscillator whose pitch falls exponentially from ``f_start`` to ``f_end`` Hz with
  time constant ``sweep``, optionally shaped toward a rounded square (``body_shape``), with an
  amplitude envelope of ``attack``, ``hold`` and a decay ``exp(-4.6·(t/decay)^curve)`` that
  reaches -40 dB ``decay`` seconds after the hold;
- **click**: a band-passed noise burst and/or a filtered impulse on the attack;
- **body noise**: low-passed noise with its own short decay;
- **sub**: a sine at the end pitch (or an octave below) with a slower attack and its own decay;
- **modes** (acoustic-like kicks): inharmonic membrane partials at the ratios of a circular
  membrane (1.59, 2.14, 2.30, 2.65, 2.92) with shorter decays;
- **saturation** (``drive_db``, asymmetric ``bias``), **EQ** (low shelf at 80 Hz, high-cut),
  an optional short **room** (convolution with decaying filtered noise) and **lo-fi** (bit depth,
  sample hold).

Style families (``FAMILIES``) draw those parameters from distributions: 808, 909, 707, house,
techno, trap, hardstyle, gabber, dnb, acoustic, lofi, electro. A family gives the style keywords
(such as "808 analog"); everything a listener can hear is measured afterwards from the rendered
clip by :func:`kickgen.descriptors.measured_keywords` (deep, short, distorted, punchy, …).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
from scipy.signal import butter, fftconvolve, lfilter, sosfilt

from kickgen.audio import NUM_SAMPLES, SAMPLE_RATE

SATURATION_LEAK = 0.02  # linear share kept by saturate(): strictly monotonic, no flat tops
DB40 = math.log(100.0)  # exp(-DB40) is -40 dB
MEMBRANE_RATIOS = (1.59, 2.14, 2.30, 2.65, 2.92)  # circular membrane modes over the fundamental


def saturate(x: np.ndarray, drive_db: float, bias: float = 0.0) -> np.ndarray:
    """Soft clipper: ``tanh(g·x + bias) − tanh(bias)`` plus a 2 % linear leak, ``g = 10^(drive/20)``.

    Strictly increasing, so it never holds a flat top (the corpus rejects clipped clips) while
    adding the harmonics of a driven analog stage. Output scale is not normalised.
    """
    gain = 10.0 ** (drive_db / 20.0)
    return np.tanh(gain * x + bias) - math.tanh(bias) + SATURATION_LEAK * gain * x


def low_shelf(x: np.ndarray, gain_db: float, freq: float = 80.0) -> np.ndarray:
    """RBJ-cookbook low shelf (slope 1) at ``freq`` Hz with ``gain_db``."""
    if abs(gain_db) < 1e-3:
        return x
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * math.pi * freq / SAMPLE_RATE
    alpha = math.sin(w0) / 2.0 * math.sqrt(2.0)
    cos, sq = math.cos(w0), 2.0 * math.sqrt(a) * alpha
    b = [
        a * ((a + 1) - (a - 1) * cos + sq),
        2 * a * ((a - 1) - (a + 1) * cos),
        a * ((a + 1) - (a - 1) * cos - sq),
    ]
    den = [
        (a + 1) + (a - 1) * cos + sq,
        -2 * ((a - 1) + (a + 1) * cos),
        (a + 1) + (a - 1) * cos - sq,
    ]
    return lfilter(np.array(b) / den[0], np.array(den) / den[0], x)


@dataclass
class KickParams:
    """Every parameter of one synthesized kick (times in s, frequencies in Hz, levels linear)."""

    f_start: float = 180.0  # pitch at the attack
    f_end: float = 50.0  # pitch the body settles to
    sweep: float = 0.02  # time constant of the exponential pitch fall
    drift: float = 0.0  # further relative pitch fall over the decay (0.05 = 5 %)
    body_shape: float = 0.0  # 0 sine … 1 rounded square
    phase: float = 0.0  # start phase of the body, cycles
    attack: float = 0.001  # linear rise
    hold: float = 0.0  # full level before the decay starts
    decay: float = 0.35  # s after the hold to -40 dB: envelope exp(-4.6 (t/decay)^curve)
    curve: float = 1.0  # <1 long tail, >1 held then fast
    click_level: float = 0.2  # band-passed noise burst
    click_freq: float = 3000.0
    click_decay: float = 0.002
    impulse_level: float = 0.0  # filtered impulse on the attack
    noise_level: float = 0.0  # low-passed body noise
    noise_cutoff: float = 800.0
    noise_decay: float = 0.02
    sub_level: float = 0.0  # sine layer at f_end × sub_ratio
    sub_ratio: float = 1.0
    sub_decay: float = 0.6  # s to -40 dB
    modes_level: float = 0.0  # inharmonic membrane partials (acoustic-like)
    modes_decay: float = 0.08
    drive_db: float = 0.0  # saturation
    bias: float = 0.0  # asymmetric saturation (even harmonics)
    shelf_db: float = 0.0  # low shelf at 80 Hz
    high_cut: float = 18000.0  # 2nd-order low-pass
    room_level: float = 0.0  # short room (relative to the dry kick)
    room_decay: float = 0.1
    bits: int = 0  # 0: off, else bit depth of the lo-fi stage
    hold_samples: int = 1  # sample-and-hold factor of the lo-fi stage


def render(params: KickParams, seed: int = 0, length: int = NUM_SAMPLES) -> np.ndarray:
    """Render one kick: float64 ``(length,)`` at 44.1 kHz, onset at sample 0, not normalised."""
    p = params
    rng = np.random.default_rng(seed)
    t = np.arange(length) / SAMPLE_RATE  # (L,) s

    # body oscillator with exponential pitch fall and slow drift
    tail = np.maximum(t - p.attack - p.hold, 0.0)
    freq = p.f_end + (p.f_start - p.f_end) * np.exp(-t / max(p.sweep, 1e-4))
    freq = freq * (1.0 - p.drift * (1.0 - np.exp(-DB40 * tail / max(p.decay, 1e-3))))
    phase = p.phase + np.cumsum(freq) / SAMPLE_RATE  # cycles
    osc = np.sin(2 * np.pi * phase)
    if p.body_shape > 0:
        k = 1.0 + 6.0 * p.body_shape
        osc = (1 - p.body_shape) * osc + p.body_shape * np.tanh(k * osc) / math.tanh(k)
    env = np.exp(-DB40 * (tail / max(p.decay, 1e-3)) ** p.curve)  # -40 dB at tail = decay
    if p.attack > 0:
        env = env * np.clip(t / p.attack, 0.0, 1.0)
    out = osc * env

    # click: band-passed noise burst and a filtered impulse
    burst_env = np.exp(-t / max(p.click_decay, 1e-4))
    if p.click_level > 0:
        lo, hi = p.click_freq / 1.8, min(p.click_freq * 1.8, 0.45 * SAMPLE_RATE)
        sos = butter(2, [lo, hi], btype="band", fs=SAMPLE_RATE, output="sos")
        n_burst = min(length, int(0.05 * SAMPLE_RATE))
        burst = sosfilt(sos, rng.standard_normal(n_burst)) * burst_env[:n_burst]
        burst /= max(np.abs(burst).max(), 1e-9)
        out[:n_burst] += p.click_level * burst
    if p.impulse_level > 0:
        imp = np.zeros(min(length, 2048))
        imp[0] = 1.0
        sos = butter(1, min(p.click_freq, 0.45 * SAMPLE_RATE), fs=SAMPLE_RATE, output="sos")
        imp = sosfilt(sos, imp)
        out[: imp.size] += p.impulse_level * imp / imp.max()

    if p.noise_level > 0:
        sos = butter(2, min(p.noise_cutoff, 0.45 * SAMPLE_RATE), fs=SAMPLE_RATE, output="sos")
        noise = sosfilt(sos, rng.standard_normal(length))
        noise /= max(np.abs(noise).max(), 1e-9)
        out += p.noise_level * noise * np.exp(-t / max(p.noise_decay, 1e-4))

    if p.sub_level > 0:
        sub_env = np.clip(t / 0.008, 0.0, 1.0) * np.exp(-DB40 * tail / max(p.sub_decay, 1e-3))
        out += (
            p.sub_level * np.sin(2 * np.pi * np.cumsum(freq * p.sub_ratio) / SAMPLE_RATE) * sub_env
        )

    if p.modes_level > 0:
        for i, ratio in enumerate(MEMBRANE_RATIOS):
            amp = p.modes_level * rng.uniform(0.3, 1.0) / (1 + i)
            mode_phase = np.cumsum(freq * ratio * rng.uniform(0.98, 1.02)) / SAMPLE_RATE
            decay = p.modes_decay * rng.uniform(0.5, 1.2) / (1 + 0.3 * i)
            out += (
                amp
                * np.sin(2 * np.pi * mode_phase + rng.uniform(0, 2 * np.pi))
                * np.exp(-t / decay)
            )

    if p.drive_db > 0 or p.bias != 0:
        out = saturate(out / max(np.abs(out).max(), 1e-9), p.drive_db, p.bias)
    # lo-fi stage before the EQ: the high-cut then acts as the reconstruction filter and
    # smooths the quantiser's steps (no flat tops)
    if p.hold_samples > 1:
        out = np.repeat(out[:: p.hold_samples], p.hold_samples)[:length]
    if p.bits > 0:
        scale = np.abs(out).max() / 0.99
        steps = 2.0 ** (p.bits - 1)
        # dither keeps the quantiser from holding flat runs at the peak
        out = np.round(out / scale * steps + rng.uniform(-0.5, 0.5, length)) / steps * scale
    out = low_shelf(out, p.shelf_db)
    out = sosfilt(butter(2, 25.0, btype="high", fs=SAMPLE_RATE, output="sos"), out)  # DC, rumble
    if p.high_cut < 0.45 * SAMPLE_RATE:
        out = sosfilt(butter(2, p.high_cut, fs=SAMPLE_RATE, output="sos"), out)

    if p.room_level > 0:
        n_ir = int(min(3 * p.room_decay, 0.5) * SAMPLE_RATE)
        ir_t = np.arange(n_ir) / SAMPLE_RATE
        ir = rng.standard_normal(n_ir) * np.exp(-ir_t / p.room_decay)
        ir = sosfilt(butter(1, 4000.0, fs=SAMPLE_RATE, output="sos"), ir)
        ir[: int(0.004 * SAMPLE_RATE)] = 0.0  # first reflections arrive after ~4 ms
        wet = fftconvolve(out, ir)[:length]
        wet *= np.sqrt((out**2).sum() / max((wet**2).sum(), 1e-12))
        out = out + p.room_level * wet

    return out


# --------------------------------------------------------------------------- style families

# A range is (low, high) drawn uniformly, or (low, high, "log") drawn log-uniformly; a number is fixed.
Range = float | tuple


@dataclass(frozen=True)
class Family:
    """A style: its keywords and the distribution of each parameter it sets."""

    keywords: tuple[str, ...]
    ranges: dict[str, Range]
    weight: float = 1.0  # share of the synthesized corpus, relative to the other families


_COMMON: dict[str, Range] = {"phase": (0.0, 0.1), "attack": (0.0002, 0.002, "log")}

FAMILIES: dict[str, Family] = {
    "808": Family(("808", "analog"), {
        "f_end": (38, 62, "log"), "f_start": (90, 200, "log"), "sweep": (0.008, 0.04, "log"),
        "drift": (0.0, 0.08), "decay": (0.25, 1.2, "log"), "curve": (0.5, 1.0),
        "click_level": (0.15, 0.4), "click_freq": (1500, 5000, "log"), "drive_db": (0, 6),
        "sub_level": (0.0, 0.3), "shelf_db": (0, 4)}, weight=1.3),
    "909": Family(("909", "analog"), {
        "f_end": (48, 72, "log"), "f_start": (180, 360, "log"), "sweep": (0.012, 0.04, "log"),
        "decay": (0.1, 0.3, "log"), "curve": (0.9, 1.5), "click_level": (0.2, 0.6),
        "click_freq": (2000, 6000, "log"), "click_decay": (0.001, 0.004, "log"),
        "impulse_level": (0.0, 0.4), "noise_level": (0.0, 0.1), "drive_db": (2, 12),
        "body_shape": (0.1, 0.5)}, weight=1.2),
    "707": Family(("707", "analog"), {
        "f_end": (55, 85, "log"), "f_start": (110, 220, "log"), "sweep": (0.003, 0.012, "log"),
        "decay": (0.07, 0.2, "log"), "curve": (1.0, 1.8), "click_level": (0.2, 0.5),
        "click_freq": (2500, 7000, "log"), "impulse_level": (0.1, 0.5), "drive_db": (0, 4)}),
    "house": Family(("house",), {
        "f_end": (45, 62, "log"), "f_start": (150, 300, "log"), "sweep": (0.01, 0.035, "log"),
        "decay": (0.1, 0.3, "log"), "curve": (0.9, 1.4), "hold": (0.0, 0.01),
        "click_level": (0.15, 0.5), "click_freq": (1500, 5000, "log"), "drive_db": (0, 9),
        "sub_level": (0.0, 0.3), "shelf_db": (0, 5), "room_level": (0.0, 0.08)}, weight=1.2),
    "techno": Family(("techno",), {
        "f_end": (42, 60, "log"), "f_start": (140, 300, "log"), "sweep": (0.01, 0.035, "log"),
        "decay": (0.15, 0.4, "log"), "curve": (0.8, 1.3), "hold": (0.0, 0.01),
        "click_level": (0.15, 0.5), "click_freq": (1500, 6000, "log"), "drive_db": (2, 12),
        "bias": (0.0, 0.3), "noise_level": (0.0, 0.15), "noise_decay": (0.02, 0.08),
        "room_level": (0.0, 0.1), "room_decay": (0.05, 0.25), "shelf_db": (0, 4)}, weight=1.2),
    "trap": Family(("trap", "808"), {
        "f_end": (35, 58, "log"), "f_start": (60, 140, "log"), "sweep": (0.01, 0.06, "log"),
        "drift": (0.0, 0.12), "decay": (0.5, 1.6, "log"), "curve": (0.9, 1.8),
        "hold": (0.0, 0.05), "click_level": (0.0, 0.3), "drive_db": (0, 14),
        "sub_level": (0.0, 0.3), "shelf_db": (0, 6)}, weight=1.2),
    "hardstyle": Family(("hardstyle", "hard"), {
        "f_end": (48, 70, "log"), "f_start": (180, 420, "log"), "sweep": (0.01, 0.04, "log"),
        "decay": (0.25, 0.6, "log"), "curve": (1.2, 2.2), "hold": (0.02, 0.08),
        "click_level": (0.2, 0.6), "click_freq": (2000, 6000, "log"), "drive_db": (16, 30),
        "bias": (0.0, 0.4), "body_shape": (0.0, 0.5), "high_cut": (6000, 14000, "log")}),
    "gabber": Family(("gabber", "hard"), {
        "f_end": (55, 85, "log"), "f_start": (200, 500, "log"), "sweep": (0.004, 0.02, "log"),
        "decay": (0.15, 0.45, "log"), "curve": (1.2, 2.0), "hold": (0.01, 0.05),
        "click_level": (0.2, 0.5), "drive_db": (24, 38), "bias": (0.1, 0.5),
        "body_shape": (0.2, 0.8), "high_cut": (5000, 12000, "log")}),
    "dnb": Family(("dnb",), {
        "f_end": (50, 80, "log"), "f_start": (150, 350, "log"), "sweep": (0.004, 0.015, "log"),
        "decay": (0.08, 0.25, "log"), "curve": (1.0, 1.8), "click_level": (0.3, 0.8),
        "click_freq": (2500, 8000, "log"), "click_decay": (0.001, 0.003, "log"),
        "impulse_level": (0.1, 0.6), "drive_db": (0, 12), "noise_level": (0.0, 0.15)}),
    "acoustic": Family(("acoustic",), {
        "f_end": (40, 80, "log"), "f_start": (1.02, 1.25), "sweep": (0.005, 0.02, "log"),
        "decay": (0.1, 0.45, "log"), "curve": (0.8, 1.3), "click_level": (0.2, 0.6),
        "click_freq": (1500, 5000, "log"), "click_decay": (0.002, 0.008, "log"),
        "noise_level": (0.05, 0.3), "noise_cutoff": (300, 2500, "log"), "noise_decay": (0.01, 0.05),
        "modes_level": (0.2, 0.7), "modes_decay": (0.03, 0.15, "log"),
        "room_level": (0.05, 0.4), "room_decay": (0.05, 0.3, "log"),
        "high_cut": (6000, 16000, "log")}, weight=1.2),
    "lofi": Family(("lofi",), {
        "f_end": (45, 80, "log"), "f_start": (90, 250, "log"), "sweep": (0.005, 0.03, "log"),
        "decay": (0.1, 0.5, "log"), "click_level": (0.0, 0.4), "drive_db": (0, 14),
        "noise_level": (0.0, 0.2), "high_cut": (2500, 7000, "log"), "bits": (6, 10),
        "hold_samples": (1, 4)}, weight=0.8),
    "electro": Family(("electro",), {
        "f_end": (45, 75, "log"), "f_start": (150, 400, "log"), "sweep": (0.003, 0.015, "log"),
        "decay": (0.1, 0.5, "log"), "curve": (1.0, 1.8), "click_level": (0.1, 0.5),
        "impulse_level": (0.0, 0.5), "drive_db": (0, 12), "body_shape": (0.0, 0.4),
        "sub_level": (0.0, 0.3)}),
}  # fmt: skip

_INT_FIELDS = {f.name for f in fields(KickParams) if f.type in ("int", int)}


def _draw(rng: np.random.Generator, spec: Range) -> float:
    if not isinstance(spec, tuple):
        return float(spec)
    lo, hi = float(spec[0]), float(spec[1])
    if len(spec) > 2 and spec[2] == "log":
        return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    return float(rng.uniform(lo, hi))


def sample_params(family: str, rng: np.random.Generator) -> KickParams:
    """Draw one kick's parameters from a style family."""
    fam = FAMILIES[family]
    values: dict[str, float] = {}
    for name, spec in {**_COMMON, **fam.ranges}.items():
        values[name] = _draw(rng, spec)
    if family == "acoustic":  # an acoustic kick barely glides: f_start is a ratio over f_end
        values["f_start"] = values["f_end"] * values["f_start"]
    values["f_start"] = max(values["f_start"], values["f_end"])
    params = KickParams()
    for name, value in values.items():
        setattr(params, name, int(round(value)) if name in _INT_FIELDS else value)
    return params


def choose_family(rng: np.random.Generator) -> str:
    """A family drawn with the families' weights."""
    names = sorted(FAMILIES)
    weights = np.array([FAMILIES[n].weight for n in names])
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def synth_kick(seed: int, family: str | None = None) -> tuple[np.ndarray, str, KickParams]:
    """One kick from a seed: (float64 ``(88200,)`` wave, family, parameters); deterministic."""
    rng = np.random.default_rng([seed, 0x6B69636B])
    family = family or choose_family(rng)
    params = sample_params(family, rng)
    return render(params, seed=int(rng.integers(2**31))), family, params


def params_text(params: KickParams) -> str:
    """Compact ``name=value`` text of the parameters (recorded in the manifest)."""
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in asdict(params).items()
    )
