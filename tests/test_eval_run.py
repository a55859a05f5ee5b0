"""`kickgen eval` end to end on random-weight checkpoints and a tiny corpus written per the contract."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kickgen.audio import log_mel
from kickgen.evaluation import benchmark, generation, metrics, quality, reconstruction

KEYWORDS = [
    ["808", "deep", "long"],
    ["909", "short", "punchy"],
    ["distorted", "kick"],
    ["acoustic"],
]


def write_tiny_corpus(directory: Path, n_train: int = 12, n_val: int = 6) -> Path:
    """cache/{train,val}.pt, metadata.csv and vocab.json as `kickgen data build` writes them."""
    (directory / "cache").mkdir(parents=True)
    rows = []
    for split, n, seed in (("train", n_train, 1), ("val", n_val, 2)):
        waves = torch.from_numpy(metrics.sine_kicks(n, seed=seed) * 0.94)  # (n, 88200) near -1 dBFS
        ids = [f"{split}{i:03d}" for i in range(n)]
        kws = [KEYWORDS[i % len(KEYWORDS)] for i in range(n)]
        groups = [f"g{split}{i // 2}" for i in range(n)]
        torch.save({"ids": ids, "waves": waves.half(), "log_mels": log_mel(waves).half(), "keywords": kws,
                    "groups": groups}, directory / "cache" / f"{split}.pt")  # fmt: skip
        for i in range(n):
            kind = "synth" if split == "train" and i % 4 == 3 else "real"
            rows.append({"id": ids[i], "file": f"clips/{ids[i]}.wav", "source": "test", "package": "p", "kit": "k",
                         "licence": "CC0", "keywords": " ".join(kws[i]), "split": split, "group": groups[i],
                         "kind": kind})  # fmt: skip
    with (directory / "metadata.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    vocab = sorted({k for kws in KEYWORDS for k in kws})
    (directory / "vocab.json").write_text(json.dumps({"vocab": vocab, "min_count": 1}))
    return directory


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_corpus(tmp_path_factory.mktemp("corpus"))


TINY = quality.EvalConfig(n=3, n_prompt=2, n_keyword=2, keywords=2, n_recon=2, steps=2, guidance=(1.0, 3.0), threads=1,
                          examples=2, batch_size=8)  # fmt: skip


@pytest.mark.slow
def test_eval_end_to_end(checkpoint_dir: Path, tiny_corpus: Path, tmp_path: Path):
    out = tmp_path / "eval"
    results = quality.run_eval(
        checkpoint_dir, tiny_corpus, out, TINY, command="kickgen eval (test)"
    )
    on_disk = json.loads((out / quality.RESULTS_NAME).read_text())
    assert on_disk == json.loads(json.dumps(results))

    rec = results["reconstruction"]
    assert rec["n"] == 2 and len(rec["vae_log_mel_db"]["per_clip"]) == 2
    fitted, encoded = rec["vae_fitted_log_mel_db"]["per_clip"], rec["vae_log_mel_db"]["per_clip"]
    assert all(f < e for f, e in zip(fitted, encoded, strict=True))  # fitting only brings it nearer
    for src in ("true_mel", "vae_mel"):
        for method in reconstruction.RECON_METHODS:
            for name in ("log_mel_db", "mrstft_db"):
                assert np.isfinite(rec[f"{src}/{method}"][name]["mean"])
    # Griffin-Lim from true mels rebuilds a sine kick closely (a random-weight HiFi-GAN too, once
    # its output is refined onto the mel: no order between them is asserted)
    assert rec["true_mel/griffin_lim"]["log_mel_db"]["mean"] < 5.0
    assert abs(rec["recording_frame_comb"]["mean"]) < 0.1  # sine kicks repeat nothing per frame

    var = rec["variation_strength_0"]  # the variation path with nothing denoised
    assert var["n"] == 2 and all(np.isfinite(var["per_clip"])) and var["median"] > 0.0

    gen = results["generation"]
    fd = gen["frechet"]
    assert fd["real"]["n"] == {"reference": 6, "train": 3, "generated": 3, "sine": 3}
    assert fd["all"]["n"] == {"reference": 6, "train": 3, "generated": 3, "sine": 3}
    assert (
        fd["real"]["unconditional"] > fd["real"]["floor_train"]
    )  # random weights are far from real kicks
    assert gen["sanity"]["validation_real"]["finite"] == 1.0
    for rates in gen["sanity"].values():  # a kick loudest > 1 dB after its first 30 ms fails attack
        assert rates["late_3db"] <= rates["late_1db"] <= 1.0 - rates["attack"]
        low, high = rates["pass_interval"]  # where another draw of as many kicks could land
        assert 0.0 <= low <= rates["pass"] <= high <= 1.0 and high - low > 0.05
    assert [row["keyword"] for row in gen["keywords"]] == [
        "808",
        "909",
    ]  # most frequent, ties by name
    assert 0.0 <= gen["memorization"]["generated"]["share"] <= 1.0

    adh = results["adherence"]
    assert len(adh) == len(generation.ADHERENCE) * 2
    assert {row["guidance"] for row in adh} == {1.0, 3.0}
    measured = [row for row in adh if row["prompt"] not in ("high", "clicky", "soft")]
    assert all(np.isfinite(row["effect_size"]) for row in measured)
    # the tiny corpus's vocabulary lacks these words: their rows say so instead of a figure
    assert all(
        row["note"].startswith("not in the vocabulary") for row in adh if row not in measured
    )
    # 1 unconditional set + 6 prompts × 2 scales × 2 kicks (keyword sets reuse the same seeds),
    # then the styles the adherence prompts lack, at guidance 3
    styles = results["styles"]
    words = [row["keyword"] for row in styles]
    assert words[:2] == ["808", "909"]  # STYLE_KEYWORDS in the vocabulary first
    adherence_words = {w for row in adh for w in (row["prompt"], row["baseline"])}
    assert results["kicks_generated"] == 3 + 6 * 2 * 2 + 2 * len(set(words) - adherence_words)
    for row in styles:
        assert row["n"] == 2 and 0.0 <= row["swell_generated"] <= 1.0
        assert row["against"] == (
            "style" if row["real_clips"] >= generation.STYLE_MIN_CLIPS else "all real"
        )
        assert (row["punch_real_style"] is None) == (row["real_clips"] == 0)
        assert np.isfinite(row["frechet"])

    # the kick benchmark: per-descriptor quartiles for every set, each set against its reference
    chain = rec["benchmark"]
    assert chain["n"] == 2 and set(chain["realism"]) == {"reference", "vocoder", "round_trip"}
    assert set(chain["table"]["f0_25ms"]) == {"recordings", "vocoder", "round_trip"}
    bench = gen["benchmark"]
    assert set(bench["table"]) == {name for name, _ in benchmark.TABLE_DESCRIPTORS}
    q25, median, q75 = bench["table"]["f0_25ms"]["validation_real"]
    assert q25 <= median <= q75 and median > 50.0  # the sine kicks still sweep at 25 ms
    assert bench["table"]["sweep_ratio"]["validation_real"][1] > 1.1
    assert "validation_real_drums" in bench["table"]["f0_25ms"]  # each drum once, beside every clip
    low, high = bench["median_interval"]["f0_25ms"]  # the recordings' median, drums drawn again
    assert low <= median <= high
    assert bench["realism"]["generated"]["frechet"] >= 0.0

    report = (out / quality.REPORT_NAME).read_text()
    assert (
        "## Reconstruction of validation recordings" in report
        and "| deep | (unconditional) |" in report
    )
    assert "## The kick benchmark" in report and "| f0_25ms (Hz) |" in report
    assert "real validation, each drum once" in report and "% over drums |" in report
    assert "| pass (90 % interval) |" in report and "| one hit |" in report
    assert "## Styles against real recordings" in report and "| 808 |" in report
    assert "Variation at strength 0 (2 recordings" in report
    for png in ("spectrograms.png", "reconstruction.png", "histograms.png", "pitch_tracks.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert len(list((out / "examples").glob("*.wav"))) >= 4


def test_eval_sets_share_seeds(pipeline):
    """Kick i of a set uses seed + i: growing a set keeps its first kicks."""
    cfg = quality.EvalConfig(steps=2, seed=7)
    sets = generation.KickSets(pipeline, cfg)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the eval runs: far faster on a loaded 2-core machine
    try:
        first, _ = sets.get("808", 3.0, 1)
        grown, desc = sets.get("808", 3.0, 2)
        direct = pipeline("808", n=2, seed=7, steps=2, cfg_scale=3.0).waveforms
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(grown[:1], first) and len(desc["body_pitch"]) == 2
    # batched rounding, carried to ~1e-4 by the vocoder's mel refinement on random weights
    assert torch.allclose(grown, direct, atol=3e-3)
    assert sets.generated == 2


def test_eval_cli_errors(tmp_path: Path, repo_root: Path, checkpoint_dir: Path):
    def run_eval(checkpoints: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "kickgen", "eval", "--corpus", str(tmp_path / "nope"),
                               "--checkpoints", str(checkpoints)], cwd=repo_root, capture_output=True, text=True)  # fmt: skip

    proc = run_eval(checkpoint_dir)
    assert proc.returncode == 2
    assert "nope has no cache/train.pt" in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_eval(tmp_path)  # a named folder without the checkpoints: the file is named
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"{tmp_path / 'diffusion_step_100000.pt'} not found" in proc.stderr


def test_eval_kicks_scores_a_folder_offline(tiny_corpus: Path, tmp_path: Path, repo_root: Path):
    """`kickgen eval --kicks DIR`: any folder of kick files against the real validation
    recordings, no checkpoints; unreadable files are skipped and reported."""
    import soundfile as sf

    folder = tmp_path / "my kicks"
    (folder / "sub").mkdir(parents=True)
    for i, wave in enumerate(metrics.sine_kicks(6, seed=9)):
        delayed = np.concatenate([np.zeros(441 * (i + 1), np.float32), wave])  # leading silence
        sf.write(
            folder / ("sub" if i % 2 else ".") / f"kick_{i}.wav",
            delayed,
            48000 if i == 0 else 44100,
        )
    (folder / "broken.wav").write_bytes(b"RIFF not audio")
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, "-m", "kickgen", "eval", "--kicks", str(folder), "--corpus",
                           str(tiny_corpus), "--out", str(out), "--n", "6"], cwd=repo_root,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "6 kicks (1 skipped)" in proc.stdout
    results = json.loads((out / quality.RESULTS_NAME).read_text())
    assert len(results["files"]) == 6 and results["skipped"][0]["file"].endswith("broken.wav")
    kicks = results["benchmark"]["realism"]["kicks"]
    assert kicks["n"] == 6 and 0.0 <= kicks["classifier"]["auc"] <= 1.0
    assert np.isfinite(kicks["kernel"]["value"]) and kicks["kernel"]["spread"] >= 0.0
    # onsets are aligned as the corpus aligns them: 1 ms, whatever the leading silence
    assert results["benchmark"]["table"]["f0_25ms"]["kicks"][1] > 50.0
    assert results["sanity"]["kicks"]["onset"] == 1.0
    report = (out / quality.REPORT_NAME).read_text()
    assert "| f0_25ms (Hz) |" in report and "broken.wav" in report and "| late > 3 dB |" in report
    assert (out / "pitch_tracks.png").read_bytes()[:4] == b"\x89PNG"

    too_few = tmp_path / "two"
    too_few.mkdir()
    for i, wave in enumerate(metrics.sine_kicks(2, seed=1)):
        sf.write(too_few / f"k{i}.wav", wave, 44100)
    proc = subprocess.run([sys.executable, "-m", "kickgen", "eval", "--kicks", str(too_few), "--corpus",
                           str(tiny_corpus), "--out", str(tmp_path / "x")], cwd=repo_root,
                          capture_output=True, text=True)  # fmt: skip
    assert (
        proc.returncode == 2 and "2 readable kicks" in proc.stderr and proc.stderr.count("\n") == 1
    )


def test_eval_vae_measures_the_chain_alone(
    checkpoint_dir: Path, tiny_corpus: Path, tmp_path: Path, repo_root: Path
):
    """`kickgen eval --vae FILE`: a VAE candidate's chain (round trip → vocoder) with the
    benchmark's tables, without a diffusion model: a folded VAE of another latent size works."""
    from kickgen.checkpoints import save_vae
    from kickgen.models.autoencoder import KickVAE

    torch.manual_seed(0)
    candidate = KickVAE(latent_dim=16, time_fold=4)
    save_vae(tmp_path / "candidate.pt", candidate, epoch=0)
    out = tmp_path / "chain"
    proc = subprocess.run([sys.executable, "-m", "kickgen", "eval", "--vae", str(tmp_path / "candidate.pt"),
                           "--checkpoints", str(checkpoint_dir), "--corpus", str(tiny_corpus), "--out", str(out),
                           "--n-recon", "6"], cwd=repo_root, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "VAE round trip log-mel" in proc.stdout
    results = json.loads((out / quality.RESULTS_NAME).read_text())
    chain = results["reconstruction"]["benchmark"]
    assert chain["n"] == 6 and set(chain["realism"]) == {"reference", "vocoder", "round_trip"}
    assert results["vocoder"].endswith("vocoder_epoch_50.pt")
    report = (out / quality.REPORT_NAME).read_text()
    assert "## The chain on 6 real validation recordings" in report and "| f0_25ms (Hz) |" in report
    assert (out / "pitch_tracks.png").read_bytes()[:4] == b"\x89PNG"
