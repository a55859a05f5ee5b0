"""What every training run shares: device and torchrun/DDP setup, deterministic batches,
resumable state saved atomically (periodically and on SIGTERM/SIGINT), EMA, LR schedule, logging.

Determinism: the examples of step ``s`` and every random draw inside it come from generators
seeded by (seed, step, rank), so a run resumed from its state repeats exactly the steps an
uninterrupted run would have taken.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.distributed as dist
import torch.nn as nn

from kickgen.checkpoints import atomic_save, remove_stale_temporaries
from kickgen.errors import KickgenError
from kickgen.progress import Progress

STATE_FILENAME = "train_state.pt"
STATE_KEYS = {  # what a training state must hold, per model type
    "vae": ("step", "config", "model", "opt", "sched"),
    "diffusion": ("step", "config", "vocab", "model", "ema", "opt", "sched"),
    "vocoder": (
        "step",
        "config",
        "generator",
        "discriminator",
        "opt_g",
        "opt_d",
        "sched_g",
        "sched_d",
    ),
}


class TrainingError(KickgenError):
    """A training run cannot start or continue (bad corpus, missing state, wrong run directory)."""


# --------------------------------------------------------------------------- device / distributed


@dataclass
class Runtime:
    """Where this process runs: device, and its place among torchrun's processes."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_runtime(device: str | None = None, threads: int = 0) -> Runtime:
    """Pick the device (CUDA when present, else CPU; ``device`` overrides) and join torchrun's group.

    Under ``torchrun --nproc_per_node N`` (env WORLD_SIZE > 1) this initialises the process group:
    nccl on CUDA, gloo on CPU. ``threads`` > 0 caps torch's intra-op threads (shared CPUs).
    """
    if threads > 0:
        torch.set_num_threads(threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device in (None, "", "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("--device cuda: no CUDA device is available; use --device cpu")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Runtime(dev, rank, world, local_rank)


def shutdown_runtime(rt: Runtime) -> None:
    if rt.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap_ddp(model: nn.Module, rt: Runtime) -> nn.Module:
    """DistributedDataParallel under torchrun, the model itself otherwise."""
    if not rt.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [rt.device.index] if rt.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def all_reduce_mean(value: torch.Tensor, rt: Runtime) -> torch.Tensor:
    if rt.distributed:
        value = value.clone()
        dist.all_reduce(value)
        value /= rt.world_size
    return value


def replicas_identical(model: nn.Module, rt: Runtime) -> bool:
    """True when every process holds bit-identical parameters (always true for one process)."""
    flat = torch.cat(
        [p.detach().reshape(-1).double().cpu() for p in unwrap(model).state_dict().values()]
    )
    if not rt.distributed:
        return True
    gathered = [torch.zeros_like(flat) for _ in range(rt.world_size)]
    dist.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])


# --------------------------------------------------------------------------- determinism


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """A seed unique to (seed, step, rank), stable across runs and resumes."""
    return (seed * 1_000_003 + step * 7_919 + rank * 104_729) % (2**63 - 1)


def batch_indices(n: int, batch_size: int, step: int, seed: int, rt: Runtime) -> torch.Tensor:
    """Indices of this process's share of the global batch of ``step``.

    Epoch e visits a permutation seeded by (seed, e) in order; the global batch of ``step`` is the
    slice [step·B, (step+1)·B) of the concatenated epochs, and rank r takes every world_size-th item.
    """
    start = step * batch_size
    out = []
    while len(out) < batch_size:
        epoch, offset = divmod(start + len(out), n)
        perm = torch.randperm(
            n, generator=torch.Generator().manual_seed(step_seed(seed, epoch, 97))
        )
        take = min(batch_size - len(out), n - offset)
        out.extend(perm[offset : offset + take].tolist())
    return torch.tensor(out[rt.rank :: rt.world_size], dtype=torch.long)


def lr_lambda(warmup_steps: int, max_steps: int, final_fraction: float):
    """Linear warm-up, then cosine decay to ``final_fraction`` of the peak at ``max_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


# --------------------------------------------------------------------------- starting from weights


def copy_matching(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> list[str]:
    """Copy the tensors of ``state`` whose names and shapes match ``module``'s (``init_from``:
    a new run, a grown architecture or a producer's own library, starts from trained weights).
    Returns the names that kept their fresh initialisation; prints what was copied."""
    own = module.state_dict()
    same = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    module.load_state_dict(same, strict=False)
    fresh = sorted(set(own) - set(same))
    listed = f": {', '.join(fresh)}" if fresh else ""
    print(f"init from {source}: {len(same)} tensors copied, {len(fresh)} fresh{listed}")
    return fresh


# --------------------------------------------------------------------------- EMA


class EMA:
    """Exponential moving average of a module's parameters and buffers (warm-up: (1+s)/(10+s))."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(unwrap(model)).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        src = unwrap(model).state_dict()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(src[k].detach(), alpha=1 - d)
            else:
                v.copy_(src[k])


# --------------------------------------------------------------------------- stop signals


class StopFlag:
    """Turns SIGTERM/SIGINT into a flag the loop checks after each step (state is then saved)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. inside a test runner thread)
                pass
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = signum

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def should_stop(self, rt: Runtime) -> bool:
        """Any process signalled → all stop at the same step."""
        flag = torch.tensor([1.0 if self.signal is not None else 0.0])
        if rt.distributed:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item() > 0)


# --------------------------------------------------------------------------- training state


def save_state(run_dir: Path, state: dict[str, Any], rt: Runtime) -> Path | None:
    """Write ``run_dir/train_state.pt`` atomically (main process only)."""
    if not rt.is_main:
        return None
    return atomic_save(
        {"kind": "train_state", "saved_at": time.time(), **state}, run_dir / STATE_FILENAME
    )


class PeriodicSaver:
    """Saves the training state every ``every_s`` seconds, at ``max_steps`` and when stopping."""

    def __init__(self, run_dir: Path, every_s: float, max_steps: int, stop_at: int, rt: Runtime):
        self.run_dir, self.every_s, self.max_steps, self.stop_at, self.rt = (
            run_dir, every_s, max_steps, stop_at, rt
        )  # fmt: skip
        self.last_save = time.monotonic()

    def after_step(self, step: int, snapshot: Callable[[], dict[str, Any]], stop: StopFlag) -> bool:
        """Save if due; True when the loop must end (signal or ``stop_at``), state then saved."""
        stopping = stop.should_stop(self.rt) or 0 < self.stop_at <= step
        due = time.monotonic() - self.last_save > self.every_s or step == self.max_steps
        if stopping or due:
            save_state(self.run_dir, snapshot(), self.rt)
            self.last_save = time.monotonic()
        if stopping and self.rt.is_main:
            print(
                f"kickgen: stopped at step {step}; state saved in {self.run_dir}; continue with --resume",
                flush=True,
            )
        return stopping


def read_tensors(path: Path, what: str, advice: str) -> Any:
    """``torch.load(path)`` of tensors and plain values only (``weights_only=True``); a file that
    cannot be read raises :class:`TrainingError` naming ``what`` it is and the ``advice``."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(
            f"{path}: {what} is unreadable ({type(exc).__name__}); {advice}"
        ) from exc


def load_state(run_dir: Path, model_type: str) -> dict[str, Any]:
    """Read a run's training state (``weights_only=True``) and check it belongs to ``model_type``."""
    path = run_dir / STATE_FILENAME
    remove_stale_temporaries(path)  # a save cut short by kill -9
    if not path.exists():
        raise TrainingError(f"{path}: no training state to resume; start without --resume")
    state = read_tensors(path, "training state", "start a new run")
    if not isinstance(state, dict):
        raise TrainingError(
            f"{path}: holds a {type(state).__name__}, not a training state; start a new run"
        )
    if state.get("kind") != "train_state" or state.get("model_type") != model_type:
        raise TrainingError(
            f"{path}: holds a {state.get('model_type')} run, not {model_type}; pick another --run-dir"
        )
    missing = [k for k in STATE_KEYS[model_type] if k not in state]
    if missing:
        raise TrainingError(f"{path}: training state lacks {', '.join(missing)}; start a new run")
    step = state["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise TrainingError(
            f"{path}: training state has step {step!r}, not a count; start a new run"
        )
    if not isinstance(state["config"], dict):
        raise TrainingError(f"{path}: training state's config is not a table; start a new run")
    return state


def restore(
    state: dict[str, Any],
    parts: dict[str, Any],
    model_cfg: Any,
    run_dir: Path,
    tied: Sequence[str] = (),
) -> None:
    """``part.load_state_dict(state[key])`` for each ``key: part`` (modules, optimisers,
    schedulers). ``tied``: the model flags the saved weights mean nothing without although they
    load (a diffusion model's noise schedule and time scale); a run resumed with one of them
    changed is refused before anything loads. When the saved weights do not fit, the error names
    the model flags whose values differ from the saved run's (architecture changed on
    ``--resume``)."""
    saved = state["config"].get(type(model_cfg).__name__, {})
    now = dataclasses.asdict(model_cfg)

    def refuse(changed: list[str], why: str, cause: Exception | None = None) -> NoReturn:
        because = f"{', '.join(changed)} changed" if changed else why
        raise TrainingError(
            f"{run_dir / STATE_FILENAME}: cannot resume, {because}; resume with the run's own "
            "settings (drop those flags) or start a new --run-dir"
        ) from cause

    def changed(keys: Iterable[str]) -> list[str]:
        return [
            f"--{k.replace('_', '-')} (run: {_flag(saved[k])}, now: {_flag(now[k])})"
            for k in keys
            if k in saved and k in now and _plain(saved[k]) != _plain(now[k])
        ]

    moved = changed(tied)
    if moved:
        refuse(moved, "")
    for key, part in parts.items():
        try:
            part.load_state_dict(state[key])
        except (RuntimeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            refuse(changed(now), f"{key} does not fit this model", exc)


def _flag(value: Any) -> str:
    """A config value as its flag is written (``8,16,32``)."""
    return ",".join(_flag(v) for v in value) if isinstance(value, (list, tuple)) else str(value)


def _plain(value: Any) -> Any:
    """Tuples and lists compare equal (a saved config holds lists)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


# --------------------------------------------------------------------------- logging


@dataclass
class Logger:
    """Scalars to ``run_dir/log.jsonl`` always, and to TensorBoard when it is installed."""

    run_dir: Path
    enabled: bool = True
    _tb: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tb"))
        except ImportError:  # the train extra is not installed: jsonl only
            self._tb = None

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.run_dir / "log.jsonl", "a") as fh:
            fh.write(json.dumps({"step": step, "time": round(time.time(), 1), **values}) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(k, v, step)

    def spectrograms(self, step: int, tag: str, log_mels: torch.Tensor) -> None:
        """(N, 128, T) log-mels as one image: TensorBoard and ``run_dir/{tag}_{step}.png`` (matplotlib)."""
        if not self.enabled:
            return
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return
        n = log_mels.shape[0]
        fig, axes = plt.subplots(1, n, figsize=(2.2 * n, 2.4), squeeze=False)
        for ax, mel in zip(axes[0], log_mels.detach().cpu().float(), strict=True):
            ax.imshow(mel.numpy(), origin="lower", aspect="auto", vmin=-11.5, vmax=10)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        if self._tb is not None:
            self._tb.add_figure(tag, fig, step, close=False)
        fig.savefig(self.run_dir / f"{tag.replace('/', '_')}_{step:07d}.png", dpi=60)
        plt.close(fig)

    def audio(self, step: int, tag: str, waves: torch.Tensor, sample_rate: int) -> None:
        """(N, L) waveforms to TensorBoard (when installed)."""
        if self.enabled and self._tb is not None:
            for i, w in enumerate(waves.detach().cpu().float()):
                self._tb.add_audio(f"{tag}/{i}", w.clamp(-1, 1), step, sample_rate=sample_rate)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


# --------------------------------------------------------------------------- run start and loop


class RunLoop:
    """What a training loop runs with, from ``step`` to ``cfg.max_steps``: the log, the progress
    bar, training-state saves (every ``cfg.save_every_s``) and stop signals.

    ``stop_at`` > 0 ends the loop there (state saved) while the schedules still run to
    ``max_steps``. Use as ``with RunLoop(...) as loop:``, then ``return loop.finish(step, model)``.
    """

    def __init__(
        self, cfg: Any, rt: Runtime, run_dir: Path, name: str, step: int, stop_at: int = 0
    ):
        self.rt, self.name, self.max_steps, self.start_step = rt, name, cfg.max_steps, step
        self.seed, self.batch_size = cfg.seed, cfg.batch_size
        self.log = Logger(run_dir, enabled=rt.is_main)
        self._saver = PeriodicSaver(run_dir, cfg.save_every_s, cfg.max_steps, stop_at, rt)
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> RunLoop:
        self._stop = self._stack.enter_context(StopFlag())
        self.bar = self._stack.enter_context(
            Progress(
                self.max_steps, self.name, disable=not self.rt.is_main, initial=self.start_step
            )
        )
        return self

    def __exit__(self, *exc: Any) -> bool:
        return self._stack.__exit__(*exc)

    def batch(self, n: int, step: int) -> torch.Tensor:
        """This process's indices (into ``n`` examples) of the global batch of ``step``."""
        return batch_indices(n, self.batch_size, step, self.seed, self.rt)

    def step_seed(self, step: int) -> int:
        """The seed of this process's random draws in ``step``."""
        return step_seed(self.seed, step, self.rt.rank)

    def log_train(self, step: int, name: str, value: float, others: dict[str, float]) -> None:
        """Log ``train/{name}``, ``value`` averaged over the processes (all of them call), then
        this process's ``others``."""
        mean = all_reduce_mean(torch.tensor(value), self.rt).item()
        self.log.scalars(step, {f"train/{name}": mean, **others})

    def after_step(self, step: int, snapshot: Callable[[], dict[str, Any]]) -> bool:
        """Save the state if due; True when the loop must end (signal or ``stop_at``)."""
        return self._saver.after_step(step, snapshot, self._stop)

    def finish(self, step: int, *models: nn.Module) -> int:
        """After the loop: under torchrun, log whether every process holds the same ``models``;
        close the log; return ``step``."""
        if self.rt.distributed:
            same = all(replicas_identical(model, self.rt) for model in models)
            if self.rt.is_main:
                self.log.scalars(step, {"replicas_identical": float(same)})
        self.log.close()
        return step
