"""``kickgen bench``: generation speed, measured side by side in one process against a rebuild
of the reference's costs, written to BENCHMARKS.md.

Settings: the default (``steps`` DDIM steps) and the fast one (``fast_steps`` steps of
``fast_sampler``, DPM-Solver++ by default: the fewest steps that keep eval quality, see
:func:`solver_agreement` and the eval figures in BENCHMARKS.md). For each setting:

- ``batch B``: one warm :class:`~kickgen.pipeline.KickPipeline`, B kicks per call (16 and 64):
  cond + uncond in one U-Net pass, VAE batched, vocoder clip by clip.
- ``single``: the same warm pipeline, one kick per call (latency).
- ``cold CLI``: a fresh ``python -m kickgen generate`` process, start to WAV written.
- a per-stage split (text encoder, sampler, VAE decode, vocoder) and the peak resident memory.

Reference modes (default setting only): what the reference does per kick: reload all three
checkpoints, batch 1, the conditional and unconditional U-Net passes one after the other, with
kickgen's model sizes and with the reference's published sizes
(:func:`write_reference_size_checkpoints`), the fairest stand-in for its 1.0 s per kick under
whatever load the machine has while the bench runs. They run in a warm worker process of their
own (:class:`RebuiltReference`), as the reference's own code does (``reference_code``).

Baseline modes (``baseline``, default setting only): a second set of checkpoints, the models
before a change, timed with the same calls right after the main ones in every round; the report
gives the change per kick (issue 20: at most 10 % slower).

Rounds interleave the warm modes so that every mode sees the same machine load, and each round
renders other kicks (a kick costs more the longer it rings); the report gives medians over rounds.
Also measures the Griffin-Lim fallback (kickgen's vs the reference's).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from kickgen.audio import NUM_SAMPLES, SAMPLE_RATE, log_mel, power_spectrogram
from kickgen.progress import Progress, progress
from kickgen.sampling import GUIDANCE_FROM, GUIDANCE_UNTIL

REFERENCE_SECONDS_PER_KICK = 1.0  # REFERENCE.md: whole generate() call, warm process
ROUND_SEEDS = 1000  # round r of the warm modes renders kicks from seed r·ROUND_SEEDS on


@dataclass
class BenchConfig:
    batches: tuple[int, ...] = (16, 64)  # kicks per pipeline call in the batched modes
    steps: int = 50  # DDIM steps of the default setting
    fast_sampler: str = "dpm"  # the fast setting's sampler ...
    fast_steps: int = 20  # ... and steps (0: no fast setting)
    cfg_scale: float = 3.0  # guidance (3.0 = the guide's default; runs the unconditional pass)
    rounds: int = 3  # interleaved measurement rounds (medians are reported)
    reference_kicks: int = 2  # kicks per round in reference mode
    cold_runs: int = 2  # cold CLI processes per setting (0: skip)
    agreement: int = 16  # kicks in the solver agreement check (0: skip)
    threads: int | None = None  # torch intra-op threads (None: torch's default for this machine)
    griffin_lim: bool = True  # also compare the Griffin-Lim fallbacks
    checkpoints: Path | None = None  # time these checkpoints instead of random shipped-size weights
    reference_code: Path | None = None  # the reference's own pytorch/ folder, timed beside kickgen
    # another checkpoints folder timed beside --checkpoints, interleaved: the models before a change
    baseline: Path | None = None
    prompt: str = "punchy 808"

    def settings(self) -> list[tuple[str, int]]:
        """``[(sampler, steps)]``: the default setting, then the fast one."""
        fast = [(self.fast_sampler, self.fast_steps)] if self.fast_steps else []
        return [("ddim", self.steps)] + [f for f in fast if f != ("ddim", self.steps)]


def setting_name(sampler: str, steps: int) -> str:
    return f"{'DDIM' if sampler == 'ddim' else 'DPM-Solver++'} {steps}"


@dataclass
class BenchResult:
    config: BenchConfig
    seconds_per_kick: dict[str, list[float]] = field(default_factory=dict)  # mode → per round
    peak_mb: dict[str, float] = field(default_factory=dict)  # mode → peak resident MiB
    stages: dict[str, dict[str, float]] = field(default_factory=dict)  # mode → stage → s per kick
    cold: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # setting → runs
    agreement: dict[str, list[float]] = field(
        default_factory=dict
    )  # setting → dB to DDIM 200, per kick
    griffin_lim: dict[str, dict[str, float]] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)  # millions
    machine: dict[str, str] = field(default_factory=dict)

    def median(self, mode: str) -> float:
        return statistics.median(self.seconds_per_kick[mode])


# --------------------------------------------------------------------------- measurements


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
    from kickgen.pipeline import LATENT_HW
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


class SequentialGuidance(torch.nn.Module):
    """Runs a guidance batch ``cat([x, x])`` as two U-Net passes, one after the other (the reference)."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    @property
    def prediction_type(self) -> str:
        return self.unet.prediction_type

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if x.shape[0] % 2:
            return self.unet(x, t, cond)
        n = x.shape[0] // 2
        return torch.cat([self.unet(x[:n], t[:n], cond[:n]), self.unet(x[n:], t[n:], cond[n:])])


def reference_kick(
    paths: dict[str, Path], prompt: str, steps: int, cfg_scale: float, seed: int
) -> torch.Tensor:
    """One kick the reference's way: load all three files into freshly built models (its loader
    trusts the file: no config checks before the weights), batch 1, sequential guidance at every
    step. ``(88200,)``."""
    from kickgen import checkpoints as ck
    from kickgen.models.diffusion import NoiseScheduler
    from kickgen.models.text_encoder import KeywordEncoder
    from kickgen.pipeline import KickPipeline
    from kickgen.sampling import DDIMSampler

    diffusion = ck.load_checkpoint(paths["diffusion"], "diffusion")
    cfg = diffusion["config"]
    unet = ck.build_unet(cfg)
    unet.load_state_dict(diffusion["ema_state_dict"])
    text_encoder = KeywordEncoder(len(diffusion["vocab"]), cfg.text_embed_dim, cfg.cond_dim)
    text_encoder.load_state_dict(diffusion["text_enc_state_dict"])
    scheduler = NoiseScheduler(cfg.timesteps, cfg.beta_start, cfg.beta_end)
    vae_ckpt, voc_ckpt = (
        ck.load_checkpoint(paths["vae"], "vae"),
        ck.load_checkpoint(paths["vocoder"], "vocoder"),
    )
    vae, vocoder = ck.build_vae(vae_ckpt["config"]), ck.build_vocoder(voc_ckpt["config"])
    vae.load_state_dict(vae_ckpt["model_state_dict"])
    vocoder.load_state_dict(voc_ckpt["generator"])
    vocoder.remove_weight_norm()
    pipe = KickPipeline(
        unet, text_encoder, scheduler, vae, vocoder, diffusion["vocab"], cfg.latent_dim, "cpu"
    )
    for module in (pipe.unet, pipe.vae):  # the reference runs torch's default layout
        module.to(memory_format=torch.contiguous_format)
    cond, uncond = pipe.encode_prompt(pipe.parse_prompt(prompt).token_ids)
    # guided at every step, as the reference is
    sampler = DDIMSampler(pipe.scheduler, steps, guidance_until=None, guidance_from=None)
    latent = sampler.sample(
        SequentialGuidance(pipe.unet), (1, pipe.latent_dim, 8, 11), cond, uncond, cfg_scale, "cpu",
        generator=[torch.Generator().manual_seed(seed)],
    )  # fmt: skip
    with torch.inference_mode():
        mel = pipe.vae.decode(latent).squeeze(1)
        return pipe.vocoder(mel)[0, 0]  # one call at torch's thread count, as the reference


def _set_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def _timed_reference_kicks(paths: dict[str, Path], prompt: str, steps: int, cfg_scale: float,
                           seeds: list[int]) -> tuple[list[float], float]:  # fmt: skip
    """Seconds of each :func:`reference_kick` (one per seed) and this process's peak resident
    memory in MiB; runs in :class:`RebuiltReference`'s worker."""
    import resource

    seconds = []
    for seed in seeds:
        start = time.perf_counter()
        reference_kick(paths, prompt, steps, cfg_scale, seed)
        seconds.append(time.perf_counter() - start)
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class RebuiltReference:
    """The rebuilt reference mode in a warm process of its own, as the reference's own code runs
    (:class:`ReferenceCode`): in the bench's process, after its large batches, the same batch-1
    work ran up to a fifth slower than in a fresh one, which the reference never pays.
    ``with RebuiltReference(threads) as ref: ref.seconds(paths, prompt, steps, cfg, seeds)``."""

    def __init__(self, threads: int | None = None):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")  # a fresh interpreter, no forked state
        self._pool = ProcessPoolExecutor(1, context, initializer=_set_threads, initargs=(threads,))

    def __enter__(self) -> RebuiltReference:
        return self

    def seconds(self, paths: dict[str, Path], prompt: str, steps: int, cfg_scale: float,
                seeds: list[int]) -> tuple[list[float], float]:  # fmt: skip
        """Seconds of each kick and the worker's peak resident memory so far (MiB)."""
        return self._pool.submit(
            _timed_reference_kicks, paths, prompt, steps, cfg_scale, seeds
        ).result()

    def __exit__(self, *exc) -> None:
        self._pool.shutdown()


class ReferenceCode:
    """The reference's own ``generate()``, timed in a warm process of its own (``with
    ReferenceCode(dir, workdir) as ref: ref.seconds(kicks, seed)``); see
    :mod:`kickgen.evaluation.reference_driver`. ``directory`` is its ``pytorch/`` folder."""

    def __init__(self, directory: Path, workdir: Path, threads: int | None = None):
        self.directory, self.workdir, self.threads = Path(directory), Path(workdir), threads
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> ReferenceCode:
        driver = Path(__file__).with_name("reference_driver.py")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        cmd = [
            sys.executable,
            str(driver),
            str(self.directory.resolve()),
            str(self.workdir),
            str(self.threads or 0),
        ]
        # its warnings go to a file: a pipe nobody reads while it works could fill and stall it
        self._stderr = open(self.workdir / "reference_driver.err", "w+")  # noqa: SIM115
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                      text=True, cwd=self.workdir, env=env)  # fmt: skip
        try:
            self.ready = json.loads(self._answer())
        except BaseException:
            self.__exit__()
            raise
        return self

    def _answer(self) -> str:
        line = self._proc.stdout.readline() if self._proc and self._proc.stdout else ""
        if not line:
            self._proc.wait()
            self._stderr.seek(0)
            err = self._stderr.read().strip()[-400:]
            raise RuntimeError(
                f"the reference's code in {self.directory} stopped: {err or 'no message'}"
            )
        return line

    def seconds(self, kicks: int, seed: int = 0, steps: int = 50) -> list[float]:
        """Seconds of each of ``kicks`` whole ``generate()`` calls."""
        self._proc.stdin.write(json.dumps({"kicks": kicks, "seed": seed, "steps": steps}) + "\n")
        self._proc.stdin.flush()
        return json.loads(self._answer())["seconds"]

    def peak_mb(self) -> float:
        """The driver process's peak resident memory in MiB so far (Linux ``/proc``; 0 elsewhere)."""
        return peak_resident_mb(self._proc.pid) if self._proc is not None else 0.0

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            with contextlib.suppress(OSError, ValueError):  # it may have stopped already
                self._proc.stdin.write('{"quit": true}\n')
            with contextlib.suppress(OSError, ValueError):
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout:
                self._proc.stdout.close()
            self._stderr.close()
            self._proc = None


def reference_code_identity(directory: Path) -> str:
    """What names a copy of the reference's code: the SHA-256 prefix of its generation sources."""
    import hashlib

    digest = hashlib.sha256()
    for name in ("inference/generate.py", "models/autoencoder.py", "models/diffusion.py",
                 "models/text_encoder.py", "models/vocoder.py"):  # fmt: skip
        file = Path(directory) / name
        digest.update(name.encode() + b"\0" + (file.read_bytes() if file.is_file() else b""))
    return digest.hexdigest()[:12]


def write_reference_size_checkpoints(directory: Path, seed: int = 0) -> dict[str, Path]:
    """Random-weight checkpoints at the reference's published sizes (REFERENCE.md): VAE 32→256
    channels, latent_dim 4 (4.25 M parameters; published 4.2 M); U-Net widths 64, 128, 224 (5.86 M;
    published 5.9 M); HiFi-GAN with 256 initial channels, upsampling 8·8·2·2·2, kernels 16,16,4,4,4
    (3.66 M; published 3.7 M).

    The U-Net matches the reference's parameter count, not its widths: kickgen's block design at
    the published widths 64, 128, 256 has 7.2 M parameters, and at batch 1 a U-Net pass costs in
    proportion to its weights (measured on a 2-core Zen 5: 4.4 ms for kickgen's 7.2 M, 3.2 ms for
    its 4.7 M, 3.7–4.2 ms for the reference's own 5.9 M and 3.9–4.2 ms for this 5.86 M).
    """
    from kickgen import checkpoints as ck
    from kickgen.models.autoencoder import VAEConfig
    from kickgen.models.diffusion import DiffusionConfig
    from kickgen.models.text_encoder import KeywordEncoder
    from kickgen.models.vocoder import VocoderConfig

    vocab = list(ck.DEFAULT_TEST_VOCAB)
    diff_cfg = DiffusionConfig(latent_dim=4, base_channels=32, channel_mult=(2, 4, 7))
    vae_cfg = VAEConfig(latent_dim=4, channels=(32, 64, 128, 256))
    voc_cfg = VocoderConfig(upsample_initial_channel=256, upsample_rates=(8, 8, 2, 2, 2),
                            upsample_kernel_sizes=(16, 16, 4, 4, 4), istft_n_fft=0,
                            source_harmonics=0, noise_source=False, refine_iters=0)  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = ck.build_unet(diff_cfg)
        torch.nn.init.normal_(unet.conv_out.weight, std=0.02)  # not the zero init of training
        text_enc = KeywordEncoder(len(vocab), diff_cfg.text_embed_dim, diff_cfg.cond_dim)
        vae, voc = ck.build_vae(vae_cfg), ck.build_vocoder(voc_cfg)
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "diffusion": ck.save_diffusion(
            directory / ck.DIFFUSION_FILENAME, unet, text_enc, vocab, diff_cfg
        ),
        "vae": ck.save_vae(directory / ck.VAE_FILENAME, vae),
        "vocoder": ck.save_vocoder(directory / ck.VOCODER_FILENAME, voc, voc_cfg),
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


def machine_description() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if (
        "model name" in info
    ):  # the family and model tell CPU generations apart ("AMD EPYC" does not)
        cpu = f"{info['model name']} (family {info.get('cpu family', '?')}, model {info.get('model', '?')})"
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "vector instructions torch uses": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "os": platform.platform(),
        "load average (1, 5, 15 min) at start": load,
    }


def run_bench(config: BenchConfig, workdir: Path | None = None) -> BenchResult:
    """Measure every mode ``config.rounds`` times, interleaved; returns seconds per kick per round."""
    from kickgen.pipeline import torch_threads

    with torch_threads(config.threads):
        return _run_bench(config, workdir)


AGREEMENT_CANDIDATES = (
    ("ddim", 20),
    ("ddim", 25),
    ("ddim", 50),
    ("dpm", 10),
    ("dpm", 15),
    ("dpm", 20),
    ("dpm", 25),
)


def baseline_paths(directory: Path) -> dict[str, Path]:
    """The three checkpoint files of the ``--baseline`` folder (the names --checkpoints uses); a
    missing folder or file raises a one-line :class:`~kickgen.weights.CheckpointNotFoundError`."""
    from kickgen.weights import FILE_NAMES, find_checkpoint_dir

    folder, _ = find_checkpoint_dir(directory, named_by="--baseline", vocoder_hint=None)
    return {part: folder / name for part, name in FILE_NAMES.items()}


def _run_bench(config: BenchConfig, workdir: Path | None) -> BenchResult:
    from kickgen.checkpoints import write_random_checkpoints
    from kickgen.pipeline import DIFFUSION_NAME, VAE_NAME, VOCODER_NAME, KickPipeline

    # checked before anything is timed
    base_paths = baseline_paths(config.baseline) if config.baseline is not None else None
    result = BenchResult(config, machine=machine_description())
    settings = config.settings()
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        if config.checkpoints is not None:
            ck = Path(config.checkpoints)
            paths = {
                "diffusion": ck / DIFFUSION_NAME,
                "vae": ck / VAE_NAME,
                "vocoder": ck / VOCODER_NAME,
            }
        else:
            paths = write_random_checkpoints(Path(tmp) / "kickgen", seed=0)  # shipped sizes
        ref_paths = write_reference_size_checkpoints(Path(tmp) / "reference")
        if config.cold_runs:
            for sampler, steps in progress(settings, "bench (cold CLI)"):
                result.cold[setting_name(sampler, steps)] = cold_cli(
                    paths,
                    Path(tmp),
                    config.prompt,
                    sampler,
                    steps,
                    config.cold_runs,
                    config.threads,
                )
        pipe = KickPipeline.from_checkpoints(
            paths["diffusion"], paths["vae"], paths["vocoder"], device="cpu"
        )
        result.params = {
            name: sum(p.numel() for p in module.parameters()) / 1e6
            for name, module in (("U-Net", pipe.unet), ("VAE", pipe.vae), ("HiFi-GAN", pipe.vocoder),
                                 ("keyword encoder", pipe.text_encoder))
        }  # fmt: skip
        base_pipe = (
            KickPipeline.from_checkpoints(
                base_paths["diffusion"], base_paths["vae"], base_paths["vocoder"], device="cpu"
            )
            if base_paths is not None
            else None
        )
        for p in [x for x in (pipe, base_pipe) if x is not None]:
            for sampler, _ in settings:  # warm-up: allocator, kernels, first-call costs
                p(config.prompt, n=2, seed=0, steps=2, sampler=sampler, cfg_scale=config.cfg_scale)
        rebuilt = RebuiltReference(config.threads)
        ref_code = (
            ReferenceCode(config.reference_code, Path(tmp), config.threads)
            if config.reference_code is not None
            else None
        )

        modes: dict[str, list[float]] = {}
        peaks: dict[str, float] = {}

        @contextlib.contextmanager
        def timed(mode: str, kicks: int):
            """Time the block as ``kicks`` kicks of ``mode`` and keep its peak resident memory."""
            with PeakMemory() as mem:
                start = time.perf_counter()
                yield
                modes.setdefault(mode, []).append((time.perf_counter() - start) / kicks)
            peaks[mode] = max(peaks.get(mode, 0.0), mem.peak_mb)

        per_round = (
            (len(settings) + (base_pipe is not None)) * (sum(config.batches) + 1)
            + (2 + bool(ref_code)) * config.reference_kicks
        )  # fmt: skip

        def time_setting(p, label: str, sampler: str, steps: int, seed: int, bar: Progress) -> None:
            """Time ``p`` at one setting: every batch size, then one kick, as modes ``label, ...``."""
            for b in config.batches:
                with timed(f"{label}, batch {b}", b):
                    p(config.prompt, n=b, seed=seed, steps=steps, sampler=sampler,
                      cfg_scale=config.cfg_scale, batch_size=b)  # fmt: skip
                bar.update(b)
            with timed(f"{label}, single", 1):
                p(
                    config.prompt,
                    n=1,
                    seed=seed,
                    steps=steps,
                    sampler=sampler,
                    cfg_scale=config.cfg_scale,
                )
            bar.update(1)

        with (
            rebuilt,
            ref_code or contextlib.nullcontext(),
            Progress(config.rounds * per_round, "bench (kicks)") as bar,
        ):
            for ref in (paths, ref_paths):  # warm-up of the rebuilt reference's worker
                rebuilt.seconds(ref, config.prompt, 2, config.cfg_scale, [0])
            if ref_code is not None:
                ref_code.seconds(1, steps=2)  # warm-up
                result.machine["reference's code"] = (
                    f"`{config.reference_code}` (sources {reference_code_identity(config.reference_code)}, "
                    f"{ref_code.ready['threads']} torch threads)"
                )
            for r in range(config.rounds):
                # each round draws other kicks (seeds r·ROUND_SEEDS, r·ROUND_SEEDS + 1, ...): a
                # kick's cost depends on how long it rings, so one set of seeds would time one set
                # of kicks over and over
                for i, (sampler, steps) in enumerate(settings):
                    name = setting_name(sampler, steps)
                    time_setting(pipe, name, sampler, steps, r * ROUND_SEEDS, bar)
                    if i == 0 and base_pipe is not None:  # the baseline: default setting only
                        time_setting(
                            base_pipe, f"baseline {name}", sampler, steps, r * ROUND_SEEDS, bar
                        )
                for mode, ref in (("reference", paths), ("reference sizes", ref_paths)):
                    seeds = [r * 100 + k for k in range(config.reference_kicks)]
                    secs, peak = rebuilt.seconds(
                        ref, config.prompt, config.steps, config.cfg_scale, seeds
                    )
                    modes.setdefault(mode, []).append(statistics.fmean(secs))
                    peaks[mode] = peak
                    bar.update(config.reference_kicks)
                if ref_code is not None:
                    secs = ref_code.seconds(config.reference_kicks, r * 100, config.steps)
                    modes.setdefault("reference code", []).append(statistics.fmean(secs))
                    peaks["reference code"] = ref_code.peak_mb()
                    bar.update(config.reference_kicks)
        result.seconds_per_kick, result.peak_mb = modes, peaks

        for sampler, steps in settings:  # where the time goes, per kick
            for n in (1, config.batches[0]):
                t = stage_seconds(pipe, config.prompt, n, sampler, steps, config.cfg_scale)
                mode = f"{setting_name(sampler, steps)}, {'single' if n == 1 else f'batch {n}'}"
                result.stages[mode] = {k: v / n for k, v in t.items()}
        if config.agreement:
            candidates = list(dict.fromkeys([*settings, *AGREEMENT_CANDIDATES]))
            result.agreement = solver_agreement(
                pipe, config.prompt, config.agreement, candidates, config.cfg_scale
            )
    if config.griffin_lim:
        result.griffin_lim = bench_griffin_lim()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    result.machine["load average (1, 5, 15 min) at end"] = load
    return result


LATENCY_TARGET_S = 0.25  # issue 21: one warm kick at the default settings
THROUGHPUT_TARGET = 10.0  # issue 21: batch-16 throughput over the reference's own code per kick
REBUILD_TOLERANCE = 0.15  # issue 21: the rebuilt reference mode against the reference's own code
BASELINE_SLOWDOWN_LIMIT = 0.10  # issue 20: at most 10 % slower per kick than the models before


def mode_label(result: BenchResult, mode: str, default: str) -> str:
    """A speed-table row's words for ``mode``."""
    labels = {"reference code": f"the reference's own code, {default}, its sizes (random weights)",
              "reference sizes": f"rebuilt reference mode, {default}, its published sizes",
              "reference": f"rebuilt reference mode, {default}, kickgen's model sizes"}  # fmt: skip
    if mode in labels:
        return labels[mode]
    if mode.startswith("baseline "):
        return f"kickgen baseline ({result.config.baseline}) {mode.removeprefix('baseline ')}, warm"
    return f"kickgen {mode}, warm"


def speed_table(result: BenchResult, default: str) -> list[str]:
    """The speed table's rows: every mode, and its speed-up over each reference measured."""
    refs = {"reference code": "vs reference's code", "reference sizes": "vs rebuilt reference",
            "reference": "vs reference mode, kickgen's sizes"}  # fmt: skip
    refs = {mode: title for mode, title in refs.items() if mode in result.seconds_per_kick}
    rows = [
        "| mode | s per kick (median) | per round | kicks/s | " + " | ".join(refs.values()) + " | peak RSS MiB |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in refs) + " | --- |",
    ]  # fmt: skip
    for mode, values in result.seconds_per_kick.items():
        value = result.median(mode)
        ratios = " | ".join(f"{result.median(r) / value:.1f}×" for r in refs)
        rows.append(f"| {mode_label(result, mode, default)} | {value:.3f} | "
                    f"{', '.join(f'{x:.3f}' for x in values)} | {1 / value:.1f} | {ratios} | "
                    f"{result.peak_mb.get(mode, 0.0):.0f} |")  # fmt: skip
    return rows


def baseline_section(result: BenchResult, default: str) -> list[str]:
    """The subsection "Against the baseline checkpoints": this run's s per kick beside the
    baseline's, per mode of the default setting, and issue 20's target (none without a baseline)."""
    c = result.config
    pairs = [(f"batch {b}", f"{default}, batch {b}") for b in c.batches] + [("single", f"{default}, single")]  # fmt: skip
    pairs = [(label, mode) for label, mode in pairs if f"baseline {mode}" in result.seconds_per_kick]  # fmt: skip
    if not pairs:
        return []
    change = {label: result.median(mode) / result.median(f"baseline {mode}") - 1.0 for label, mode in pairs}  # fmt: skip
    lines = ["", "### Against the baseline checkpoints", "",
             f"The checkpoints in `{c.baseline}` (the models before a change), timed with the same calls in the same "
             f"rounds, right after this run's {default} modes. Change = this run / baseline − 1 (+ slower, − faster).", "",
             "| mode | this run, s per kick | baseline, s per kick | change |", "| --- | --- | --- | --- |"]  # fmt: skip
    for label, mode in pairs:
        lines.append(f"| {label} | {result.median(mode):.3f} | {result.median(f'baseline {mode}'):.3f} | "
                     f"{100 * change[label]:+.1f} % |")  # fmt: skip
    batch = f"batch {16 if 16 in c.batches else c.batches[0]}"
    if batch in change:
        lines += ["", f"- Per kick against the baseline (`{c.baseline}`), {batch}: {100 * change[batch]:+.1f} % "
                      f"(target at most +{100 * BASELINE_SLOWDOWN_LIMIT:.0f} %: "
                      f"{'met' if change[batch] <= BASELINE_SLOWDOWN_LIMIT else 'not met'})."]  # fmt: skip
    return lines


def render_markdown(result: BenchResult, command: str) -> str:
    """BENCHMARKS.md: the machine, the command, the figures."""
    c = result.config
    settings = c.settings()
    default = setting_name(*settings[0])
    ref_sizes = result.median("reference sizes")
    weights = (
        f"the checkpoints in `{c.checkpoints}`"
        if c.checkpoints
        else "random weights of the shipped sizes"
    )
    lines = [
        "# kickgen benchmarks",
        "",
        "Generated by `kickgen bench` (kickgen/evaluation/bench.py); every figure below comes from",
        "the run recorded here. Reproduce with:",
        "",
        "```bash",
        command,
        "```",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in result.machine.items()],
        "",
        "The machine is shared; its load average is part of the record. All warm modes run interleaved",
        "in one process, so they see the same load, and the figures are medians over the rounds; round",
        f"r renders the kicks of seeds r·{ROUND_SEEDS} on, so each round times other kicks.",
        "",
        f"## Generation speed ({weights})",
        "",
        f"Guidance {c.cfg_scale}, prompt {c.prompt!r}, HiFi-GAN vocoder, {c.rounds} rounds, {c.threads or 'default'} "
        "torch thread(s). Parameters (millions): "
        + ", ".join(f"{k} {v:.2f}" for k, v in result.params.items())
        + ".",
        "",
        *speed_table(result, default),
    ]
    lines += baseline_section(result, default)
    if result.cold:
        lines += ["", "### Cold CLI: process start to WAV written", "",
                  "`python -m kickgen generate --prompt ... --output x.wav` in a fresh process (imports, three",
                  "checkpoint loads, one kick, WAV write).", "",
                  "| setting | median s | runs s | peak RSS MiB |", "| --- | --- | --- | --- |"]  # fmt: skip
        for name, runs in result.cold.items():
            secs = [r["seconds"] for r in runs]
            lines.append(f"| {name} | {statistics.median(secs):.2f} | {', '.join(f'{x:.2f}' for x in secs)} | "
                         f"{max(r['peak_mb'] for r in runs):.0f} |")  # fmt: skip
    if result.stages:
        lines += ["", "### Where the time goes (s per kick, one run)", "",
                  "| mode | text | sampler | VAE decode | vocoder | total |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for mode, t in result.stages.items():
            total = sum(t.values())
            cells = " | ".join(
                f"{t[k]:.4f} ({100 * t[k] / total:.0f} %)"
                for k in ("text", "sampler", "vae", "vocoder")
            )
            lines.append(f"| {mode} | {cells} | {total:.3f} |")
    if result.agreement:
        lines += ["", "### Solver agreement", "",
                  f"Log-mel distance (dB, floored 80 dB below the peak) of {c.agreement} kicks to the same seeds' "
                  "kicks from DDIM 200 steps, which stands for the exact solution of the sampling ODE (same U-Net, "
                  "same starting noise). A setting that strays no further than DDIM 50 keeps its quality.", "",
                  "| setting | mean dB to DDIM 200 | median dB |", "| --- | --- | --- |"]  # fmt: skip
        for name, values in result.agreement.items():
            lines.append(
                f"| {name} | {statistics.fmean(values):.3f} | {statistics.median(values):.3f} |"
            )
    batch_key = (
        f"{default}, batch 16"
        if f"{default}, batch 16" in result.seconds_per_kick
        else f"{default}, batch {c.batches[0]}"
    )
    single = result.median(f"{default}, single")
    batch = result.median(batch_key)
    lines += ["", "### Acceptance (issue 21)", ""]
    code = result.seconds_per_kick.get("reference code")
    if code:
        code = result.median("reference code")
        agree = ref_sizes / code - 1.0
        lines += [
            f"- Warm throughput, {batch_key}: {batch:.3f} s per kick, **{code / batch:.1f}×** the reference's own "
            f"code ({code:.3f} s per kick; target ≥ {THROUGHPUT_TARGET:.0f}×: "
            f"{'met' if code / batch >= THROUGHPUT_TARGET else 'not met'}).",
            f"- The rebuilt reference mode at its published sizes takes {ref_sizes:.3f} s per kick, "
            f"**{100 * agree:+.0f} %** against the reference's own code (target within ±{100 * REBUILD_TOLERANCE:.0f} %: "
            f"{'met' if abs(agree) <= REBUILD_TOLERANCE else 'not met'}).",
        ]  # fmt: skip
    else:
        lines.append(
            f"- Warm throughput, {batch_key}: {batch:.3f} s per kick, **{ref_sizes / batch:.1f}×** the rebuilt "
            "reference mode at its published sizes (the reference's own code was not run: "
            "`--reference-code DIR`)."
        )
    lines.append(
        f"- Single-kick warm latency at the default settings ({default}, guidance {c.cfg_scale}): **{single:.3f} s** "
        f"(target ≤ {LATENCY_TARGET_S} s: {'met' if single <= LATENCY_TARGET_S else 'not met'} under this load)."
    )  # fmt: skip
    if len(settings) > 1:
        fast = setting_name(*settings[1])
        fast_single = result.median(f"{fast}, single")
        lines.append(f"- The fast setting ({fast}): single kick {fast_single:.3f} s, "
                     f"{fast} batch {c.batches[0]} {result.median(f'{fast}, batch {c.batches[0]}'):.3f} s per kick.")  # fmt: skip
    if len(settings) > 1 and "DDIM 50" in result.agreement:
        fast, ddim50 = result.agreement[setting_name(*settings[1])], result.agreement["DDIM 50"]
        lines.append(
            f"- {setting_name(*settings[1])} strays {statistics.fmean(fast):.3f} dB from DDIM 200, DDIM 50 "
            f"{statistics.fmean(ddim50):.3f} dB (target: no further: "
            f"{'met' if statistics.fmean(fast) <= statistics.fmean(ddim50) else 'not met'})."
        )
    lines += [
        "",
        "The reference's own code (`--reference-code DIR`, its `pytorch/` folder fetched outside this",
        "repository) runs in a warm process of its own (kickgen/evaluation/reference_driver.py): one",
        "`generate()` call per kick, random weights at its default sizes written with its own classes,",
        "its `import torchaudio` met by an empty module (only its Griffin-Lim fallback calls it).",
        "The rebuilt reference mode stands in for it where that code is not at hand, in a warm worker",
        "process of its own as well: per kick it loads all three checkpoints into freshly built models,",
        "samples at batch 1 with the conditional and unconditional U-Net passes one after the other at",
        "every step, decodes and vocodes (torch's default memory layout, as the reference). Published",
        "sizes: VAE 32→256 channels, latent 4 (4.25 M parameters; published 4.2 M), U-Net widths 64,",
        "128, 224 (5.86 M, the published 5.9 M; kickgen's block design at the published widths 64, 128,",
        "256 has 7.2 M and runs slower), HiFi-GAN 256 initial channels,",
        "upsampling 8·8·2·2·2 (3.66 M; published 3.7 M). The row with kickgen's own model sizes shows the",
        "method's cost without the size difference.",
        "kickgen's batched mode loads once, runs guidance as one batched U-Net pass over the whole",
        f"batch (2 × batch rows), only at timesteps {GUIDANCE_FROM:g} · T < t ≤ {GUIDANCE_UNTIL:g} · T",
        "(the other steps run the conditional pass alone; the reference guides every step), and",
        "decodes the batch in one VAE call; HiFi-GAN runs clip by clip on the CPU.",
    ]
    if result.griffin_lim:
        lines += [
            "",
            "## Griffin-Lim fallback",
            "",
            "On a synthetic kick (165 → 45 Hz sweep, 0.35 s decay, 4 ms noise click): log-mel L1 of the",
            "rebuilt audio against the input log-mel (lower is better), spectral convergence against the",
            "true STFT magnitude, and the same L1 for the log-mel with N(0, 0.5) noise added (like a VAE's",
            "imperfect output, which the pseudo-inverse turns into negative powers).",
            "",
            "| recipe | log-mel L1 | spectral convergence | noisy log-mel L1 | seconds |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, m in result.griffin_lim.items():
            lines.append(
                f"| {name} | {m['log_mel_l1']:.3f} | {m['spectral_convergence']:.3f} | "
                f"{m['noisy_log_mel_l1']:.3f} | {m['seconds']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def command_line(config: BenchConfig) -> str:
    """The command that reproduces a run of ``config``, every setting spelled out."""
    cmd = (f"kickgen bench --batch {','.join(map(str, config.batches))} --steps {config.steps} "
           f"--fast-sampler {config.fast_sampler} --fast-steps {config.fast_steps} --rounds {config.rounds} "
           f"--reference-kicks {config.reference_kicks} --cold-runs {config.cold_runs} "
           f"--agreement {config.agreement}")  # fmt: skip
    if config.threads:
        cmd += f" --threads {config.threads}"
    if config.checkpoints is not None:
        cmd += f" --checkpoints {config.checkpoints}"
    if config.reference_code is not None:
        cmd += f" --reference-code {config.reference_code}"
    if config.baseline is not None:
        cmd += f" --baseline {config.baseline}"
    return cmd + ("" if config.griffin_lim else " --no-griffin-lim")
