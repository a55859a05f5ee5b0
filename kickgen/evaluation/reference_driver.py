"""Times the reference's own ``generate()`` in a warm process of its own, for ``kickgen bench
--reference-code DIR``.

Run as a script, never imported by kickgen: ``python reference_driver.py CODE_DIR WORK_DIR``, where
CODE_DIR is the reference's ``pytorch/`` folder (a copy fetched outside this repository; never
vendored). The reference's ``models`` and ``inference`` packages share their names with the
guide's re-export packages at kickgen's root, so they cannot live in one interpreter with kickgen.

The driver writes random-weight checkpoints in the reference's own format with the reference's own
classes and default sizes, then answers on stdin/stdout, one JSON line each:

- ``{"kicks": K, "seed": S}`` → ``{"seconds": [...]}``: K whole ``generate()`` calls (checkpoint
  loads, sampling, decoding, vocoding, WAV write), each timed on its own;
- ``{"quit": true}`` → exit.

Its ``import torchaudio`` is met by an empty stand-in module: the vocoder path never calls it (only
the Griffin-Lim fallback does), and torchaudio has no CPU build on every machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
import types
from pathlib import Path

VOCAB = ["808", "909", "acoustic", "clicky", "deep", "distorted", "hard", "high", "long", "punchy",
         "short", "soft", "sub", "tight"]  # fmt: skip
PROMPT = "punchy 808"


def write_checkpoints(work: Path) -> dict[str, Path]:
    """Random weights at the reference's default sizes, saved the way its training scripts save."""
    import torch
    from training.config import DiffusionConfig

    from models.autoencoder import KickVAE
    from models.diffusion import LatentUNet
    from models.text_encoder import KeywordEncoder
    from models.vocoder import HiFiGANGenerator

    torch.manual_seed(0)
    cfg = DiffusionConfig()
    unet = LatentUNet(cfg.latent_dim, cfg.base_channels, cfg.cond_dim)
    text = KeywordEncoder(len(VOCAB), cfg.text_embed_dim, cfg.cond_dim)
    paths = {name: work / f"{name}.pt" for name in ("diffusion", "vae", "vocoder")}
    torch.save({"vocab": VOCAB, "config": cfg, "ema_state_dict": unet.state_dict(),
                "text_enc_state_dict": text.state_dict()}, paths["diffusion"])  # fmt: skip
    torch.save({"model_state_dict": KickVAE(cfg.latent_dim).state_dict()}, paths["vae"])
    torch.save({"generator": HiFiGANGenerator(in_channels=128).state_dict()}, paths["vocoder"])
    return paths


def use_reference_packages(code_dir: Path) -> None:
    """Make ``models``, ``inference`` and ``training`` the reference's own. Its folders have no
    ``__init__.py`` (namespace packages), and an installed kickgen ships regular packages of the
    first two names, which the import system would prefer; so each is registered here by path."""
    sys.path.insert(0, str(code_dir))
    for name in ("models", "inference", "training"):
        package = types.ModuleType(name)
        package.__path__ = [str(code_dir / name)]
        sys.modules[name] = package


def main(code_dir: str, work_dir: str, threads: int = 0) -> None:
    use_reference_packages(Path(code_dir).resolve())
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    import torch

    from inference.generate import generate

    if threads:
        torch.set_num_threads(threads)
    work = Path(work_dir)
    paths = write_checkpoints(work)
    answer = sys.stdout
    answer.write(json.dumps({"ready": True, "threads": torch.get_num_threads()}) + "\n")
    answer.flush()
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        seconds = []
        for k in range(int(request["kicks"])):
            with contextlib.redirect_stdout(io.StringIO()):  # the reference prints its progress
                start = time.perf_counter()
                generate(paths["diffusion"], paths["vae"], paths["vocoder"], prompt=PROMPT,
                         cfg_scale=3.0, ddim_steps=int(request.get("steps", 50)),
                         output_path=work / "kick.wav", seed=int(request.get("seed", 0)) + k)  # fmt: skip
                seconds.append(time.perf_counter() - start)
        answer.write(json.dumps({"seconds": seconds}) + "\n")
        answer.flush()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
