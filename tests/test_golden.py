"""Golden kicks: the SHA-256 of a few kicks' float32 bytes, pinned from seeded random-weight runs.

They guard refactors of the generation path: the same seeds must give the same bits. Each case
runs on the ``checkpoint_dir`` fixture (seeded random weights, narrow U-Net, shipped-size VAE and
vocoder). Floating-point results depend on torch's version, the CPU kernels it picks and the CPU
that runs them (AMD and Intel parts with the same instruction set round differently), so the hashes
are pinned for one machine, named by torch's version and capability and the CPU's vendor, family,
model and stepping, and checked there only. On every
machine each case's ``FINGERPRINTS`` must hold: the RMS and the correlations of the kicks with two
fixed seeded noise signals. Kernel rounding moves a correlation by about 1e-5; any other kick moves
it by about 1/sqrt(samples), 2e-3 here, so a changed generation path fails the tolerance (5e-5)
by a factor of 40. To re-pin on purpose (a change meant to alter the kicks), run
``python tests/test_golden.py`` from the repository root; it prints both tables.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from kickgen.audio import SAMPLE_RATE, write_wav

STEPS = 4
# torch.__version__, torch.backends.cpu.get_cpu_capability(), then /proc/cpuinfo's vendor_id,
# cpu family, model and stepping: where any differs, only the fingerprints are checked
PINNED_ON = ("2.13.0+cpu", "AVX512", "AuthenticAMD", "25", "17", "1")
# re-pinned 6 Dec: time scale 32, DPM split grid, sparse refinement, channels-last, fitted init
# latents; again 6 Dec, later: guidance interval (0.2, 0.6] · T, DPM grid point at its lower end,
# and the vocoder's noise source on by default (the shipped vocoder's architecture, model 2026.12.2);
# and 6 Dec, night: the high band's noise phase is the first frames of one clip-long noise spectrogram,
# and the VAE decodes a batch in halves, one per CPU worker
GOLDEN = {
    "plain_ddim": "4195b2a21e8b5ba13a1422a3877883a03216b1b8c313836b43fd46017fbe8e75",
    "plain_dpm": "5b04bb45191a1f3285fae1022193ae77dc677864fe49c8df8a53eedc0982ee5a",
    "variation": "f82bf77e36b71828de09976b5858cb861d33f1cfc8d89a9a354a53ed7f75120f",
    "seed_mix": "fd6351da90023a93cc135d8b371bf4732ddd16c8b7b9e84537d9535ac939d819",
    "prompt_mix": "6aeae21609f1454bfcba02ea61bcb858824df78b60d9e32e17f88fb2690ea899",
    "audio_mix": "fcd49d3ac9fbce7decca65348a86406a2c23d0bf9e6f4cf3457d04fdf11f15ef",
}
FINGERPRINTS = {  # RMS, correlation with noise signal 0, with noise signal 1
    "plain_ddim": [0.077676765, -0.00067562177, 0.00082917768],
    "plain_dpm": [0.077954584, -0.0036953694, 0.0030278056],
    "variation": [0.079051859, -0.0016026037, 0.001482455],
    "seed_mix": [0.01548194, -0.0002945359, 0.0028028066],
    "prompt_mix": [0.015475229, 0.00060160019, 0.0011528184],
    "audio_mix": [0.015479469, -0.0002030785, 0.0034195781],
}
CORRELATION_TOLERANCE = 5e-5


def as_array(x: torch.Tensor | np.ndarray) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return np.ascontiguousarray(a, dtype=np.float32)


def fingerprint(x: torch.Tensor | np.ndarray) -> list[float]:
    a = as_array(x).astype(np.float64).ravel()
    noise = np.random.default_rng(0).standard_normal((2, a.size))
    corr = noise @ a / (np.linalg.norm(noise, axis=1) * max(np.linalg.norm(a), 1e-12))
    return [float(np.sqrt((a**2).mean())), *(float(c) for c in corr)]


def sha(x: torch.Tensor | np.ndarray) -> str:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def write_init_kicks(directory: Path) -> tuple[Path, Path]:
    """Two sine kicks (pitch glide, exponential decay) as WAV files."""
    t = np.arange(88_200) / SAMPLE_RATE
    paths = []
    for i, (f_body, decay) in enumerate(((50.0, 6.0), (70.0, 12.0))):
        wave = (
            0.8
            * np.sin(2 * np.pi * (f_body * t + 120.0 * (1 - np.exp(-t * 30.0)) / 30.0))
            * np.exp(-t * decay)
        )
        paths.append(directory / f"init_{i}.wav")
        write_wav(paths[-1], wave)
    return paths[0], paths[1]


@contextlib.contextmanager
def pinned_thread_plan():
    """The bits depend on the thread plan (how many parts the sampler and the vocoder split a
    batch into, and torch's thread count where one part runs alone): the hashes hold for two
    workers and two torch threads, whatever this machine has."""
    from kickgen import pipeline

    workers = pipeline.cpu_workers
    pipeline.cpu_workers = lambda: 2
    try:
        with pipeline.torch_threads(2):
            yield
    finally:
        pipeline.cpu_workers = workers


def golden_kicks(pipe, directory: Path) -> dict[str, np.ndarray]:
    """Each case's kicks (all rows of a case together)."""
    with pinned_thread_plan():
        return _golden_kicks(pipe, directory)


def _golden_kicks(pipe, directory: Path) -> dict[str, np.ndarray]:
    from kickgen.producer import Row, Settings, render_rows, vary

    a, b = write_init_kicks(directory)
    out = {
        "plain_ddim": as_array(pipe("punchy 808", n=2, seed=42, steps=STEPS).waveforms),
        "plain_dpm": as_array(pipe("deep", n=2, seed=7, steps=STEPS, sampler="dpm").waveforms),
        "variation": as_array(
            np.stack(
                [k.wave for k in vary(pipe, a, "punchy", strength=0.5, n=2, seed=3, steps=STEPS)]
            )
        ),
    }
    rows = {
        "seed_mix": [Row(seed=5, prompt="808", seed_b=9, t=t) for t in (0.0, 0.5, 1.0)],
        "prompt_mix": [
            Row(seed=5, prompt="deep 808", prompt_b="punchy 909", t=t) for t in (0.0, 0.3, 1.0)
        ],
        "audio_mix": [
            Row(seed=2, prompt="808", init=str(a), init_b=str(b), t=t) for t in (0.0, 0.5)
        ],
    }
    for name, batch in rows.items():
        strength = 0.75 if name == "audio_mix" else 1.0
        out[name] = as_array(render_rows(pipe, batch, Settings(steps=STEPS, strength=strength)).raw)
    return out


def cpu_identity() -> tuple[str, ...]:
    """The first CPU's vendor, family, model and stepping from /proc/cpuinfo (empty elsewhere)."""
    fields = ("vendor_id", "cpu family", "model", "stepping")
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if not key:  # the end of the first CPU's block
                break
            if key in fields:
                found.setdefault(key, value.strip())
    return tuple(found.get(f, "?") for f in fields)


def platform_key() -> tuple[str, ...]:
    return torch.__version__, torch.backends.cpu.get_cpu_capability(), *cpu_identity()


@pytest.fixture(scope="module")
def kicks(pipeline, tmp_path_factory) -> dict[str, np.ndarray]:
    return golden_kicks(pipeline, tmp_path_factory.mktemp("golden"))


def test_golden_kick_levels_on_every_machine(kicks):
    for name, wave in kicks.items():
        rms, *corr = fingerprint(wave)
        assert rms == pytest.approx(FINGERPRINTS[name][0], rel=1e-3), name
        assert corr == pytest.approx(FINGERPRINTS[name][1:], abs=CORRELATION_TOLERANCE), name


def test_golden_kick_hashes(kicks):
    if platform_key() != PINNED_ON:
        pytest.skip(f"golden hashes are pinned on torch/CPU {PINNED_ON}; this is {platform_key()}")
    assert {name: sha(wave) for name, wave in kicks.items()} == GOLDEN


if __name__ == "__main__":  # print the table to pin (run from the repository root)
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's kickgen

    from kickgen.checkpoints import write_random_checkpoints
    from kickgen.models.diffusion import DiffusionConfig
    from kickgen.pipeline import KickPipeline

    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "ckpt"
        ckpt.mkdir()
        write_random_checkpoints(ckpt, seed=0, diffusion_config=DiffusionConfig(base_channels=16))
        pipe = KickPipeline.from_pretrained(ckpt, device="cpu")
        print(platform_key())
        kicks = golden_kicks(pipe, Path(tmp))
        for k, v in kicks.items():
            print(f'    "{k}": "{sha(v)}",')
        for k, v in kicks.items():
            print(f'    "{k}": [{", ".join(f"{x:.8g}" for x in fingerprint(v))}],')
