"""In key: a kick's root note, and tuning a kick to a chosen note.

A kick's root is its body pitch (:func:`kickgen.descriptors.describe`, the resting frequency
after the pitch glide) read as the nearest equal-tempered note (A4 = 440 Hz) and the cents
from it: 43.3 Hz is ``F1 −12 ct``. MIDI numbers follow the General MIDI convention (60 = C4, so
F1 = 29), which is also what an ``.sfz`` ``pitch_keycenter`` takes.

:func:`tune_to_key` moves the body to the nearest octave of a pitch class (at most six semitones
up or down) and keeps the click:

1. the whole kick is replayed at the speed ratio ``r = 2^(semitones / 12)``, anchored at the
   onset (varispeed: the body's pitch and its decay move together, as when a sampler transposes);
2. the first ``CLICK_KEEP_S`` after the onset are the original samples, cross-faded (raised
   cosine, ``CLICK_FADE_S``) into the replayed ones, so the transient is the one the model made.

The clip keeps its length (zero-padded when slowed down). A kick without a measurable body
(silence, noise; body pitch outside ``BODY_RANGE``) is returned unchanged. ``kickgen generate
--key F``, packs and the server all tune through the ``key`` option of
:class:`~kickgen.producer.hygiene.HygieneConfig`, which calls this module.
"""

from __future__ import annotations

import math
import re

import numpy as np

from kickgen.audio import SAMPLE_RATE
from kickgen.errors import KickgenError

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLATS = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#", "Cb": "B", "Fb": "E"}
A4_HZ, A4_MIDI = 440.0, 69
BODY_RANGE = (20.0, 400.0)  # Hz: a body pitch outside this is no kick's; such clips are not tuned
CLICK_KEEP_S = 0.008  # s after the onset kept as the original transient
CLICK_FADE_S = 0.012  # s of cross-fade from the original into the tuned kick
KEY_PATTERN = re.compile(r"^([A-Ga-g])([#b♯♭]?)$")


class TuningError(KickgenError):
    """A key that is not a note name; the message says what to write."""


def hz_to_midi(hz: float) -> float:
    """Fractional MIDI note of a frequency (69.0 = A4 = 440 Hz)."""
    return A4_MIDI + 12.0 * math.log2(hz / A4_HZ)


def midi_to_hz(midi: float) -> float:
    return A4_HZ * 2.0 ** ((midi - A4_MIDI) / 12.0)


def note_of(hz: float) -> tuple[int, int] | None:
    """``(nearest MIDI note, cents from it in [-50, 50])`` of a frequency, or None when there is
    no pitch (not finite, or outside :data:`BODY_RANGE`)."""
    if not (math.isfinite(hz) and BODY_RANGE[0] <= hz <= BODY_RANGE[1]):
        return None
    m = hz_to_midi(hz)
    note = int(round(m))
    return note, int(round(100.0 * (m - note)))


def note_name(midi: int) -> str:
    """``F1`` for MIDI 29 (60 = C4)."""
    return f"{NOTE_NAMES[midi % 12]}{midi // 12 - 1}"


def note_label(hz: float) -> str:
    """A body pitch as note and cents, ``F1 −12 ct`` (U+2212 minus), or ``""`` without a pitch."""
    found = note_of(hz)
    if found is None:
        return ""
    note, cents = found
    sign = "\u2212" if cents < 0 else "+"
    return f"{note_name(note)} {sign}{abs(cents)} ct"


def parse_key(key: str) -> int:
    """Pitch class (0 = C … 11 = B) of a note name: ``F``, ``f#``, ``Bb``, ``A♭``.

    Raises :class:`KickgenError` naming the value: a key is a note without an octave, since the
    kick is moved to the nearest octave of it.
    """
    match = KEY_PATTERN.match(str(key).strip())
    if match is None:
        raise TuningError(
            f"key {key!r}: give a note name without octave, such as F, F# or Bb (the kick moves to the nearest octave)"
        )
    letter, accidental = match.group(1).upper(), match.group(2).replace("♯", "#").replace("♭", "b")
    name = FLATS.get(letter + accidental, letter + accidental)
    return NOTE_NAMES.index(name)


def key_shift(hz: float, key: str) -> float:
    """Semitones (in [-6, 6)) that move a body pitch ``hz`` to the nearest octave of ``key``."""
    pc = parse_key(key)
    return (pc - hz_to_midi(hz) + 6.0) % 12.0 - 6.0


def tune_to_key(
    wave: np.ndarray, key: str, sample_rate: int = SAMPLE_RATE
) -> tuple[np.ndarray, float]:
    """Tune a kick ``(L,)`` to ``key`` (see the module docstring): ``(tuned (L,), semitones)``.

    The semitones are 0.0 for a clip without a measurable body, which comes back unchanged.
    """
    from kickgen.descriptors import describe

    x = np.asarray(wave, dtype=np.float64).reshape(-1)
    parse_key(key)  # a bad key fails even on silence
    if not np.any(x):
        return x.copy(), 0.0
    d = describe(x, sample_rate)
    if note_of(d["body_pitch"]) is None:
        return x.copy(), 0.0
    semitones = key_shift(d["body_pitch"], key)
    ratio = 2.0 ** (semitones / 12.0)
    onset = int(round(d["onset"] * sample_rate))
    n = np.arange(x.size, dtype=np.float64)
    source = onset + (n - onset) * ratio  # replay at `ratio` from the onset on
    tuned = np.interp(source, n, x, left=0.0, right=0.0)
    tuned[:onset] = x[:onset]
    keep = onset + int(round(CLICK_KEEP_S * sample_rate))
    fade = int(round(CLICK_FADE_S * sample_rate))
    gain = np.zeros(x.size)  # share of the original
    gain[:keep] = 1.0
    end = min(keep + fade, x.size)
    if end > keep:
        u = np.arange(end - keep) / (end - keep)
        gain[keep:end] = 0.5 + 0.5 * np.cos(np.pi * u)
    return gain * x + (1.0 - gain) * tuned, float(semitones)


def root_midi(wave: np.ndarray, sample_rate: int = SAMPLE_RATE) -> int | None:
    """Nearest MIDI note of a kick's body pitch (an ``.sfz`` ``pitch_keycenter``), or None."""
    from kickgen.descriptors import describe

    x = np.asarray(wave, dtype=np.float64).reshape(-1)
    if not np.any(x):
        return None
    found = note_of(describe(x, sample_rate)["body_pitch"])
    return None if found is None else found[0]
