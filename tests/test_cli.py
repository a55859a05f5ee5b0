"""``kickgen generate`` / ``kickgen vocab`` and the guide's ``inference/generate.py`` CLI."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from kickgen.audio import NUM_SAMPLES, SAMPLE_RATE
from kickgen.checkpoints import DEFAULT_TEST_VOCAB
from kickgen.cli import main
from kickgen.output import kick_file_name, variant_tag


def _ckpt_args(d) -> list[str]:
    return [
        "--diffusion-ckpt", str(d / "diffusion_step_100000.pt"),
        "--vae-ckpt", str(d / "vae_epoch_100.pt"),
        "--vocoder-ckpt", str(d / "vocoder_epoch_50.pt"),
    ]  # fmt: skip


def test_generate_several_kicks_into_a_directory(checkpoint_dir, tmp_path, capsys):
    out_dir = tmp_path / "kicks"
    rc = main(["generate", *_ckpt_args(checkpoint_dir), "--prompt", "punchy 808", "-n", "3",
               "--steps", "2", "--seed", "9", "--output", str(out_dir), "--format", "pcm16"])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0
    paths = [line for line in captured.out.splitlines() if line]
    assert len(paths) == 3 and len(set(paths)) == 3
    for p in paths:
        info = sf.info(p)
        assert info.samplerate == SAMPLE_RATE and info.channels == 1 and info.subtype == "PCM_16"
        assert info.frames == NUM_SAMPLES
        assert os.path.basename(p).startswith("kick_punchy_808_")
    assert "generating 3 kick(s)" in captured.err  # the progress bar


def test_generate_numbered_files_pcm24_and_same_seed_same_audio(checkpoint_dir, tmp_path, capsys):
    target = tmp_path / "my_kick.wav"
    assert main(["generate", *_ckpt_args(checkpoint_dir), "-n", "2", "--steps", "2", "--seed", "3",
                 "--output", str(target), "--format", "pcm24", "-q"]) == 0  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_kick_0.wav", "my_kick_1.wav"]
    assert sf.info(tmp_path / "my_kick_0.wav").subtype == "PCM_24"
    single = tmp_path / "one.wav"
    assert main(["generate", *_ckpt_args(checkpoint_dir), "--steps", "2", "--seed", "4",
                 "--output", str(single), "--format", "pcm24", "-q"]) == 0  # fmt: skip
    # seed 4 alone is kick 1 of the seed-3 run, up to batched rounding that the vocoder's mel
    # refinement carries to ~1e-4 on these random weights
    a, _ = sf.read(tmp_path / "my_kick_1.wav")
    b, _ = sf.read(single)
    assert np.allclose(a, b, atol=3e-3)
    capsys.readouterr()


def test_unknown_words_are_warned_about(checkpoint_dir, tmp_path, capsys):
    rc = main(["generate", *_ckpt_args(checkpoint_dir), "--prompt", "punchi 808 zorb", "--steps", "1",
               "--seed", "0", "--output", str(tmp_path / "k.wav"), "-q"])  # fmt: skip
    assert rc == 0
    err = capsys.readouterr().err
    # a near-miss is read as its keyword and said so; a word with no close keyword is ignored
    assert "warning" in err and "'punchi' as punchy" in err and "ignored: 'zorb'" in err


def test_auto_names_sort_by_seed_and_hold_only_known_words(checkpoint_dir, tmp_path, capsys):
    # "808s" is read as 808 (a plural), "zorb" is ignored and stays out of the names, "boomy" is
    # a producer word for deep long; seeds are zero-padded so a listing is in seed order
    rc = main(["generate", *_ckpt_args(checkpoint_dir), "--prompt", "zorb 808s boomy", "-n", "3",
               "--steps", "1", "--seed", "8", "--output", str(tmp_path), "-q"])  # fmt: skip
    assert rc == 0
    out, err = capsys.readouterr()
    names = [os.path.basename(p) for p in out.split()]
    assert names == [f"kick_808_deep_long_s{s:010d}_st1.wav" for s in (8, 9, 10)]
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # 10 after 9
    assert "'808s' as 808" in err and "'zorb'" in err and "boomy" not in err
    # other settings get a tag, so they never overwrite the defaults' files
    rc = main(["generate", *_ckpt_args(checkpoint_dir), "--prompt", "808", "--steps", "2",
               "--cfg-scale", "5", "--seed", "8", "--output", str(tmp_path), "-q"])  # fmt: skip
    assert rc == 0 and capsys.readouterr().out.strip().endswith("kick_808_s0000000008_g5_st2.wav")
    # the default settings (guidance 3, 50 DDIM steps) add nothing to the name
    assert variant_tag() == "" and kick_file_name(["808"], 42) == "kick_808_s0000000042.wav"


def test_producer_words_read_as_the_keywords_they_name():
    from kickgen.keywords import PRODUCER_WORDS
    from kickgen.prompts import analyze_prompt

    vocab = sorted({k for keywords in PRODUCER_WORDS.values() for k in keywords}) + ["808"]
    assert set(PRODUCER_WORDS) >= {
        "boomy",
        "tight",
        "dark",
        "fat",
        "snappy",
        "thumpy",
        "subby",
        "crisp",
    }
    for word, keywords in PRODUCER_WORDS.items():
        info = analyze_prompt(f"{word} 808", vocab)
        assert info.matched == [*keywords, "808"] and not info.unknown and not info.warning_text()
    info = analyze_prompt("dark", ["dark", "soft"])  # a model that learned the word keeps it
    assert info.matched == ["dark"] and not info.read_as
    info = analyze_prompt("808s 909", ["808", "909"])
    assert info.matched == ["808", "909"] and info.guessed == {"808s": ["808"]}


def test_vocab_lists_the_checkpoint_vocabulary(checkpoint_dir, capsys):
    assert (
        main(["vocab", "--diffusion-ckpt", str(checkpoint_dir / "diffusion_step_100000.pt")]) == 0
    )
    assert capsys.readouterr().out.split() == DEFAULT_TEST_VOCAB


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--steps", "0"], "--steps 0: use 1 to 200"),
        (["-n", "0"], "-n/--num 0: ask for at least 1 kick"),
        (["--cfg-scale", "-1"], "--cfg-scale -1.0: use 0 to 20"),
        (["--seed", "-2"], "--seed -2"),
        (["--output", "/proc/kickgen_no_write/x.wav"], "cannot write into /proc/kickgen_no_write"),
        (["--output", "notes.txt"], "give a .wav file or a directory"),
        (["--device", "tpu9"], "unknown device 'tpu9'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    checkpoint_dir, tmp_path, capsys, monkeypatch, extra, message
):
    monkeypatch.chdir(tmp_path)
    rc = main(["generate", *_ckpt_args(checkpoint_dir), *extra])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # no generations/ folder, no partial files


def test_missing_and_unreadable_checkpoints(checkpoint_dir, tmp_path, capsys):
    args = _ckpt_args(checkpoint_dir)
    missing_voc = [
        *args[:4],
        "--vocoder-ckpt",
        str(tmp_path / "hifigan.pt"),
        "--output",
        str(tmp_path / "k.wav"),
    ]
    assert main(["generate", *missing_voc]) == 2
    assert "vocoder checkpoint" in capsys.readouterr().err and not (tmp_path / "k.wav").exists()
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    bad = ["--diffusion-ckpt", str(corrupt), *args[2:], "--output", str(tmp_path / "k.wav")]
    assert main(["generate", *bad]) == 2
    err = capsys.readouterr().err
    assert "corrupt.pt" in err and err.count("\n") == 1 and not (tmp_path / "k.wav").exists()
    assert main(["vocab", "--diffusion-ckpt", str(tmp_path / "absent.pt")]) == 2
    assert "absent.pt not found" in capsys.readouterr().err


def test_no_vocoder_skips_the_vocoder_file(checkpoint_dir, tmp_path, capsys):
    args = [
        *_ckpt_args(checkpoint_dir)[:4],
        "--vocoder-ckpt",
        str(tmp_path / "absent.pt"),
        "--no-vocoder",
    ]
    assert (
        main(
            [
                "generate",
                *args,
                "--steps",
                "1",
                "--seed",
                "0",
                "--output",
                str(tmp_path / "gl.wav"),
                "-q",
            ]
        )
        == 0
    )
    data, sr = sf.read(tmp_path / "gl.wav", dtype="float32")
    assert (
        sr == SAMPLE_RATE and data.shape == (NUM_SAMPLES,) and abs(np.abs(data).max() - 0.95) < 1e-6
    )
    capsys.readouterr()


@pytest.mark.slow
def test_console_entry_points_run_as_subprocesses(repo_root, guide_workdir):
    # `python -m kickgen` from the repository root, and the guide's script with the default paths
    # (checkpoints/…, including the guide's vocoder.pt alias) from a directory that holds them
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    out = guide_workdir / "a.wav"
    ck = guide_workdir / "checkpoints"
    r = subprocess.run(
        [sys.executable, "-m", "kickgen", "generate", "--diffusion-ckpt", str(ck / "diffusion_step_100000.pt"),
         "--vae-ckpt", str(ck / "vae_epoch_100.pt"), "--vocoder-ckpt", str(ck / "vocoder.pt"),
         "--steps", "1", "--seed", "1", "--output", str(out), "-q"],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out) and out.exists()
    r = subprocess.run(
        [sys.executable, str(repo_root / "inference" / "generate.py"), "--steps", "1", "--seed", "1", "--prompt", "808"],
        cwd=guide_workdir, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    written = guide_workdir / r.stdout.strip()
    assert written.parent.name == "generations" and written.name.startswith("kick_808_")
    r = subprocess.run(
        [sys.executable, str(repo_root / "inference" / "generate.py"), "--steps", "0"],
        cwd=guide_workdir, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and r.stderr.strip().endswith("use 1 to 200 (50 is the default)")
