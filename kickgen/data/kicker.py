"""A renderer for LMMS Kicker presets (``presets/Kicker/*.xpf``): a Kicker-style kick synth.

Written from the preset's parameters (the ``<kicker>`` element), our reading of them:

| parameter | meaning here |
| --- | --- |
| ``startfreq``, ``endfreq`` | Hz at the start and end of the sweep |
| ``startnote``, ``endnote`` | when 1, that frequency is the played note instead: the preview note A4 transposed by the track's ``basenote`` (57 = A4; TrapKick's 93 plays 55 Hz) |
| ``decay`` | ms: the length of the kick |
| ``slope`` | frequency curve: ``f = end + (start − end)·(1 − x)^(1/slope)`` over x = t/decay |
| ``env`` | amplitude curve: ``(1 − x)^(1/env)`` |
| ``dist``, ``distend`` | drive at the start and at the end, ``20·log10(1 + dist)`` dB into a soft clipper |
| ``noise`` | white noise under the amplitude envelope (× 0.1) |
| ``click`` | a 1 ms decaying pulse on the attack |
| ``gain`` | output gain |
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kickgen.audio import SAMPLE_RATE
from kickgen.data.synth import SATURATION_LEAK
from kickgen.errors import KickgenError

A4_KEY = 57  # LMMS key number of A4 (440 Hz)


class PresetError(KickgenError):
    """A Kicker preset could not be read."""


@dataclass
class KickerPreset:
    """The parameters of one LMMS Kicker preset."""

    name: str
    startfreq: float = 150.0
    endfreq: float = 40.0
    decay: float = 440.0  # ms
    slope: float = 0.06
    env: float = 0.163
    dist: float = 0.8
    distend: float = 0.8
    noise: float = 0.0
    click: float = 0.4
    gain: float = 1.0
    startnote: bool = False
    endnote: bool = False
    basenote: int = A4_KEY


def read_preset(path: str | Path) -> KickerPreset:
    """Parse an ``.xpf`` file that holds a Kicker instrument."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise PresetError(f"{path}: not a readable LMMS preset ({exc})") from exc
    kicker = root.find(".//instrument[@name='kicker']/kicker")
    if kicker is None:
        raise PresetError(f"{path}: no Kicker instrument in this preset")
    track = root.find(".//instrumenttrack")
    settings = root.find(".//instrumenttracksettings")
    preset = KickerPreset(
        name=(settings.get("name") if settings is not None else None) or path.stem
    )
    for field in (
        "startfreq",
        "endfreq",
        "decay",
        "slope",
        "env",
        "dist",
        "distend",
        "noise",
        "click",
        "gain",
    ):
        if kicker.get(field) is not None:
            setattr(preset, field, float(kicker.get(field)))
    preset.startnote = kicker.get("startnote", "0") not in ("0", "")
    preset.endnote = kicker.get("endnote", "0") not in ("0", "")
    if track is not None and track.get("basenote"):
        preset.basenote = int(float(track.get("basenote")))
    return preset


def render_preset(
    preset: KickerPreset, *, tuning: float = 0.0, stretch: float = 1.0, seed: int = 0
) -> np.ndarray:
    """Render a preset to float64 ``(L,)`` at 44.1 kHz; ``tuning`` in semitones, ``stretch`` × decay."""
    rng = np.random.default_rng(seed)
    ratio = 2.0 ** (tuning / 12.0)
    note = 440.0 * 2.0 ** ((A4_KEY - preset.basenote) / 12.0)
    start = (note if preset.startnote else preset.startfreq) * ratio
    end = (note if preset.endnote else preset.endfreq) * ratio
    n = max(int(preset.decay / 1000.0 * stretch * SAMPLE_RATE), 64)
    x = np.arange(n) / n  # 0..1 over the kick
    freq = end + (start - end) * (1.0 - x) ** (1.0 / max(preset.slope, 1e-3))
    phase = np.cumsum(freq) / SAMPLE_RATE
    amp = (1.0 - x) ** (1.0 / max(preset.env, 1e-3))
    out = np.sin(2 * np.pi * phase) * amp
    out += 0.1 * preset.noise * rng.standard_normal(n) * amp
    n_click = min(int(0.001 * SAMPLE_RATE), n)
    out[:n_click] += preset.click * np.exp(-np.arange(n_click) / (0.2e-3 * SAMPLE_RATE))
    drive = preset.dist + (preset.distend - preset.dist) * x
    gain = 1.0 + np.maximum(drive, 0.0)  # per-sample drive, 20·log10(1 + dist) dB
    # the soft clipper of the synth (tanh with a linear leak), with a drive that moves
    out = np.tanh(gain * out) + SATURATION_LEAK * gain * out
    return preset.gain * out


def is_kick_preset(preset: KickerPreset) -> bool:
    """The Kicker also makes claps and hats: only presets named kick are kicks."""
    return "kick" in preset.name.lower()


__all__ = ["KickerPreset", "PresetError", "is_kick_preset", "read_preset", "render_preset"]
