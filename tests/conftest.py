"""Shared fixtures: seeded random-weight checkpoints and a loaded pipeline.

Any test may use them:

- ``repo_root``: the repository root (``Path``).
- ``checkpoint_dir``: a session-wide directory holding ``vae_epoch_100.pt``,
  ``diffusion_step_100000.pt`` and ``vocoder_epoch_50.pt`` (the guide's names) with seeded random
  weights: VAE and vocoder at the shipped sizes, a narrow U-Net (``base_channels=16``) so sampling
  is fast. Vocabulary: ``kickgen.checkpoints.DEFAULT_TEST_VOCAB`` (808 909 deep punchy ...).
  Treat it as read-only; copy it if a test must change files.
- ``tiny_checkpoint_dir``: the same with a tiny vocoder too (16 initial channels, one kernel),
  for tests that run many generations through the vocoder.
- ``pipeline``: a ``KickPipeline`` loaded once from ``checkpoint_dir`` on the CPU.
- ``serve_in_thread``: ``with serve_in_thread(uvicorn_config) as (host, port):`` runs a real
  uvicorn server on a free loopback port in a thread, stopped when the block ends.
- ``guide_workdir``: a fresh directory with ``checkpoints/`` holding the three files, for tests
  that run the guide's commands with the working directory as the guide assumes.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_UNET_CHANNELS = 16  # narrow U-Net: the guide's three-argument constructor still rebuilds it


@pytest.fixture(autouse=True)
def no_checkpoint_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see kickgen's lookup order without the developer's $KICKGEN_CHECKPOINTS."""
    monkeypatch.delenv("KICKGEN_CHECKPOINTS", raising=False)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from kickgen.checkpoints import write_random_checkpoints
    from kickgen.models.diffusion import DiffusionConfig

    directory = tmp_path_factory.mktemp("checkpoints")
    write_random_checkpoints(
        directory, seed=0, diffusion_config=DiffusionConfig(base_channels=TEST_UNET_CHANNELS)
    )
    return directory


@pytest.fixture(scope="session")
def tiny_checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from kickgen.checkpoints import (
        VOCODER_FILENAME,
        build_vocoder,
        save_vocoder,
        write_random_checkpoints,
    )
    from kickgen.models.diffusion import DiffusionConfig
    from kickgen.models.vocoder import VocoderConfig

    directory = tmp_path_factory.mktemp("tiny_checkpoints")
    write_random_checkpoints(
        directory, seed=0, diffusion_config=DiffusionConfig(base_channels=TEST_UNET_CHANNELS)
    )
    cfg = VocoderConfig(
        upsample_initial_channel=16, resblock_kernel_sizes=(3,), resblock_dilations=((1,),)
    )
    torch.manual_seed(0)
    save_vocoder(
        directory / VOCODER_FILENAME, build_vocoder(cfg), cfg, epoch=0, random_weights=True
    )
    return directory


@pytest.fixture(scope="session")
def pipeline(checkpoint_dir: Path):
    from kickgen.pipeline import KickPipeline

    return KickPipeline.from_pretrained(checkpoint_dir, device="cpu")


@contextlib.contextmanager
def _serve_in_thread(config):
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="session")
def serve_in_thread():
    """The context manager that runs a real uvicorn server in a thread (see the module docstring)."""
    pytest.importorskip("uvicorn", reason="kickgen serve needs the serve extra (uvicorn)")
    return _serve_in_thread


@pytest.fixture()
def guide_workdir(tmp_path: Path, checkpoint_dir: Path) -> Path:
    target = tmp_path / "checkpoints"
    target.mkdir()
    for path in checkpoint_dir.glob("*.pt"):
        shutil.copy2(path, target / path.name)
    return tmp_path
