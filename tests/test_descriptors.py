"""Kick descriptors on synthetic signals whose answers are known."""

import math

import numpy as np
import pytest
import torch

from kickgen.audio import NUM_SAMPLES, SAMPLE_RATE
from kickgen.descriptors import DESCRIPTOR_NAMES, describe, describe_batch, onset_index

T = np.arange(NUM_SAMPLES) / SAMPLE_RATE  # (88200,) s


def tone(freq=55.0, tau=0.1, start=0.1, glide=0.0, glide_tau=0.015, drive=0.0) -> np.ndarray:
    """A decaying sine starting at ``start`` s, optionally gliding down by ``glide`` Hz, peak 0.9."""
    t = np.maximum(T - start, 0.0)
    inst = freq + glide * np.exp(-t / glide_tau)  # Hz
    phase = 2 * np.pi * np.cumsum(inst) / SAMPLE_RATE
    x = np.sin(phase) * np.exp(-t / tau) * (T >= start)
    if drive:
        x = np.clip(drive * x, -1.0, 1.0)  # hard clipping: flat tops
    return 0.9 * x / np.abs(x).max()


@pytest.mark.parametrize("freq", [40.0, 55.0, 90.0, 160.0])
def test_known_pitch_is_measured(freq):
    d = describe(tone(freq=freq, tau=0.2))
    assert d["body_pitch"] == pytest.approx(freq, rel=0.01)
    assert abs(d["pitch_glide"]) < 0.5  # no glide: start and body agree within half a semitone


def test_glide_is_ignored_by_body_pitch_and_measured_as_glide():
    d = describe(tone(freq=50.0, glide=150.0, glide_tau=0.02, tau=0.25))
    assert d["body_pitch"] == pytest.approx(50.0, rel=0.03)
    assert d["start_pitch"] > 120.0
    assert d["pitch_glide"] > 12.0  # more than an octave down


@pytest.mark.parametrize("tau", [0.05, 0.1, 0.3])
def test_exponential_decay_times(tau):
    d = describe(tone(freq=60.0, tau=tau, start=0.05))
    # amplitude exp(-t/tau) is x dB down at t = x * tau / (20 log10 e)
    for level in (6, 20, 40):
        expected = level * tau / (20 * math.log10(math.e))
        assert d[f"decay_{level}"] == pytest.approx(expected, rel=0.05, abs=0.004)


def test_onset_time_and_alignment():
    for start in (0.0, 0.0123, 0.3):
        d = describe(tone(start=start))
        assert d["onset"] == pytest.approx(start, abs=0.5e-3)
    batch = np.stack([tone(start=s) for s in (0.01, 0.02)])
    assert onset_index(batch).tolist() == [441, 882]


def test_identical_audio_gives_equal_descriptors_and_batch_matches_single():
    x = tone(freq=70.0, tau=0.15, glide=60.0)
    a, b = describe(x), describe(x.copy())
    assert a == b
    batch = describe_batch(np.stack([x, tone(freq=45.0)]))
    assert set(batch) == set(DESCRIPTOR_NAMES)
    for name in DESCRIPTOR_NAMES:
        assert batch[name].shape == (2,)
        assert batch[name][0] == pytest.approx(a[name], rel=1e-9, abs=1e-9)
    # torch float32 input works and agrees up to float32 rounding
    t = describe(torch.from_numpy(x.astype(np.float32)))
    assert t["body_pitch"] == pytest.approx(a["body_pitch"], rel=1e-3)


def test_distortion_click_and_spectrum():
    clean = describe(tone(freq=60.0, tau=0.2))
    dirty = describe(np.tanh(6.0 * tone(freq=60.0, tau=0.2)))
    assert clean["harmonic_db"] < -50.0
    assert dirty["harmonic_db"] > -20.0
    assert dirty["crest_db"] < clean["crest_db"]
    # a 1 ms noise burst on the attack raises the click measure
    rng = np.random.default_rng(0)
    x = tone(freq=60.0, tau=0.2, start=0.01)
    burst = np.zeros_like(x)
    burst[441 : 441 + 44] = 0.5 * rng.standard_normal(44)
    clicky = describe(x + burst)
    assert clicky["click_db"] > clean["click_db"] + 15.0
    assert clicky["centroid"] > clean["centroid"]
    # sub ratio: a 40 Hz body is mostly sub, a 120 Hz one is not
    assert describe(tone(freq=40.0))["sub_ratio"] > 0.9
    assert describe(tone(freq=120.0))["sub_ratio"] < 0.1


def test_silence_and_clipping_flags():
    quiet = describe(1e-4 * tone())
    assert quiet["silent"] == 1.0
    ok = describe(tone())
    assert ok["silent"] == 0.0 and ok["clipped"] == 0.0
    clipped = describe(tone(freq=60.0, tau=0.3, drive=4.0))
    assert clipped["clipped"] == 1.0 and clipped["clip_fraction"] > 0.01
    full_scale = describe(tone() / 0.9)  # peak exactly 1.0
    assert full_scale["clipped"] == 1.0
    # 16-bit quantisation of a clean low sine is not clipping
    pcm = np.round(tone(freq=30.0, tau=0.5) * 32767) / 32767
    assert describe(pcm)["clipped"] == 0.0


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        describe_batch(np.zeros((2, 3, 4)))


@pytest.mark.parametrize(
    ("start_hz", "end_hz", "glide_tau"),
    [(160.0, 50.0, 0.020), (220.0, 55.0, 0.030), (120.0, 45.0, 0.045), (300.0, 60.0, 0.012)],
)
def test_pitch_envelope_follows_a_known_exponential_sweep(start_hz, end_hz, glide_tau):
    """f(t) = end + (start − end)·exp(−t/τ): the probes read f at 10/25/50/100 ms and the sweep
    ends when f is within 10 % of the body, at t = τ·ln((start − end) / (0.1·body))."""
    d = describe(
        tone(freq=end_hz, glide=start_hz - end_hz, glide_tau=glide_tau, tau=0.3, start=0.0)
    )
    for ms in (10, 25, 50, 100):
        expected = end_hz + (start_hz - end_hz) * math.exp(-ms / 1000 / glide_tau)
        assert d[f"f0_{ms}ms"] == pytest.approx(expected, rel=0.05), ms
    expected_sweep = glide_tau * math.log((start_hz - end_hz) / (0.1 * d["body_pitch"]))
    assert d["body_pitch"] == pytest.approx(end_hz, rel=0.02)
    assert d["sweep_time"] == pytest.approx(expected_sweep, rel=0.05)


def test_steady_tone_has_a_flat_pitch_envelope_and_no_sweep():
    d = describe(tone(freq=60.0, tau=0.3, start=0.0))
    for ms in (10, 25, 50, 100):
        assert d[f"f0_{ms}ms"] == pytest.approx(60.0, rel=0.02)
    assert d["sweep_time"] == 0.0


def test_one_fast_cycle_then_a_steady_tone_is_not_a_sweep():
    """What the VAE makes of a sweep: one fast first cycle, then the resting pitch. pitch_glide
    reads it as a large glide; the envelope probes and the sweep time do not."""
    d = describe(tone(freq=60.0, glide=240.0, glide_tau=0.002, tau=0.3, start=0.0))
    assert d["pitch_glide"] > 3.0
    assert d["f0_25ms"] == pytest.approx(60.0, rel=0.03)
    assert d["sweep_time"] < 0.020  # a real sweep takes 30–100 ms


def test_swell_db_tells_a_body_that_swells_from_one_that_decays():
    t = np.maximum(T - 0.1, 0.0)
    decaying = tone(freq=55.0, tau=0.15, glide=100.0)
    body = np.sin(2 * np.pi * 55.0 * t) * (T >= 0.1)
    swelling = body * np.minimum(0.3 + t / 0.1, 1.5) * np.exp(-t / 0.2)  # rises for 120 ms
    d = describe_batch(np.stack([decaying, 0.9 * swelling / np.abs(swelling).max()]))
    assert d["swell_db"][0] < -1.0  # the hit leads its body
    assert d["swell_db"][1] > 1.0


def test_hit_harmonic_db_rises_with_drive_and_ignores_the_click():
    clean = tone(freq=55.0, tau=0.2, glide=100.0)
    driven = np.tanh(6.0 * clean) / np.tanh(6.0)
    clicked = clean.copy()
    start = int(0.1 * SAMPLE_RATE)
    clicked[start : start + 100] += 0.3 * np.random.default_rng(0).standard_normal(100)
    d = describe_batch(np.stack([clean, driven, clicked]))
    assert d["hit_harmonic_db"][1] > d["hit_harmonic_db"][0] + 20.0
    assert d["click_db"][2] > d["click_db"][0] + 20.0  # the click lies above 1 kHz ...
    assert abs(d["hit_harmonic_db"][2] - d["hit_harmonic_db"][0]) < 6.0  # ... not in the grit


def test_mel_swell_db_reads_the_swell_before_the_vocoder():
    from kickgen.audio import log_mel
    from kickgen.descriptors import mel_swell_db

    t = np.maximum(T - 0.1, 0.0)
    decaying = tone(freq=55.0, tau=0.15, glide=100.0)
    body = np.sin(2 * np.pi * 55.0 * t) * (T >= 0.1)
    swelling = body * np.minimum(0.3 + t / 0.1, 1.5) * np.exp(-t / 0.2)
    waves = torch.from_numpy(np.stack([decaying, 0.9 * swelling / np.abs(swelling).max()]))
    swell = mel_swell_db(log_mel(waves.float()))
    assert swell.shape == (2,)
    assert swell[0] < 0.0 < 1.0 < swell[1]
