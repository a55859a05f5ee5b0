"""A tiny corpus built end to end in a temp dir: a few kicks, a bad file, a few synthesized kicks."""

import csv
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from kickgen.audio import log_mel
from kickgen.data.build import BuildConfig, build_corpus
from kickgen.data.corpus import CorpusError, load_split, load_vocab
from kickgen.data.split import hold_out_real, split_groups
from kickgen.descriptors import MEASURED_KEYWORDS, measured_keywords

ROOT = Path(__file__).resolve().parents[1]
SR = 44100


def kick(freq, tau=0.12, delay=0.0, level=0.8):
    t = np.arange(int(0.6 * SR)) / SR
    x = np.sin(2 * np.pi * (freq * t + 2.0 * (1 - np.exp(-t / 0.01)))) * np.exp(-t / tau)
    return np.concatenate([np.zeros(int(delay * SR)), level * x]).astype(np.float32)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    lib = tmp_path_factory.mktemp("lib") / "samples"
    (lib / "808").mkdir(parents=True)
    sf.write(
        lib / "808" / "808_Kick_Soft.wav", kick(45, delay=0.05, level=0.3), SR, subtype="PCM_16"
    )
    sf.write(lib / "808" / "808_Kick_Hard.wav", kick(45, delay=0.12), SR, subtype="PCM_24")
    sf.write(lib / "BD_acoustic.flac", np.stack([kick(80, 0.06), kick(80, 0.06)], 1), 48000)
    (lib / "kick04.ogg").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(6000))
    return lib


def tiny_build(library: Path, out: Path) -> BuildConfig:
    """The tests' corpus: the tiny library, 10 synth kicks, fits of 30 steps, one worker."""
    return BuildConfig(out=out, library=(library,), synth=10, augment=3, val_fraction=0.25,
                       min_count=1, workers=1, fit_steps=30)  # fmt: skip


@pytest.fixture(scope="module")
def corpus(library, tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    report = build_corpus(tiny_build(library, out), quiet=True)
    return out, report


def rows_of(out):
    with open(out / "metadata.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_tiny_corpus_contents(corpus):
    out, report = corpus
    rows = rows_of(out)
    assert report["kinds"] == {"real": 3, "augmented": 9, "synth": 10}
    assert report["real_recordings"] == 3 and len(rows) == 22
    assert any(
        s["file"].endswith("kick04.ogg") and "cannot read audio" in s["reason"]
        for s in report["skipped"]
    )
    for r in rows:
        assert float(r["onset"]) <= 0.005, r["id"]  # every kick starts within 5 ms
        assert r["silent"] == "0" and r["clipped"] == "0"
        assert (out / r["file"]).is_file()
    # the 808 layers (delayed onsets, different levels) are one group, with their augmentations
    layers = [r for r in rows if "808" in r["name"]]
    assert len({r["group"] for r in layers}) == 1 and len({r["split"] for r in layers}) == 1
    assert len(layers) == 2 * (1 + 3)
    for r in rows:
        if r["kind"] == "augmented":
            origin = next(o for o in rows if o["id"] == r["origin"])
            assert origin["group"] == r["group"] and origin["split"] == r["split"]


def test_keywords_are_measured_and_in_vocab(corpus):
    out, _ = corpus
    vocab = load_vocab(out)
    assert json.loads((out / "vocab.json").read_text())["min_count"] == 1
    for r in rows_of(out):
        kws = r["keywords"].split()
        assert set(kws) <= set(vocab) and "kick" not in kws
        descriptors = {k: float(v) for k, v in r.items() if k in ("silent",) or k in DESCRIPTORS}
        expected = [k for k in measured_keywords(descriptors) if k in vocab]
        assert [k for k in kws if k in MEASURED_KEYWORDS] == expected, r["id"]
    acoustic = next(
        r for r in rows_of(out) if r["kind"] == "real" and "acoustic" in r["name"].lower()
    )
    assert "acoustic" in acoustic["keywords"].split()


DESCRIPTORS = {
    "body_pitch", "decay_40", "sub_ratio", "punch", "attack", "click_db", "harmonic_db", "crest_db",
}  # fmt: skip


def test_cache_matches_clips(corpus):
    out, report = corpus
    train = load_split(out, "train")
    val = load_split(out, "val")
    assert len(train) + len(val) == 22 and len(val) == report["splits"]["val"] > 0
    assert train.waves.dtype == torch.float16 and train.waves.shape == (len(train), 88200)
    assert train.log_mels.dtype == torch.float16 and train.log_mels.shape == (len(train), 128, 173)
    assert set(train.groups).isdisjoint(val.groups)
    i = 0
    wave, sr = sf.read(out / train.metadata[i]["file"], dtype="float32")
    assert sr == SR and sf.info(out / train.metadata[i]["file"]).subtype == "FLOAT"
    np.testing.assert_allclose(train.waves[i].float().numpy(), wave, atol=1e-3)
    mel = log_mel(torch.from_numpy(wave))
    assert torch.allclose(train.log_mels[i].float(), mel, atol=0.02)
    assert abs(float(np.abs(wave).max()) - 10 ** (-1 / 20)) < 1e-4  # -1 dBFS peak


def test_build_is_deterministic(corpus, library, tmp_path):
    out, _ = corpus
    build_corpus(tiny_build(library, tmp_path / "again"), quiet=True)
    assert (tmp_path / "again" / "metadata.csv").read_text() == (out / "metadata.csv").read_text()
    a, b = load_split(out, "train"), load_split(tmp_path / "again", "train")
    assert torch.equal(a.waves, b.waves) and torch.equal(a.log_mels, b.log_mels)


def test_split_groups_keeps_strata_and_fraction():
    groups = (
        {f"g{i}": "synth" for i in range(40)}
        | {f"r{i}": "real" for i in range(8)}
        | {"k": "kicker"}
    )
    split = split_groups(groups, 0.25, seed=0)
    assert sum(split[f"g{i}"] == "val" for i in range(40)) == 10
    assert sum(split[f"r{i}"] == "val" for i in range(8)) == 2
    assert split["k"] == "train"  # too few groups of that kind to hold one out
    assert split == split_groups(groups, 0.25, seed=0) != split_groups(groups, 0.25, seed=1)


def test_load_split_errors(tmp_path):
    with pytest.raises(CorpusError, match="cache not found"):
        load_split(tmp_path, "train")
    with pytest.raises(CorpusError, match="unknown split"):
        load_split(tmp_path, "test")


def run_cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "kickgen", *args], cwd=cwd, capture_output=True, text=True
    )


@pytest.mark.slow
def test_cli_synth_build_card(tmp_path, library):
    proc = run_cli("data", "synth", "3", "--out", str(tmp_path / "kicks"), "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "kicks").glob("*.wav"))) == 3 and "synth: 3 kicks" in proc.stdout
    proc = run_cli("data", "collect", str(library), "--out", str(tmp_path / "lib.csv"))
    assert (
        proc.returncode == 0 and "collect: 3 kicks" in proc.stdout and "kick04.ogg" in proc.stdout
    )
    proc = run_cli(
        "data", "build", "--sources", str(tmp_path / "kicks" / "synth.csv"), "--sources", str(tmp_path / "lib.csv"),
        "--synth", "2", "--augment", "1", "--min-count", "1", "--workers", "2", "--out", str(tmp_path / "c"),
        "--fit-steps", "20",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "corpus: 11 clips" in proc.stdout and "clipped 0" in proc.stdout
    proc = run_cli(
        "data",
        "card",
        str(tmp_path / "c"),
        "--out",
        str(tmp_path / "c" / "DATASET.md"),
        "--png",
        str(tmp_path / "c" / "ex.png"),
    )
    assert proc.returncode == 0, proc.stderr
    card = (tmp_path / "c" / "DATASET.md").read_text()
    assert "| synth |" in card and "Measured keywords" in card and "](ex.png)" in card
    assert 1_000 < (tmp_path / "c" / "ex.png").stat().st_size < 300_000
    assert "## Fits of the real training recordings" in card and "](ex_fits.png)" in card
    assert "## Real vs synthesized" in card and (tmp_path / "c" / "ex_fits.png").is_file()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    proc = run_cli("data", "build", "--synth", "1", "--out", str(tmp_path / "busy"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not empty" in proc.stderr
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_real_recordings_are_held_out_across_kits():
    """Validation gets >= 12 recordings from >= 4 kits, whole groups only, taking one group of
    each kit per round so that one multi-layer drum cannot fill it."""
    groups = {f"kit{k}/drum{d}": (f"kit{k}", 1 + (d % 3)) for k in range(6) for d in range(5)}
    held = hold_out_real(groups, 0.05, seed=0, min_recordings=12, min_kits=4)
    assert sum(groups[g][1] for g in held) >= 12
    assert len({groups[g][0] for g in held}) >= 4
    per_kit = Counter(groups[g][0] for g in held)
    assert max(per_kit.values()) - min(per_kit.values()) <= 1  # spread round-robin
    assert held == hold_out_real(groups, 0.05, seed=0, min_recordings=12, min_kits=4)
    assert held != hold_out_real(groups, 0.05, seed=1, min_recordings=12, min_kits=4)
    # a fraction above the minimum takes more groups; never more than half of them
    assert len(hold_out_real(groups, 0.3, seed=0, min_recordings=12, min_kits=4)) == 9
    assert len(hold_out_real(groups, 0.9, seed=0, min_recordings=12, min_kits=4)) == 15
    assert hold_out_real(groups, 0.0, seed=0, min_recordings=12, min_kits=4) == set()


def test_fits_cover_the_training_recordings_only_and_are_reused(corpus, library, tmp_path):
    out, report = corpus
    rows = rows_of(out)
    fits = json.loads((out / "fits.json").read_text())["fits"]
    train_real = {r["id"] for r in rows if r["kind"] == "real" and r["split"] == "train"}
    assert {e["id"] for e in fits} == train_real and report["fits"]["n"] == len(train_real) > 0
    drawn = [r for r in rows if r["kind"] == "synth" and r["kit"] == "fitted"]
    assert drawn and len(drawn) < 10  # the others come from the style families
    for r in drawn:  # augmentation: "fit=real-00002+real-00003@0.42 tries=1"
        assert set(r["augmentation"].split()[0][4:].split("@")[0].split("+")) <= train_real
    # a rebuild into the same folder reuses every fit (same key: same clip, model, settings)
    again = tmp_path / "again"
    shutil.copytree(out, again)
    (again / "fits.json").write_text(
        (out / "fits.json").read_text().replace('"seconds": ', '"seconds": 1000')
    )
    config = BuildConfig(
        out=again, library=(library,), synth=10, augment=3, val_fraction=0.25, min_count=1,
        workers=1, fit_steps=30,
    )  # fmt: skip
    build_corpus(config, quiet=True)
    assert '"seconds": 1000' in (again / "fits.json").read_text()  # not fitted again
    assert (again / "metadata.csv").read_text() == (out / "metadata.csv").read_text()
