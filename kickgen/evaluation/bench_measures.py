"""What ``kickgen bench`` measures, one function or class each, apart from how it schedules them
(:mod:`kickgen.evaluation.bench`): a process's resident memory and its peak over a block
(:class:`PeakMemory`), seconds per pipeline stage (:func:`stage_seconds`), a cold
``python -m kickgen generate`` process (:func:`cold_cli`), how far a fast solver strays from a
fine DDIM grid (:func:`solver_agreement`) and the two Griffin-Lim fallbacks on a synthetic kick
(:func:`bench_griffin_lim`). The reference's costs are in :mod:`kickgen.evaluation.bench_reference`.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from kickgen.audio import NUM_SAMPLES, SAMPLE_RATE, log_mel, power_spectrogram


def setting_name(sampler: str, steps: int) -> str:
    return f"{'DDIM' if sampler == 'ddim' else 'DPM-Solver++'} {steps}"


def resident_mb() -> float:
    """This process's resident memory in MiB (Linux ``/proc``; 0 where it cannot be read)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def peak_resident_mb(pid: int | str = "self") -> float:
    """A process's peak resident memory in MiB, the kernel's high-water mark (Linux ``/proc``
    ``VmHWM``; 0 where it cannot be read)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def reset_peak_resident() -> bool:
    """Reset this process's high-water mark to its resident size now (Linux: "5" into
    ``/proc/self/clear_refs``); False where that cannot be done."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return peak_resident_mb() > 0.0


class PeakMemory:
    """``with PeakMemory() as mem: ...`` → ``mem.peak_mb``: the largest resident size during the
    block (``mem.start_mb`` before it).

    On Linux the kernel keeps the mark: it is reset on entry and read on exit, and nothing runs
    beside the block. Elsewhere a thread samples the resident size every ``interval`` seconds. That
    thread cost the block it watched 8 % of its time at batch 16 (it takes the GIL 500 times a
    second from the pipeline's worker threads), which the reference's code, timed in a process of
    its own, never paid.
    """

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.start_mb = self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._kernel_mark = False

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, resident_mb())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self.start_mb = self.peak_mb = resident_mb()
        self._kernel_mark = reset_peak_resident()
        if not self._kernel_mark:
            self._thread = threading.Thread(target=self._watch, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._kernel_mark:
            self.peak_mb = max(self.peak_mb, peak_resident_mb())
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, resident_mb())


def sample_latents(pipe, cond: torch.Tensor, uncond: torch.Tensor, n: int, sampler: str, steps: int,
                   cfg_scale: float, seed: int) -> torch.Tensor:  # fmt: skip
    """The sampler alone, as the pipeline runs it: latents ``(n, C, 8, 11)``, kick i from seed + i
    (measurement code times and compares this stage apart from the rest of the pipeline)."""
    from kickgen.rows import LATENT_HW
    from kickgen.sampling import make_sampler

    gens = [torch.Generator().manual_seed(seed + i) for i in range(n)]
    return make_sampler(sampler, pipe.scheduler, steps).sample(
        pipe.unet, (n, pipe.latent_dim, *LATENT_HW), cond, uncond, cfg_scale, pipe.device, generator=gens
    )  # fmt: skip


@torch.inference_mode()
def stage_seconds(
    pipe, prompt: str, n: int, sampler: str, steps: int, cfg_scale: float, seed: int = 0
) -> dict[str, float]:
    """Seconds per stage for one batch of ``n`` kicks: text encoder, sampler, VAE decode, vocoder."""

    times: dict[str, float] = {}
    start = time.perf_counter()
    cond, uncond = pipe.encode_prompt(pipe.parse_prompt(prompt).token_ids)
    times["text"] = time.perf_counter() - start
    start = time.perf_counter()
    latents = sample_latents(pipe, cond, uncond, n, sampler, steps, cfg_scale, seed)
    times["sampler"] = time.perf_counter() - start
    start = time.perf_counter()
    mel = pipe.decode(latents)  # (n, 128, 173)
    times["vae"] = time.perf_counter() - start
    start = time.perf_counter()
    pipe.vocode(mel)
    times["vocoder"] = time.perf_counter() - start
    return times


def cold_cli(paths: dict[str, Path], out_dir: Path, prompt: str, sampler: str, steps: int, runs: int,
             threads: int | None) -> list[dict[str, float]]:  # fmt: skip
    """``runs`` fresh ``python -m kickgen generate`` processes, each from start to WAV written:
    ``[{"seconds", "peak_mb"}]`` (the child's peak resident memory)."""
    import kickgen

    env = dict(os.environ)
    root = str(Path(kickgen.__file__).resolve().parents[1])  # importable without an install too
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)  # the CLI has no thread flag; torch reads this
    results = []
    for i in range(runs):
        wav = out_dir / f"cold_{sampler}_{steps}_{i}.wav"
        cmd = [sys.executable, "-m", "kickgen", "generate", "--prompt", prompt, "--seed", str(i),
               "--steps", str(steps), "--sampler", sampler, "--cfg-scale", "3.0", "--output", str(wav),
               "--diffusion-ckpt", str(paths["diffusion"]), "--vae-ckpt", str(paths["vae"]),
               "--vocoder-ckpt", str(paths["vocoder"]), "--device", "cpu", "-q"]  # fmt: skip
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0 or not wav.is_file():
            raise RuntimeError(
                f"cold CLI run failed (exit {proc.returncode}): {err.strip()[-300:]}"
            )
        results.append(
            {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024.0}
        )  # ru_maxrss in KiB
    return results


@torch.inference_mode()
def solver_agreement(pipe, prompt: str, n: int, settings: list[tuple[str, int]], cfg_scale: float,
                     reference: tuple[str, int] = ("ddim", 200)) -> dict[str, list[float]]:  # fmt: skip
    """Per-kick log-mel distance (dB, :func:`kickgen.evaluation.metrics.log_mel_distance_db`) of each
    setting's decoded kicks to the same seeds' kicks from ``reference``, a fine DDIM grid that
    stands for the exact solution of the sampling ODE: how far a fast solver strays from it."""
    from kickgen.evaluation import metrics

    cond, uncond = pipe.encode_prompt(pipe.parse_prompt(prompt).token_ids)

    def mels(sampler: str, steps: int) -> torch.Tensor:
        z = sample_latents(pipe, cond, uncond, n, sampler, steps, cfg_scale, seed=1000)
        return pipe.decode(z).float().cpu()  # (n, 128, 173)

    target = mels(*reference)
    return {
        setting_name(s, k): metrics.log_mel_distance_db(mels(s, k), target).tolist()
        for s, k in settings
    }


def synthetic_kick() -> torch.Tensor:
    """A 2 s test kick ``(88200,)``: 165 → 45 Hz pitch sweep, 0.35 s decay, 4 ms noise click."""
    t = torch.arange(NUM_SAMPLES, dtype=torch.float64) / SAMPLE_RATE
    freq = 45 + 120 * torch.exp(-t / 0.03)
    phase = 2 * math.pi * torch.cumsum(freq, 0) / SAMPLE_RATE
    noise = torch.randn(
        NUM_SAMPLES, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    kick = torch.sin(phase) * torch.exp(-t / 0.35) + 0.3 * noise * torch.exp(-t / 0.004)
    return (0.95 * kick / kick.abs().max()).float()


def bench_griffin_lim() -> dict[str, dict[str, float]]:
    """Both Griffin-Lim recipes on the synthetic kick's log-mel, clean and with N(0, 0.5) noise
    added (a stand-in for a VAE's imperfect log-mel): log-mel L1 of the result against its input,
    spectral convergence against the true magnitude (clean only), seconds."""
    from kickgen import griffin_lim as gl

    kick = synthetic_kick()[None]  # (1, 88200)
    target = log_mel(kick)  # (1, 128, 173)
    noisy = target + 0.5 * torch.randn(target.shape, generator=torch.Generator().manual_seed(1))
    magnitude = power_spectrogram(kick).sqrt()
    out: dict[str, dict[str, float]] = {}
    recipes = {"kickgen (NNLS + fast GL, 32 it.)": gl.log_mel_to_audio,
               "reference (pinv + GL, 64 it.)": gl.reference_log_mel_to_audio}  # fmt: skip
    for name, fn in recipes.items():
        start = time.perf_counter()
        wave = fn(target)
        seconds = time.perf_counter() - start
        rebuilt = power_spectrogram(wave).sqrt()
        out[name] = {
            "log_mel_l1": float((log_mel(wave) - target).abs().mean()),
            "spectral_convergence": float((rebuilt - magnitude).norm() / magnitude.norm()),
            "noisy_log_mel_l1": float((log_mel(fn(noisy)) - noisy).abs().mean()),
            "seconds": seconds,
        }
    return out
