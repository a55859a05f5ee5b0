"""``kickgen bench`` on a tiny setting: the modes run, the report records figures and command."""

from __future__ import annotations

import time

import pytest
import torch

from kickgen.cli import main
from kickgen.evaluation import bench


def test_sequential_guidance_equals_the_batched_pass():
    class Toy(torch.nn.Module):
        prediction_type = "epsilon"

        def __init__(self):
            super().__init__()
            self.calls = []

        def forward(self, x, t, c):
            self.calls.append(x.shape[0])
            return 2 * x + c + t[:, None]

    unet = Toy()
    wrapped = bench.SequentialGuidance(unet)
    x, c, t = torch.randn(4, 3), torch.randn(4, 3), torch.arange(4.0)
    assert torch.equal(wrapped(x, t, c), 2 * x + c + t[:, None])
    assert unet.calls == [2, 2] and wrapped.prediction_type == "epsilon"


@pytest.mark.slow
def test_griffin_lim_comparison_favours_kickgens_recipe():
    result = bench.bench_griffin_lim()
    ours, ref = result["kickgen (NNLS + fast GL, 32 it.)"], result["reference (pinv + GL, 64 it.)"]
    # measured: log-mel L1 0.103 vs 0.135, noisy 0.43 vs 0.67
    assert ours["log_mel_l1"] < ref["log_mel_l1"]
    assert ours["noisy_log_mel_l1"] < ref["noisy_log_mel_l1"]
    assert ours["spectral_convergence"] < ref["spectral_convergence"]


@pytest.mark.slow
def test_bench_command_writes_a_report(tmp_path, capsys):
    out = tmp_path / "BENCH.md"
    rc = main(["bench", "--batch", "2,3", "--steps", "1", "--fast-steps", "2", "--rounds", "1", "--reference-kicks", "1",
               "--cold-runs", "0", "--agreement", "2", "--no-griffin-lim", "--output", str(out)])  # fmt: skip
    assert rc == 0
    text = out.read_text()
    assert ("kickgen bench --batch 2,3 --steps 1 --fast-sampler dpm --fast-steps 2 --rounds 1 --reference-kicks 1 "
            "--cold-runs 0 --agreement 2 --threads 1 --no-griffin-lim") in text  # fmt: skip
    for row in ("| kickgen DDIM 1, batch 2, warm |", "| kickgen DDIM 1, batch 3, warm |", "| kickgen DDIM 1, single, warm |",
                "| kickgen DPM-Solver++ 2, batch 3, warm |", "| reference mode, DDIM 1, kickgen's model sizes |",
                "| DPM-Solver++ 2, single |", "| DPM-Solver++ 15 |", "Single-kick warm latency"):  # fmt: skip
        assert row in text, row
    assert "U-Net 2.88" in text  # the shipped-size U-Net (DiffusionConfig defaults)
    assert "reference: " in capsys.readouterr().err


def test_peak_memory_sees_an_allocation():
    with bench.PeakMemory() as mem:
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        time.sleep(0.02)
        del block
    assert mem.peak_mb - mem.start_mb > 48


@pytest.mark.slow
def test_stage_split_and_solver_agreement(pipeline):
    t = bench.stage_seconds(pipeline, "808", 2, "ddim", 2, 3.0)
    assert list(t) == ["text", "sampler", "vae", "vocoder"] and all(v > 0 for v in t.values())
    agree = bench.solver_agreement(
        pipeline, "808", 2, [("ddim", 4), ("dpm", 2)], 3.0, reference=("ddim", 4)
    )
    assert agree["DDIM 4"] == 0.0 and agree["DPM-Solver++ 2"] >= 0.0  # a setting agrees with itself


@pytest.mark.slow
def test_cold_cli_writes_a_wav(checkpoint_dir, tmp_path):
    from kickgen.checkpoints import DIFFUSION_FILENAME, VAE_FILENAME, VOCODER_FILENAME

    paths = {"diffusion": checkpoint_dir / DIFFUSION_FILENAME, "vae": checkpoint_dir / VAE_FILENAME,
             "vocoder": checkpoint_dir / VOCODER_FILENAME}  # fmt: skip
    runs = bench.cold_cli(paths, tmp_path, "808", "dpm", 2, runs=1, threads=1)
    assert len(runs) == 1 and runs[0]["seconds"] > 0 and runs[0]["peak_mb"] > 50
    assert (tmp_path / "cold_dpm_2_0.wav").is_file()


def test_bench_rejects_bad_values(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--batch", "0"])
    assert "batch sizes are at least 1" in capsys.readouterr().err
    assert main(["bench", "--rounds", "0"]) == 2
    assert "--rounds 0: use at least 1" in capsys.readouterr().err
