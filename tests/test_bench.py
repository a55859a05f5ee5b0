"""``kickgen bench`` on a tiny setting: the modes run, the report records figures and command."""

from __future__ import annotations

import time

import pytest
import torch

from kickgen.cli import main
from kickgen.evaluation import bench_measures, bench_reference


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
    wrapped = bench_reference.SequentialGuidance(unet)
    x, c, t = torch.randn(4, 3), torch.randn(4, 3), torch.arange(4.0)
    assert torch.equal(wrapped(x, t, c), 2 * x + c + t[:, None])
    assert unet.calls == [2, 2] and wrapped.prediction_type == "epsilon"


@pytest.mark.slow
def test_griffin_lim_comparison_favours_kickgens_recipe():
    result = bench_measures.bench_griffin_lim()
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
            "--cold-runs 0 --agreement 2 --no-griffin-lim") in text  # fmt: skip
    for row in ("| kickgen DDIM 1, batch 2, warm |", "| kickgen DDIM 1, batch 3, warm |", "| kickgen DDIM 1, single, warm |",
                "| kickgen DPM-Solver++ 2, batch 3, warm |", "| rebuilt reference mode, DDIM 1, kickgen's model sizes |",
                "| DPM-Solver++ 2, single |", "| DPM-Solver++ 15 |", "Single-kick warm latency"):  # fmt: skip
        assert row in text, row
    assert "U-Net 2.90" in text  # the shipped-size U-Net (DiffusionConfig defaults)
    assert "reference: " in capsys.readouterr().err


@pytest.mark.slow
def test_bench_times_baseline_checkpoints_beside_the_main_ones(tmp_path, capsys):
    from kickgen.checkpoints import write_random_checkpoints

    main_dir, base_dir, out = tmp_path / "main", tmp_path / "before", tmp_path / "BENCH.md"
    write_random_checkpoints(main_dir, seed=0)
    write_random_checkpoints(base_dir, seed=1)
    rc = main(["bench", "--batch", "2", "--steps", "1", "--fast-steps", "2", "--rounds", "1", "--reference-kicks", "1",
               "--cold-runs", "0", "--agreement", "0", "--no-griffin-lim", "--checkpoints", str(main_dir),
               "--baseline", str(base_dir), "--output", str(out)])  # fmt: skip
    assert rc == 0
    text = out.read_text()
    assert f"--checkpoints {main_dir} --baseline {base_dir} --no-griffin-lim" in text
    for row in (f"| kickgen baseline ({base_dir}) DDIM 1, batch 2, warm |", f"| kickgen baseline ({base_dir}) DDIM 1, single, warm |",
                "| kickgen DDIM 1, batch 2, warm |", "| kickgen DPM-Solver++ 2, batch 2, warm |",
                "### Against the baseline checkpoints", "| mode | this run, s per kick | baseline, s per kick | change |",
                f"- Per kick against the baseline (`{base_dir}`), batch 2: ", "(target at most +10 %: "):  # fmt: skip
        assert row in text, row
    assert "baseline DPM-Solver++" not in text  # the baseline runs the default setting only
    table = text.split("### Against the baseline checkpoints")[1].split("\n\n")[2].splitlines()
    assert [r.split(" | ")[0] for r in table[2:]] == ["| batch 2", "| single"]
    err = capsys.readouterr().err
    assert "baseline DDIM 1, batch 2: " in err and "baseline DDIM 1, single: " in err


def test_bench_rejects_a_baseline_folder_missing_a_checkpoint(tmp_path, capsys):
    from kickgen.weights import DIFFUSION_NAME, VAE_NAME, VOCODER_NAME

    for name in (DIFFUSION_NAME, VAE_NAME):  # no vocoder: caught before the bench loads anything
        (tmp_path / name).write_bytes(b"")
    assert main(["bench", "--baseline", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and VOCODER_NAME in err and "--baseline" in err
    assert main(["bench", "--baseline", str(tmp_path / "nowhere")]) == 2
    assert "is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("kernel_mark", [True, False])
def test_peak_memory_sees_an_allocation(kernel_mark, monkeypatch):
    """With the kernel's high-water mark (Linux) and with the sampling thread (elsewhere)."""
    import mmap

    if not kernel_mark:
        monkeypatch.setattr(bench_measures, "reset_peak_resident", lambda: False)
    elif not bench_measures.reset_peak_resident():
        pytest.skip("no /proc/self/clear_refs here")
    with bench_measures.PeakMemory() as mem:
        # 64 MiB of fresh pages, touched: a malloc'd block may reuse pages an earlier test freed
        # and the allocator kept, which the resident size does not see again (seen in one full run)
        block = mmap.mmap(-1, 64 * 2**20)
        block[:] = b"\1" * len(block)
        time.sleep(0.05)
        block.close()
    assert (
        mem._thread is None
    ) == kernel_mark  # no thread beside the block where the kernel keeps the mark
    assert mem.peak_mb - mem.start_mb > 48


@pytest.mark.slow
def test_stage_split_and_solver_agreement(pipeline):
    t = bench_measures.stage_seconds(pipeline, "808", 2, "ddim", 2, 3.0)
    assert list(t) == ["text", "sampler", "vae", "vocoder"] and all(v > 0 for v in t.values())
    agree = bench_measures.solver_agreement(
        pipeline, "808", 2, [("ddim", 4), ("dpm", 2)], 3.0, reference=("ddim", 4)
    )
    assert agree["DDIM 4"] == [0.0, 0.0]  # a setting agrees with itself, kick by kick
    assert len(agree["DPM-Solver++ 2"]) == 2 and min(agree["DPM-Solver++ 2"]) > 0.0


@pytest.mark.slow
def test_cold_cli_writes_a_wav(checkpoint_dir, tmp_path):
    from kickgen.checkpoints import DIFFUSION_FILENAME, VAE_FILENAME, VOCODER_FILENAME

    paths = {"diffusion": checkpoint_dir / DIFFUSION_FILENAME, "vae": checkpoint_dir / VAE_FILENAME,
             "vocoder": checkpoint_dir / VOCODER_FILENAME}  # fmt: skip
    runs = bench_measures.cold_cli(paths, tmp_path, "808", "dpm", 2, runs=1, threads=1)
    assert len(runs) == 1 and runs[0]["seconds"] > 0 and runs[0]["peak_mb"] > 50
    assert (tmp_path / "cold_dpm_2_0.wav").is_file()


def test_bench_rejects_bad_values(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--batch", "0"])
    assert "batch sizes are at least 1" in capsys.readouterr().err
    assert main(["bench", "--rounds", "0"]) == 2
    assert "--rounds 0: use at least 1" in capsys.readouterr().err


# A stand-in for the reference's pytorch/ folder: its layout (namespace packages models/ and
# training/, inference/generate.py), its classes' signatures, its checkpoint keys and its
# ``import torchaudio``, with tiny models, so the driver protocol is tested offline.
FAKE_REFERENCE = {
    "inference/__init__.py": "",
    "inference/generate.py": """
import torch, torchaudio
from models.autoencoder import KickVAE
from models.diffusion import LatentUNet
from models.text_encoder import KeywordEncoder
from models.vocoder import HiFiGANGenerator

CALLS = []

def generate(diffusion_checkpoint, vae_checkpoint, vocoder_checkpoint=None, prompt="", cfg_scale=3.0,
             ddim_steps=50, output_path=None, seed=None):
    print("Loading diffusion model...")
    diff = torch.load(diffusion_checkpoint, weights_only=False)
    cfg = diff["config"]
    unet = LatentUNet(cfg.latent_dim, cfg.base_channels, cfg.cond_dim)
    unet.load_state_dict(diff["ema_state_dict"])
    text = KeywordEncoder(len(diff["vocab"]), cfg.text_embed_dim, cfg.cond_dim)
    text.load_state_dict(diff["text_enc_state_dict"])
    KickVAE(cfg.latent_dim).load_state_dict(torch.load(vae_checkpoint)["model_state_dict"])
    HiFiGANGenerator(in_channels=128).load_state_dict(torch.load(vocoder_checkpoint)["generator"])
    CALLS.append((prompt, ddim_steps, seed))
    output_path.write_bytes(b"RIFF")
    return output_path
""",
    "models/autoencoder.py": "import torch\nclass KickVAE(torch.nn.Linear):\n    def __init__(self, latent_dim=4):\n        super().__init__(latent_dim, 2)\n",
    "models/diffusion.py": "import torch\nclass LatentUNet(torch.nn.Linear):\n    def __init__(self, latent_dim=4, base_channels=64, cond_dim=256):\n        super().__init__(latent_dim, base_channels)\n",
    "models/text_encoder.py": "import torch\nclass KeywordEncoder(torch.nn.Embedding):\n    def __init__(self, vocab_size, embed_dim=64, cond_dim=256):\n        super().__init__(vocab_size, embed_dim)\n",
    "models/vocoder.py": "import torch\nclass HiFiGANGenerator(torch.nn.Linear):\n    def __init__(self, in_channels=128):\n        super().__init__(in_channels, 1)\n",
    "training/config.py": "from dataclasses import dataclass\n@dataclass\nclass DiffusionConfig:\n    latent_dim: int = 4\n    base_channels: int = 8\n    cond_dim: int = 16\n    text_embed_dim: int = 4\n",
}


def test_reference_code_runs_in_its_own_warm_process(tmp_path):
    code = tmp_path / "pytorch"
    for name, text in FAKE_REFERENCE.items():
        (code / name).parent.mkdir(parents=True, exist_ok=True)
        (code / name).write_text(text)
    work = tmp_path / "work"
    work.mkdir()
    with bench_reference.ReferenceCode(code, work, threads=1) as ref:
        assert ref.ready == {"ready": True, "threads": 1}
        first, again = ref.seconds(2, seed=5, steps=3), ref.seconds(1)
        assert len(first) == 2 and len(again) == 1 and all(s > 0 for s in first + again)
        assert ref.peak_mb() > 10
    # its checkpoints, in its own format, and its output
    assert {p.name for p in work.iterdir()} >= {"diffusion.pt", "vae.pt", "vocoder.pt", "kick.wav"}
    assert len(bench_reference.reference_code_identity(code)) == 12


def test_reference_code_that_fails_says_why(tmp_path):
    code = tmp_path / "pytorch"
    (code / "inference").mkdir(parents=True)
    (code / "inference" / "generate.py").write_text("raise ImportError('no such thing')\n")
    with pytest.raises(RuntimeError, match="no such thing"):
        with bench_reference.ReferenceCode(code, tmp_path):
            pass


def test_bench_rejects_a_folder_without_the_reference_code(tmp_path, capsys):
    assert main(["bench", "--reference-code", str(tmp_path)]) == 2
    assert "no inference/generate.py there" in capsys.readouterr().err
