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

This module holds the settings (:class:`BenchConfig`), the result (:class:`BenchResult`) and the
schedule (:func:`run_bench`); the measurements are in :mod:`kickgen.evaluation.bench_measures`,
the reference's costs in :mod:`kickgen.evaluation.bench_reference` and the markdown in
:mod:`kickgen.evaluation.bench_report`.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from kickgen.evaluation.bench_measures import (
    PeakMemory,
    bench_griffin_lim,
    cold_cli,
    setting_name,
    solver_agreement,
    stage_seconds,
)
from kickgen.evaluation.bench_reference import (
    RebuiltReference,
    ReferenceCode,
    reference_code_identity,
    write_reference_size_checkpoints,
)
from kickgen.progress import Progress, progress

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


def load_average() -> str:
    """The load averages over 1, 5 and 15 minutes, as the report prints them ("n/a" without)."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


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
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "torch threads": str(torch.get_num_threads()),
        "vector instructions torch uses": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "os": platform.platform(),
        "load average (1, 5, 15 min) at start": load_average(),
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
    result.machine["load average (1, 5, 15 min) at end"] = load_average()
    return result


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
