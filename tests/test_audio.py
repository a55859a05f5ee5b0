"""Golden tests of kickgen.audio, with expected values derived by hand from the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from kickgen import audio as A


def _htk_points() -> list[float]:
    """Band edges/centres in Hz, by hand: 130 points evenly spaced on 2595·log10(1 + f/700)."""
    mel_max = 2595.0 * math.log10(1.0 + 22050.0 / 700.0)
    return [700.0 * (10.0 ** ((mel_max * i / 129) / 2595.0) - 1.0) for i in range(130)]


def _hand_filter(k: int, band: int) -> float:
    """Triangle ``band`` at FFT bin ``k`` (bin k sits at k · 22050 / 1024 Hz), peak 1, no area norm."""
    f = _htk_points()
    freq = k * 22050.0 / 1024.0
    lo, mid, hi = f[band], f[band + 1], f[band + 2]
    return max(0.0, min((freq - lo) / (mid - lo), (hi - freq) / (hi - mid)))


def test_filterbank_matches_the_htk_formula_by_hand():
    fb = A.mel_filterbank()
    assert fb.shape == (1025, 128) and fb.dtype == torch.float32
    for k, band in [
        (1, 0),
        (2, 0),
        (47, 17),
        (48, 17),
        (100, 30),
        (512, 90),
        (1000, 127),
        (1024, 127),
    ]:
        assert fb[k, band].item() == pytest.approx(_hand_filter(k, band), abs=1e-6), (k, band)
    # every band has some weight, and none exceeds the triangle's peak of 1
    assert (fb.sum(dim=0) > 0).all() and fb.max() <= 1.0
    assert A.hz_to_mel(700.0) == pytest.approx(2595.0 * math.log10(2.0))
    assert A.mel_to_hz(A.hz_to_mel(1234.5)) == pytest.approx(1234.5)


def test_on_bin_sine_energy_lands_in_the_right_band_with_the_right_power():
    k0 = 47  # exactly on FFT bin 47: 47 · 44100 / 2048 ≈ 1012.06 Hz
    freq = k0 * A.SAMPLE_RATE / A.N_FFT
    t = torch.arange(A.NUM_SAMPLES, dtype=torch.float64) / A.SAMPLE_RATE
    wave = torch.sin(2 * math.pi * freq * t).float()
    mel = A.mel_spectrogram(wave)  # (128, 173)
    frame = mel[:, 86]  # a middle frame, far from the padded edges
    # periodic Hann of 2048 sums to 1024: |X[k0]| = 1024/2, the two neighbours get half of that
    power = {k0 - 1: 256.0**2, k0: 512.0**2, k0 + 1: 256.0**2}
    want = [sum(_hand_filter(k, band) * p for k, p in power.items()) for band in range(128)]
    for band in range(128):
        assert frame[band].item() == pytest.approx(want[band], rel=2e-3, abs=1.0), band
    assert int(frame.argmax()) == int(np.argmax(want))  # the band around 1012 Hz
    assert 900 < _htk_points()[int(frame.argmax()) + 1] < 1150  # its centre frequency


def test_silence_and_shapes():
    assert torch.all(A.log_mel(torch.zeros(1, A.NUM_SAMPLES)) == torch.tensor(math.log(1e-5)))
    assert A.LOG_MEL_MIN == pytest.approx(math.log(1e-5))
    assert A.log_mel(torch.zeros(1, A.NUM_SAMPLES)).shape == (1, 128, 173)
    assert A.log_mel(torch.zeros(A.NUM_SAMPLES)).shape == (128, 173)
    assert A.log_mel(torch.zeros(2, 3, A.NUM_SAMPLES)).shape == (2, 3, 128, 173)
    assert A.N_FRAMES == 1 + A.NUM_SAMPLES // A.HOP_LENGTH == 173


def test_preprocess_peak_fade_and_length():
    wave = np.full(30_000, 0.25, dtype=np.float32)  # 0.68 s of DC at 44.1 kHz
    out = A.preprocess(wave, A.SAMPLE_RATE)
    assert out.shape == (A.NUM_SAMPLES,) and out.dtype == np.float32
    peak = 10 ** (-1 / 20)  # -1 dBFS
    assert out[:100] == pytest.approx(np.full(100, peak), rel=1e-5)
    assert np.all(out[30_000:] == 0)  # zero padding (the fade of zeros stays zero)
    long = A.preprocess(np.ones(100_000, dtype=np.float32), A.SAMPLE_RATE)
    fade = int(0.2 * A.SAMPLE_RATE)
    assert long[-1] == 0.0 and long[-fade - 1] == pytest.approx(peak, rel=1e-5)
    assert long[-fade // 2] == pytest.approx(peak * 0.5, abs=2e-3)  # linear: half way, half gain
    assert np.all(A.preprocess(np.zeros(10, dtype=np.float32), A.SAMPLE_RATE) == 0)


def _dominant_hz(x: np.ndarray, sr: int = A.SAMPLE_RATE) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


@pytest.mark.parametrize(
    "fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_24"), ("OGG", "VORBIS"), ("AIFF", "PCM_16")]
)
def test_load_audio_reads_stereo_48k_files(tmp_path, fmt, subtype):
    sr = 48_000
    t = np.arange(int(0.5 * sr)) / sr
    left = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, left], axis=1).astype(np.float32)  # (frames, 2)
    path = tmp_path / f"kick.{fmt.lower()}"
    sf.write(str(path), stereo, sr, format=fmt, subtype=subtype)
    wave = A.load_audio(path)
    assert wave.shape == (A.NUM_SAMPLES,) and wave.dtype == torch.float32
    assert wave.abs().max().item() == pytest.approx(10 ** (-1 / 20), rel=1e-4)
    body = wave[:20_000].numpy()  # before the 0.5 s of audio ends
    assert _dominant_hz(body) == pytest.approx(440, abs=3)
    raw = A.load_audio(path, raw=True)
    assert abs(raw.shape[0] - int(0.5 * A.SAMPLE_RATE)) <= 1  # 0.5 s resampled to 44.1 kHz


def test_unreadable_audio_names_the_file(tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF....WAVEfmt nonsense")
    with pytest.raises(A.AudioError, match="broken.wav"):
        A.load_audio(bad)


def test_write_wav_is_float32_mono_and_leaves_no_temp_file(tmp_path):
    wave = torch.linspace(-0.95, 0.95, A.NUM_SAMPLES)
    path = A.write_wav(tmp_path / "k.wav", wave)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (
        44_100,
        1,
        "FLOAT",
        A.NUM_SAMPLES,
    )
    assert np.array_equal(sf.read(str(path), dtype="float32")[0], wave.numpy())
    assert [p.name for p in tmp_path.iterdir()] == ["k.wav"]
