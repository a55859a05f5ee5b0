"""The seed guide's three snippets, copied VERBATIM from seed-user-guide.md, run as the guide says.

The Python snippets run with the working directory holding ``checkpoints/`` under the guide's
names and the repository on ``sys.path``; the CLI lines run with ``python`` for ``uv run``. They
run against seeded random checkpoints (``conftest.checkpoint_dir``) and, when the repository's
``checkpoints/`` holds the three shipped files, against those too.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from kickgen.audio import NUM_SAMPLES, SAMPLE_RATE
from kickgen.pipeline import DIFFUSION_NAME, VAE_NAME, VOCODER_NAME, clear_cache

# ---- copied verbatim from the guide: "Python API"
GUIDE_PYTHON_API = r"""
from pathlib import Path
from inference.generate import generate

output_path = generate(
    diffusion_checkpoint=Path("checkpoints/diffusion_step_100000.pt"),
    vae_checkpoint=Path("checkpoints/vae_epoch_100.pt"),
    vocoder_checkpoint=Path("checkpoints/vocoder_epoch_50.pt"),
    prompt="808",
    cfg_scale=3.0,
    ddim_steps=50,
    output_path=Path("output/my_kick.wav"),
    seed=42,
)
# output_path is the Path to the generated .wav file
"""

# ---- copied verbatim from the guide: "Working with the waveform tensor directly"
GUIDE_TENSOR = r"""
import torch
from pathlib import Path
from models.autoencoder import KickVAE
from models.diffusion import LatentUNet, NoiseScheduler
from models.text_encoder import KeywordEncoder
from models.vocoder import HiFiGANGenerator
from inference.generate import DDIMSampler, parse_prompt

device = torch.device("cpu")

# Load diffusion model
diff_ckpt = torch.load("checkpoints/diffusion_step_100000.pt", weights_only=False, map_location=device)
vocab = diff_ckpt["vocab"]
cfg = diff_ckpt["config"]

model = LatentUNet(latent_dim=cfg.latent_dim, base_channels=cfg.base_channels, cond_dim=cfg.cond_dim).to(device)
model.load_state_dict(diff_ckpt["ema_state_dict"])
model.eval()

text_enc = KeywordEncoder(vocab_size=len(vocab), embed_dim=cfg.text_embed_dim, cond_dim=cfg.cond_dim).to(device)
text_enc.load_state_dict(diff_ckpt["text_enc_state_dict"])
text_enc.eval()

scheduler = NoiseScheduler(cfg.timesteps, cfg.beta_start, cfg.beta_end).to(device)

# Encode prompt
token_ids = parse_prompt("808", vocab)
cond = text_enc([token_ids], device)
uncond = text_enc([[]], device)

# Sample latent
sampler = DDIMSampler(scheduler, num_steps=50)
latent = sampler.sample(model, shape=(1, cfg.latent_dim, 8, 11), cond=cond, uncond=uncond, cfg_scale=3.0, device=device)

# Decode with VAE
vae_ckpt = torch.load("checkpoints/vae_epoch_100.pt", weights_only=False, map_location=device)
vae = KickVAE(latent_dim=cfg.latent_dim).to(device)
vae.load_state_dict(vae_ckpt["model_state_dict"])
vae.eval()

with torch.no_grad():
    log_mel = vae.decode(latent).squeeze(0)  # (1, 128, 173)

# Vocoder
vocoder = HiFiGANGenerator(in_channels=128).to(device)
voc_ckpt = torch.load("checkpoints/vocoder_epoch_50.pt", weights_only=False, map_location=device)
vocoder.load_state_dict(voc_ckpt["generator"])
vocoder.eval()
vocoder.remove_weight_norm()

with torch.no_grad():
    waveform = vocoder(log_mel)  # (1, 1, ~88576)
    waveform = waveform.squeeze()[:88200]  # trim to 2 seconds

# waveform is a 1D tensor of float32 audio samples at 44100 Hz
"""

# ---- copied verbatim from the guide: "CLI Usage"
GUIDE_CLI = r"""
# Basic generation (unconditional)
uv run inference/generate.py --vocoder-ckpt checkpoints/vocoder_epoch_50.pt

# With text prompt
uv run inference/generate.py --vocoder-ckpt checkpoints/vocoder_epoch_50.pt --prompt "808"

# With custom settings
uv run inference/generate.py \
    --vocoder-ckpt checkpoints/vocoder_epoch_50.pt \
    --prompt "punchy analog" \
    --cfg-scale 5.0 \
    --steps 50 \
    --seed 42

# Specify output path
uv run inference/generate.py \
    --vocoder-ckpt checkpoints/vocoder_epoch_50.pt \
    --output my_kick.wav

# Griffin-Lim fallback (no vocoder needed, lower quality)
uv run inference/generate.py --no-vocoder
"""

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints"
HAS_SHIPPED = all((SHIPPED / n).is_file() for n in (DIFFUSION_NAME, VAE_NAME, VOCODER_NAME))


@pytest.fixture(params=["seeded", "shipped"])
def workdir(request, tmp_path: Path, checkpoint_dir: Path, repo_root: Path, monkeypatch) -> Path:
    """A working directory whose ``checkpoints/`` links to the seeded or the shipped files."""
    if request.param == "shipped" and not HAS_SHIPPED:
        pytest.skip("the shipped checkpoints are not in checkpoints/ yet")
    source = checkpoint_dir if request.param == "seeded" else SHIPPED
    (tmp_path / "checkpoints").mkdir()
    for name in (DIFFUSION_NAME, VAE_NAME, VOCODER_NAME):
        (tmp_path / "checkpoints" / name).symlink_to(source / name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(repo_root))
    clear_cache()
    return tmp_path


def assert_guide_wav(path: Path) -> None:
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (
        SAMPLE_RATE,
        1,
        "FLOAT",
        NUM_SAMPLES,
    )
    data, _ = sf.read(str(path), dtype="float32")
    assert abs(float(np.abs(data).max()) - 0.95) < 1e-6


def cli_commands(block: str) -> list[list[str]]:
    """The block's commands: continuations joined, comments dropped, ``uv run`` → ``python``."""
    joined = block.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line)
        assert words[:2] == ["uv", "run"], line
        commands.append([sys.executable, *words[2:]])
    return commands


def test_python_api_snippet(workdir):
    scope: dict = {}
    exec(compile(GUIDE_PYTHON_API, "guide-python-api", "exec"), scope)
    assert scope["output_path"] == Path("output/my_kick.wav")
    assert_guide_wav(workdir / "output" / "my_kick.wav")


def test_waveform_tensor_snippet(workdir):
    scope: dict = {}
    exec(compile(GUIDE_TENSOR, "guide-tensor", "exec"), scope)
    waveform = scope["waveform"]
    assert waveform.shape == (NUM_SAMPLES,) and waveform.dtype == torch.float32
    assert torch.isfinite(waveform).all() and waveform.abs().max() > 0
    assert scope["latent"].shape == (1, scope["cfg"].latent_dim, 8, 11)


def test_the_snippets_cli_block_parses_into_five_commands():
    commands = cli_commands(GUIDE_CLI)
    assert len(commands) == 5
    assert all(c[1] == "inference/generate.py" for c in commands)


@pytest.mark.slow
def test_cli_snippet(workdir, repo_root):
    # the guide runs from the directory holding inference/ and checkpoints/: give the work
    # directory the repository's inference/ door (a link), as a copy of the layout would
    (workdir / "inference").symlink_to(repo_root / "inference")
    for command in cli_commands(GUIDE_CLI):
        before = set(workdir.rglob("*.wav"))
        r = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": str(repo_root)})  # fmt: skip
        assert r.returncode == 0, f"{shlex.join(command)}: {r.stderr}"
        new = set(workdir.rglob("*.wav")) - before
        assert len(new) == 1, shlex.join(command)
        written = new.pop()
        assert Path(r.stdout.strip()).resolve() == written.resolve()
        assert_guide_wav(written)
        if "--output" in command:
            assert written == workdir / "my_kick.wav"
        else:
            assert written.parent == workdir / "generations" and written.name.startswith("kick_")
