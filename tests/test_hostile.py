"""Hostile inputs and failure paths (issue 17): crafted WAVs, links, checkpoints, states,
recipes, prompt files, request bodies and writes made to fail. Each test names its defect."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kickgen.audio import SAMPLE_RATE as SR
from kickgen.audio import AudioError, load_audio, read_audio
from kickgen.cli import main


def kick_wave(seconds: float = 0.5, freq: float = 55.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.8 * np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.08)).astype(np.float32)


def write_sr1_kick(path: Path) -> Path:
    """The issue's 40 KB WAV whose header says 1 Hz (882 M samples once resampled)."""
    n = np.arange(20000)
    sf.write(str(path), (np.sin(n / 3) * np.exp(-n / 2000)).astype("float32"), 1, subtype="PCM_16")
    return path


# --------------------------------------------------------------------------- 1: memory bomb


def test_1_one_hertz_wav_is_refused_by_every_loader_without_allocating(tmp_path):
    from kickgen.data.collect import load_source
    from kickgen.producer.engine import ProducerError, load_init_audio
    from kickgen.producer.variations import vary_audio_bytes, vary_waveform

    bomb = write_sr1_kick(tmp_path / "kick_sr1.wav")
    tracemalloc.start()
    try:
        for load in (load_audio, lambda p: load_audio(p, raw=True), read_audio, load_source):
            with pytest.raises(AudioError, match="sample rate 1 Hz"):
                load(bomb)
        with pytest.raises(ProducerError, match="sample rate 1 Hz"):
            load_init_audio(bomb)
        with pytest.raises(ProducerError, match="sample rate 1 Hz"):
            vary_audio_bytes(None, bomb.read_bytes())
        with pytest.raises(ProducerError, match="sample rate 1 Hz"):
            vary_waveform(None, np.ones(20000, np.float32), 1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20  # bytes: nothing near the 3.3 GiB the resampler asked for


def test_1_overlong_and_many_channel_files_are_refused(tmp_path):
    long = tmp_path / "kick_long.wav"
    sf.write(str(long), np.zeros((8000 * 61, 1), np.float32), 8000, subtype="PCM_16")
    with pytest.raises(AudioError, match="61.0 s long"):
        read_audio(long)
    with pytest.raises(AudioError, match="sample rate 1000000 Hz"):
        from kickgen.audio import check_audio_header

        check_audio_header("x.wav", 1_000_000, 10, 1)


def test_1_corpus_tools_skip_and_report_the_bomb(tmp_path, capsys):
    lib = tmp_path / "lib"
    lib.mkdir()
    write_sr1_kick(lib / "kick_sr1.wav")
    sf.write(str(lib / "kick_good.wav"), kick_wave(), SR)
    assert main(["data", "collect", str(lib), "--out", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert "collect: 1 kicks" in out and "kick_sr1.wav: sample rate 1 Hz" in out


# --------------------------------------------------------------------------- 8, 16: corpus files


def test_8_broken_and_looping_links_are_skipped_not_fatal(tmp_path, capsys):
    from kickgen.data.collect import collect_library

    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(str(lib / "kick_good.wav"), kick_wave(), SR)
    os.symlink(lib / "missing.wav", lib / "kick_dangling.wav")
    os.symlink(lib / "kick_self.wav", lib / "kick_self.wav")  # ELOOP
    clips, skipped = collect_library([lib])
    assert [Path(c.file).name for c in clips] == ["kick_good.wav"]
    reasons = {Path(p).name: r for p, r in skipped}
    assert "broken link" in reasons["kick_dangling.wav"] and "broken link" in reasons["kick_self.wav"]

    out = tmp_path / "corpus"
    bad = tmp_path / "bad"
    bad.mkdir()
    os.symlink(bad / "missing.wav", bad / "kick_dangling.wav")
    from kickgen.data.build import BuildConfig, BuildError, build_corpus

    with pytest.raises(BuildError, match="no sources"):
        build_corpus(BuildConfig(out=out, library=(bad,), synth=0), quiet=True)
    assert not out.exists()  # no empty output folder left behind


def test_16_duration_floor_and_non_utf8_names(tmp_path):
    from kickgen.data.collect import collect_library

    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(str(lib / "kick_click.wav"), kick_wave(0.010), SR, subtype="FLOAT")  # 10 ms, ~2 KB
    with open(os.fsencode(lib) + b"/kick_caf\xe9.wav", "wb") as fh:  # Latin-1 name, not UTF-8
        sf.write(fh, kick_wave(), SR, format="WAV", subtype="PCM_16")
    clips, skipped = collect_library([lib], min_bytes=0)
    assert [Path(c.file).name for c in clips] == [os.fsdecode(b"kick_caf\xe9.wav")]
    assert any("10 ms long" in r for p, r in skipped if p.endswith("kick_click.wav"))
