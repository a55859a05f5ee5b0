"""A renderer for DrumSynth ``.ds`` patches (the INI format LMMS ships in ``samples/drumsynth``).

Written from the format's parameters, not from DrumSynth's code, so it is our reading of them:

| section | parameters | how we render them |
| --- | --- | --- |
| ``[General]`` | ``Tuning`` (semitones), ``Stretch`` (% of envelope time), ``Level`` (dB), ``Filter``, ``HighPass``, ``Resonance``, ``FilterEnv`` | every frequency × 2^(Tuning/12); every envelope time × Stretch/100; output gain; a resonant low-pass (high-pass with ``HighPass=1``) whose cutoff follows ``FilterEnv`` (level 0–100 → 20 Hz–20 kHz, logarithmic), applied to the noise layers and to overtones with ``Filter=1`` |
| ``[Tone]`` | ``Level``, ``F1``, ``F2``, ``Droop``, ``Phase``, ``Envelope`` | a sine gliding from F1 to F2 Hz; the glide is exponential with time constant 0.2 s · 10^(−Droop/30) (Droop 0 → 200 ms, 60 → 2 ms); ``Phase`` is the start phase in degrees |
| ``[Noise]`` | ``Level``, ``Slope``, ``Envelope`` | white noise tilted by ``Slope`` (−100: low-passed at 500 Hz … +100: high-passed at 2 kHz) |
| ``[Overtones]`` | ``F1``/``F2``, ``Wave1``/``Wave2`` (0 sine, 1 sine², 2 triangle, 3 saw, 4 square), ``Track1``/``Track2``, ``Method``, ``Param``, ``Envelope1``/``Envelope2``, ``Filter`` | two oscillators (following the tone's glide ratio when tracked) combined by ``Method``: 0 add, 1 ring modulation, 2 FM of 1 by 2 with index Param/20, 3 mix by Param % |
| ``[NoiseBand]``, ``[NoiseBand2]`` | ``Level``, ``F``, ``dF``, ``Envelope`` | noise low-passed to dF % of F / 2 and shifted to F by a cosine: a band dF % wide around F |
| ``[Distortion]`` | ``Clipping`` (dB of drive), ``Bits``, ``Rate`` | drive into the synth's soft clipper (:func:`kickgen.data.synth.saturate`: no flat tops); keep 16 − Bits bits (dithered); hold each sample 2^Rate times |

Envelopes are ``time,level`` points: time in samples at 44.1 kHz (before ``Stretch``), level
0–100, linear between points and silent after the last. Levels are linear with 128 = unity.
"""

from __future__ import annotations

import configparser
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfilt

from kickgen.audio import SAMPLE_RATE
from kickgen.data.synth import saturate
from kickgen.errors import KickgenError

MAX_SECONDS = 2.0  # renders are cut to the clip length


class PatchError(KickgenError):
    """A DrumSynth patch could not be parsed."""


def read_patch(path: str | Path) -> dict[str, dict[str, str]]:
    """Parse a ``.ds`` file into ``{section: {key: value}}`` (keys lower-case)."""
    path = Path(path)
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        text = path.read_text(encoding="latin-1")
        parser.read_string(text)
    except (OSError, configparser.Error) as exc:
        raise PatchError(f"{path}: not a readable DrumSynth patch ({exc})") from exc
    patch = {section.lower(): dict(parser[section]) for section in parser.sections()}
    if "tone" not in patch and "noise" not in patch:
        raise PatchError(f"{path}: no [Tone] or [Noise] section: not a DrumSynth patch")
    return patch


def _num(section: dict[str, str], key: str, default: float = 0.0) -> float:
    try:
        return float(section.get(key.lower(), default))
    except ValueError:
        return default


def _on(section: dict[str, str] | None) -> bool:
    return bool(section) and _num(section, "on") > 0


def envelope(spec: str, n: int, stretch: float = 1.0) -> np.ndarray:
    """Piecewise-linear envelope ``"t0,l0 t1,l1 …"`` (t in samples, l in 0–100) → ``(n,)`` in 0..1."""
    points = []
    for item in spec.split():
        if "," not in item:
            continue
        t, level = item.split(",", 1)
        try:
            points.append((float(t) * stretch, float(level) / 100.0))
        except ValueError:
            continue
    if not points:
        return np.zeros(n)
    times, levels = zip(*sorted(points), strict=True)
    grid = np.arange(n, dtype=np.float64)
    env = np.interp(grid, times, levels, left=levels[0], right=0.0)
    env[grid > times[-1]] = 0.0
    return np.clip(env, 0.0, None)


def envelope_end(spec: str, stretch: float = 1.0) -> float:
    """Time (samples) of the last point of an envelope spec."""
    times = []
    for item in spec.split():
        try:
            times.append(float(item.split(",", 1)[0]) * stretch)
        except ValueError:
            continue
    return max(times, default=0.0)


def _wave(phase: np.ndarray, shape: int) -> np.ndarray:
    """Waveforms by number: 0 sine, 1 sine², 2 triangle, 3 saw, 4 square; phase in cycles."""
    frac = np.mod(phase, 1.0)
    if shape == 1:
        s = np.sin(2 * np.pi * frac)
        return s * np.abs(s)
    if shape == 2:
        return 1.0 - 4.0 * np.abs(frac - 0.5)
    if shape == 3:
        return 2.0 * frac - 1.0
    if shape == 4:
        return np.where(frac < 0.5, 1.0, -1.0)
    return np.sin(2 * np.pi * frac)


def _tilted_noise(rng: np.random.Generator, n: int, slope: float) -> np.ndarray:
    white = rng.standard_normal(n)
    amount = min(abs(slope) / 100.0, 1.0)
    if amount == 0.0:
        return white
    kind, cutoff = ("low", 500.0) if slope < 0 else ("high", 2000.0)
    shaped = sosfilt(butter(1, cutoff, btype=kind, fs=SAMPLE_RATE, output="sos"), white)
    shaped *= np.std(white) / max(np.std(shaped), 1e-12)
    return (1.0 - amount) * white + amount * shaped


def _noise_band(rng: np.random.Generator, n: int, centre: float, width_pct: float) -> np.ndarray:
    half = max(centre * width_pct / 200.0, 5.0)
    lowpass = butter(2, min(half, 0.45 * SAMPLE_RATE), fs=SAMPLE_RATE, output="sos")
    base = sosfilt(lowpass, rng.standard_normal(n))
    base /= max(np.std(base), 1e-12)
    t = np.arange(n) / SAMPLE_RATE
    return base * np.cos(2 * np.pi * centre * t)


def _swept_filter(
    x: np.ndarray, cutoff: np.ndarray, resonance: float, highpass: bool
) -> np.ndarray:
    """Chamberlin state-variable filter with a per-sample cutoff (Hz) ``(n,)``."""
    q = 1.0 / (0.7 + resonance / 12.0)  # damping: Resonance 0 → Q 0.7, 100 → Q ≈ 9
    f = 2.0 * np.sin(np.pi * np.clip(cutoff, 20.0, SAMPLE_RATE / 6.5) / SAMPLE_RATE)
    low = band = 0.0
    out = np.empty_like(x)
    for i in range(x.size):  # a few thousand samples per patch: plain loop is fast enough
        low += f[i] * band
        high = x[i] - low - q * band
        band += f[i] * high
        out[i] = high if highpass else low
    return out


def render_patch(
    patch: dict[str, dict[str, str]],
    *,
    tuning: float = 0.0,
    stretch: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """Render a parsed patch to float64 ``(L,)`` at 44.1 kHz (L ≤ 2 s).

    ``tuning`` (semitones) and ``stretch`` (factor) are added to the patch's own General
    ``Tuning`` and multiplied into its ``Stretch``: the variants DrumSynth itself offers.
    """
    rng = np.random.default_rng(seed)
    gen = patch.get("general", {})
    ratio = 2.0 ** ((_num(gen, "tuning") + tuning) / 12.0)
    stretch = stretch * (_num(gen, "stretch", 100.0) or 100.0) / 100.0

    layers = [(name, patch.get(name)) for name in ("tone", "noise", "noiseband", "noiseband2")]
    ends = [envelope_end(sec.get("envelope", ""), stretch) for _, sec in layers if _on(sec)]
    over = patch.get("overtones")
    if _on(over):
        ends += [envelope_end(over.get(k, ""), stretch) for k in ("envelope1", "envelope2")]
    n = int(min(max(ends, default=0.0) + 1, MAX_SECONDS * SAMPLE_RATE))
    if n < 64:
        raise PatchError("patch has no enabled layer with an envelope")
    t = np.arange(n) / SAMPLE_RATE
    direct = np.zeros(n)  # layers that bypass the filter
    filtered = np.zeros(n)

    tone = patch.get("tone")
    glide = np.ones(n)  # tone frequency / F1, for tracked overtones
    if _on(tone):
        f1, f2 = _num(tone, "f1", 200) * ratio, _num(tone, "f2", 50) * ratio
        tau = 0.2 * 10.0 ** (-_num(tone, "droop") / 30.0) * stretch
        freq = f2 + (f1 - f2) * np.exp(-t / tau)
        glide = freq / max(f1, 1e-6)
        phase = _num(tone, "phase") / 360.0 + np.cumsum(freq) / SAMPLE_RATE
        env = envelope(tone.get("envelope", ""), n, stretch)
        direct += _num(tone, "level", 128) / 128.0 * env * np.sin(2 * np.pi * phase)

    noise = patch.get("noise")
    if _on(noise):
        env = envelope(noise.get("envelope", ""), n, stretch)
        level = _num(noise, "level", 128) / 128.0
        filtered += level * env * 0.3 * _tilted_noise(rng, n, _num(noise, "slope"))

    if _on(over):
        osc = []
        for k in ("1", "2"):
            f = _num(over, "f" + k, 200) * ratio
            track = glide if _num(over, "track" + k) > 0 else 1.0
            phase = np.cumsum(f * track * np.ones(n)) / SAMPLE_RATE
            osc.append(
                (
                    phase,
                    int(_num(over, "wave" + k)),
                    envelope(over.get("envelope" + k, ""), n, stretch),
                )
            )
        (p1, w1, e1), (p2, w2, e2) = osc
        method, param = int(_num(over, "method")), _num(over, "param", 50)
        if method == 1:
            sig = e1 * _wave(p1, w1) * e2 * _wave(p2, w2)
        elif method == 2:
            sig = e1 * _wave(p1 + param / 20.0 * e2 * _wave(p2, w2) / (2 * np.pi), w1)
        elif method == 3:
            mix = param / 100.0
            sig = (1 - mix) * e1 * _wave(p1, w1) + mix * e2 * _wave(p2, w2)
        else:
            sig = 0.5 * (e1 * _wave(p1, w1) + e2 * _wave(p2, w2))
        sig *= _num(over, "level", 128) / 128.0
        if _num(over, "filter") > 0:
            filtered += sig
        else:
            direct += sig

    for name in ("noiseband", "noiseband2"):
        band = patch.get(name)
        if _on(band):
            env = envelope(band.get("envelope", ""), n, stretch)
            sig = _noise_band(rng, n, _num(band, "f", 1000) * ratio, _num(band, "df", 50))
            filtered += _num(band, "level", 128) / 128.0 * 0.5 * env * sig

    if _num(gen, "filter") > 0 and np.any(filtered):
        level = envelope(gen.get("filterenv", "0,100 1,100"), n, stretch)
        cutoff = 20.0 * 1000.0**level  # level 0..1 → 20 Hz..20 kHz
        filtered = _swept_filter(
            filtered, cutoff, _num(gen, "resonance"), _num(gen, "highpass") > 0
        )
    out = direct + filtered

    dist = patch.get("distortion")
    if _on(dist):
        out = saturate(out, _num(dist, "clipping"))
        bits = int(_num(dist, "bits"))
        if bits > 0:
            steps = 2.0 ** max(16 - bits, 1) / max(np.abs(out).max(), 1e-12)
            # dithered, so the quantiser does not hold flat runs at the peak
            out = np.round(out * steps + rng.uniform(-0.5, 0.5, out.size)) / steps
        rate = int(_num(dist, "rate"))
        if rate > 0:
            hold = 2**rate
            out = np.repeat(out[::hold], hold)[:n]
    gain = 10.0 ** (_num(gen, "level") / 20.0)
    out = out * gain
    if not np.isfinite(out).all() or np.abs(out).max() <= 0:
        raise PatchError("patch renders to silence")
    return out


def render_file(
    path: str | Path, *, tuning: float = 0.0, stretch: float = 1.0, seed: int = 0
) -> np.ndarray:
    """Read and render a ``.ds`` file: float64 ``(L,)`` at 44.1 kHz."""
    try:
        return render_patch(read_patch(path), tuning=tuning, stretch=stretch, seed=seed)
    except PatchError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise PatchError(f"{path}: {exc}") from exc


def is_kick_patch(path: str | Path) -> bool:
    """Kick patches by name: kick, bass drum, bd (LMMS's drumsynth folders mix all drums)."""
    stem = Path(path).stem.lower().replace("-", "_").replace(" ", "_")
    return "kick" in stem or "bass_drum" in stem or stem.startswith("bd") or stem == "boom"


__all__ = ["PatchError", "envelope", "is_kick_patch", "read_patch", "render_file", "render_patch"]
