"""``kickgen bench`` on a tiny setting: the modes run, the report records figures and command."""

from __future__ import annotations

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
    rc = main(["bench", "--batch", "2", "--steps", "1", "--rounds", "1", "--reference-kicks", "1",
               "--no-griffin-lim", "--output", str(out)])  # fmt: skip
    assert rc == 0
    text = out.read_text()
    assert "kickgen bench --batch 2 --steps 1 --rounds 1 --reference-kicks 1 --threads 1 --no-griffin-lim" in text
    assert "| kickgen, batch 2, warm |" in text and "reference mode" in text
    assert "U-Net 2.88" in text  # the shipped-size U-Net (DiffusionConfig defaults)
    assert "reference: " in capsys.readouterr().err


def test_bench_rejects_bad_values(capsys):
    assert main(["bench", "--batch", "0"]) == 2
    assert "--batch 0: use at least 1" in capsys.readouterr().err
