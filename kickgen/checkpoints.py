"""Inference checkpoints: atomic save, safe load (``weights_only=True``), one-line errors.

The three files keep the seed guide's contents, plus a ``kind`` and a ``format_version``:

- VAE ``vae_epoch_100.pt``: ``{"kind": "vae", "model_state_dict", "config": VAEConfig, ...}``
- diffusion ``diffusion_step_100000.pt``: ``{"kind": "diffusion", "vocab": list[str],
  "config": DiffusionConfig, "ema_state_dict", "text_enc_state_dict", ...}``
- vocoder ``vocoder_epoch_50.pt``: ``{"kind": "vocoder", "generator" (weight-normed state),
  "config": VocoderConfig, ...}``

Configs are dataclasses registered with ``torch.serialization.add_safe_globals``, so kickgen
loads every file with ``weights_only=True`` while the guide's ``weights_only=False`` snippet and
its attribute access (``cfg.latent_dim``) keep working. Training state (optimisers,
discriminators, RNG) never goes into these files; see ``kickgen.train``.
"""

from __future__ import annotations

import dataclasses
import glob
import inspect
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from kickgen.errors import KickgenError
from kickgen.models.autoencoder import KickVAE, VAEConfig
from kickgen.models.diffusion import DiffusionConfig, LatentUNet, NoiseScheduler
from kickgen.models.text_encoder import KeywordEncoder
from kickgen.models.vocoder import HiFiGANGenerator, VocoderConfig
from kickgen.weights import DIFFUSION_NAME, VAE_NAME, VOCODER_NAME

ModelT = TypeVar("ModelT", bound=torch.nn.Module)

FORMAT_VERSION = 1
VAE_FILENAME = VAE_NAME  # the seed guide's file names (kickgen.weights)
DIFFUSION_FILENAME = DIFFUSION_NAME
VOCODER_FILENAME = VOCODER_NAME

# kind → keys the file must hold (the guide's contents)
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "vae": ("model_state_dict", "config"),
    "diffusion": ("vocab", "config", "ema_state_dict", "text_enc_state_dict"),
    "vocoder": ("generator", "config"),
}
CONFIG_TYPES: dict[str, type] = {
    "vae": VAEConfig,
    "diffusion": DiffusionConfig,
    "vocoder": VocoderConfig,
}

torch.serialization.add_safe_globals([VAEConfig, DiffusionConfig, VocoderConfig])


class CheckpointError(KickgenError):
    """A checkpoint is missing, unreadable, or not the kind that was expected."""


# --------------------------------------------------------------------------- saving


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (True when that cannot be told: on Windows,
    where ``os.kill`` would end it, or for another user's process)."""
    if os.name == "nt":
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporaries ``.NAME.<pid>.tmp`` of :func:`atomic_save` beside ``path`` whose
    process is gone (a ``kill -9`` in the middle of a save leaves one); returns what was removed.
    A save in progress in a live process keeps its file."""
    path = Path(path)
    own = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.tmp$")
    removed = []
    for name in glob.glob(glob.escape(str(path.parent / f".{path.name}.")) + "*.tmp"):
        m = own.match(Path(name).name)
        if m and not process_alive(int(m[1])):
            try:
                os.unlink(name)
            except OSError:  # removed meanwhile, or not ours to remove
                continue
            removed.append(Path(name))
    return removed


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temp file beside ``path``, fsync, then ``os.replace`` (never a half file).
    Temporaries that killed processes left for ``path`` are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _cpu_state(
    module_or_state: torch.nn.Module | dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    state = (
        module_or_state.state_dict()
        if isinstance(module_or_state, torch.nn.Module)
        else module_or_state
    )
    return {k: v.detach().to("cpu").clone() for k, v in state.items()}


def save_vae(path: str | Path, vae: KickVAE, **extra: Any) -> Path:
    """Write a VAE inference checkpoint (config from ``vae.config``); ``extra``: e.g. epoch, metrics."""
    ckpt = {
        "kind": "vae",
        "format_version": FORMAT_VERSION,
        "model_state_dict": _cpu_state(vae),
        "config": dataclasses.replace(vae.config),
        **extra,
    }
    return atomic_save(ckpt, path)


def save_diffusion(
    path: str | Path,
    ema_model: LatentUNet | dict[str, torch.Tensor],
    text_encoder: KeywordEncoder | dict[str, torch.Tensor],
    vocab: list[str],
    config: DiffusionConfig,
    **extra: Any,
) -> Path:
    """Write a diffusion inference checkpoint: EMA U-Net, text encoder, vocabulary and config."""
    ckpt = {
        "kind": "diffusion",
        "format_version": FORMAT_VERSION,
        "vocab": list(vocab),
        "config": dataclasses.replace(config),
        "ema_state_dict": _cpu_state(ema_model),
        "text_enc_state_dict": _cpu_state(text_encoder),
        **extra,
    }
    return atomic_save(ckpt, path)


def save_vocoder(
    path: str | Path, generator: HiFiGANGenerator, config: VocoderConfig, **extra: Any
) -> Path:
    """Write a vocoder inference checkpoint. The generator must still carry weight norm (the guide
    loads the state, then calls ``remove_weight_norm()``)."""
    state = generator.state_dict()
    if not any(".parametrizations.weight." in k for k in state):
        raise ValueError(
            "save_vocoder needs the weight-normed generator (save before remove_weight_norm())"
        )
    ckpt = {
        "kind": "vocoder",
        "format_version": FORMAT_VERSION,
        "generator": _cpu_state(state),
        "config": dataclasses.replace(config),
        **extra,
    }
    return atomic_save(ckpt, path)


# --------------------------------------------------------------------------- loading


def load_checkpoint(
    path: str | Path, kind: str, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint dict safely and check it is a ``kind`` ("vae", "diffusion", "vocoder") file.

    Raises :class:`CheckpointError` with one line naming the file and what was expected.
    """
    path = Path(path)
    what = f"a kickgen {kind} checkpoint"
    if not path.exists():
        raise CheckpointError(f"{path}: file not found; expected {what} (train or download one)")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory; expected {what} file")
    check_archive(path, what)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, unsafe globals: all mean "not usable"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise CheckpointError(
                f"{path}: holds objects that cannot be loaded safely (weights_only=True); expected {what}"
            ) from exc
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt: {reason[:120]}); expected {what}"
        ) from exc
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path}: holds a {type(ckpt).__name__}, not a dict; expected {what}")
    found = ckpt.get("kind")
    if found is not None and found != kind:
        raise CheckpointError(f"{path}: is a kickgen {found} checkpoint; expected {what}")
    missing = [k for k in REQUIRED_KEYS[kind] if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: lacks {', '.join(missing)}; expected {what}")
    if not isinstance(ckpt["config"], CONFIG_TYPES[kind]):
        raise CheckpointError(
            f"{path}: config is a {type(ckpt['config']).__name__}, expected {CONFIG_TYPES[kind].__name__} ({what})"
        )
    version = ckpt.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {version} is newer than this kickgen reads ({FORMAT_VERSION}); upgrade kickgen"
        )
    config = ckpt["config"]
    for name, value in fill_added_fields(vars(config), type(config)).items():
        setattr(config, name, value)  # a file saved before a field existed keeps its old value
    check_config(config, path)
    for key in STATE_KEYS[kind]:
        _check_state(ckpt[key], path, key)
    if kind == "diffusion":
        vocab = ckpt["vocab"]
        if (
            not isinstance(vocab, list)
            or not all(isinstance(w, str) for w in vocab)
            or not 0 < len(vocab) <= MAX_VOCAB
        ):
            raise CheckpointError(
                f"{path}: vocab is not a list of 1 to {MAX_VOCAB} keywords; expected {what}"
            )
    return ckpt


# --------------------------------------------------------------------------- validation

MAX_CHECKPOINT_BYTES = 512 * 2**20  # the shipped files hold 4 to 12 MB
# The members torch.save writes into its zip archive, under one folder named after the file.
ARCHIVE_MEMBER = re.compile(
    r"(data\.pkl|byteorder|version|\.format_version|\.storage_alignment|data/\d+|\.data/[a-z_]+)"
)


def check_archive(path: Path, what: str) -> None:
    """Check the zip archive ``torch.save`` wrote before ``torch.load`` inflates it: the members
    it writes and no others, stored (torch never compresses them), and declared sizes that fit
    inside the file, so loading takes no more memory than the file's size (a few KB of deflated
    zeros must not become 2 GiB). Raises :class:`CheckpointError`."""
    import zipfile

    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{path}: {size} bytes is more than the {MAX_CHECKPOINT_BYTES // 2**20} MiB a kickgen checkpoint holds; expected {what}"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        reason = str(exc).strip().splitlines()[0][:80] if str(exc).strip() else "not a zip archive"
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt: {reason}); expected {what}"
        ) from exc
    roots = {m.filename.split("/", 1)[0] for m in members}
    declared = 0
    for m in members:
        inner = m.filename.split("/", 1)[1] if "/" in m.filename else ""
        if len(roots) != 1 or not ARCHIVE_MEMBER.fullmatch(inner):
            raise CheckpointError(
                f"{path}: holds {_short(m.filename)}, which torch.save never writes; the file is damaged or not from kickgen"
            )
        if m.compress_type != zipfile.ZIP_STORED or m.compress_size != m.file_size:
            raise CheckpointError(
                f"{path}: {_short(m.filename)} is compressed, which torch.save never does; the file is damaged or not from kickgen"
            )
        declared += m.file_size
        if m.header_offset + m.file_size > size or declared > size:
            raise CheckpointError(
                f"{path}: {_short(m.filename)} declares more bytes than the file holds; the file is damaged or not from kickgen"
            )


STATE_KEYS: dict[str, tuple[str, ...]] = {  # kind → the weight tables it holds
    "vae": ("model_state_dict",),
    "diffusion": ("ema_state_dict", "text_enc_state_dict"),
    "vocoder": ("generator",),
}
MAX_VOCAB = 100_000
# Allowed ranges of config fields, by name (the three configs share names). A field not listed
# gets the defaults below; every value must also have its default's type.
FIELD_RANGES: dict[str, tuple[float, float]] = {
    "latent_dim": (1, 256),
    "time_fold": (1, 4),
    "channels": (1, 1024),  # each stage
    "norm_groups": (1, 256),
    "base_channels": (1, 1024),
    "channel_mult": (1, 8),
    "cond_dim": (1, 4096),
    "text_embed_dim": (1, 4096),
    "timesteps": (1, 10_000),
    "beta_start": (1e-8, 0.5),
    "beta_end": (1e-8, 0.999),
    "in_channels": (1, 1024),
    "upsample_initial_channel": (1, 2048),
    "upsample_rates": (1, 64),
    "upsample_kernel_sizes": (1, 128),
    "resblock_kernel_sizes": (1, 63),
    "resblock_dilations": (1, 64),
    "istft_n_fft": (0, 4096),
    "source_harmonics": (0, 64),
    "refine_iters": (0, 100_000),
    "noise_phase_hz": (0.0, 22050.0),
    "time_scale": (1e-3, 1e4),
    "segment_samples": (1, 10_000_000),
}
# Architecture fields added to the configs after files had been saved: a file without one was built
# without it, so it gets the value that matches (today's default may differ). Inference settings
# (refine_iters, noise_phase_hz) are not listed: a file without them takes today's defaults.
FIELDS_ADDED: dict[str, Any] = {"time_fold": 1, "noise_source": False, "time_scale": 1.0}


def fill_added_fields(values: dict[str, Any], cls: type) -> dict[str, Any]:
    """A saved config's ``values`` with each :data:`FIELDS_ADDED` field of ``cls`` that they lack
    set to the value it had before the field existed (checkpoint files and resumed runs)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {**{k: v for k, v in FIELDS_ADDED.items() if k in names and k not in values}, **values}


DEFAULT_INT_RANGE = (0, 100_000)
DEFAULT_FLOAT_RANGE = (-1e6, 1e6)
MAX_SEQUENCE = 16  # stages, branches, dilations
CHOICES = {"prediction_type": ("v", "epsilon")}


def check_config(config: Any, path: str | Path) -> None:
    """Check every field of a model config has its default's type and a sane range, before any
    model is built (a 12 MB file must not ask for 16 GB). Raises :class:`CheckpointError`."""
    for f in dataclasses.fields(config):
        value, default = getattr(config, f.name), f.default
        problem = _field_problem(f.name, value, default)
        if problem:
            raise CheckpointError(
                f"{path}: config {type(config).__name__}.{f.name} = {_short(value)} {problem}; "
                "the file is damaged or not from kickgen"
            )


def _field_problem(name: str, value: Any, default: Any, depth: int = 0) -> str | None:
    if isinstance(default, tuple):
        if not isinstance(value, (tuple, list)) or not 1 <= len(value) <= MAX_SEQUENCE:
            return f"is not a list of 1 to {MAX_SEQUENCE} values"
        inner = default[0] if default else 0
        for v in value:
            problem = _field_problem(name, v, inner, depth + 1)
            if problem:
                return problem
        return None
    if name in CHOICES:
        return None if value in CHOICES[name] else f"is not one of {', '.join(CHOICES[name])}"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "is not true or false"
    if isinstance(default, int):
        if not isinstance(value, int) or isinstance(value, bool):
            return "is not a whole number"
        lo, hi = FIELD_RANGES.get(name, DEFAULT_INT_RANGE)
        return None if lo <= value <= hi else f"is outside {lo:g} to {hi:g}"
    if isinstance(default, float):
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            return "is not a finite number"
        lo, hi = FIELD_RANGES.get(name, DEFAULT_FLOAT_RANGE)
        return None if lo <= value <= hi else f"is outside {lo:g} to {hi:g}"
    if isinstance(default, str):
        return None if isinstance(value, str) and len(value) < 100 else "is not a short text"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_state(state: Any, path: Path, key: str) -> None:
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(
            f"{path}: {key} is a {type(state).__name__}, not a table of named tensors; "
            "the file is damaged or not from kickgen"
        )


def _load_state(
    module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, kind: str
) -> None:
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(
            f"{path}: weights do not fit the {kind} model its config describes ({first})"
        ) from exc


def _build_fitting(build, config: Any, state: dict[str, torch.Tensor], path: Path, kind: str):
    """``build(config)`` with ``state`` loaded. The model is first built on the meta device (no
    memory), so a config that does not fit its weights is refused, naming the first key that
    differs, before anything is allocated."""
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in build(config).state_dict().items()}
    except (ValueError, TypeError, AssertionError, RuntimeError, ZeroDivisionError) as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: its {kind} config describes no valid model ({reason})"
        ) from exc
    for key, shape in shapes.items():
        if key not in state:
            raise CheckpointError(
                f"{path}: weights do not fit the {kind} model its config describes (no {key})"
            )
        if tuple(state[key].shape) != shape:
            raise CheckpointError(
                f"{path}: weights do not fit the {kind} model its config describes ({key} has "
                f"shape {tuple(state[key].shape)}, the config asks for {shape})"
            )
    extra = sorted(set(state) - set(shapes))
    if extra:
        raise CheckpointError(
            f"{path}: weights do not fit the {kind} model its config describes ({extra[0]} has no place)"
        )
    module = build(config)
    _load_state(module, state, path, kind)
    return module


def _from_config(model_class: Callable[..., ModelT], config: Any) -> ModelT:
    """``model_class`` with random weights, each constructor argument taken from the ``config``
    field of its name (lists as tuples: the constructors take tuples)."""
    names = inspect.signature(model_class).parameters
    return model_class(**{name: _as_tuples(getattr(config, name)) for name in names})


def _as_tuples(value: Any) -> Any:
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def build_vae(config: VAEConfig) -> KickVAE:
    """A KickVAE with the architecture of ``config`` (random weights)."""
    return _from_config(KickVAE, config)


def build_unet(config: DiffusionConfig) -> LatentUNet:
    """A LatentUNet with the architecture of ``config`` (random weights)."""
    return _from_config(LatentUNet, config)


def build_vocoder(config: VocoderConfig) -> HiFiGANGenerator:
    """A weight-normed HiFiGANGenerator with the architecture of ``config`` (random weights)."""
    return _from_config(HiFiGANGenerator, config)


def _device(device: str | torch.device | None) -> torch.device:
    return torch.device("cpu") if device is None else torch.device(device)


def load_vae(path: str | Path, device: str | torch.device | None = None) -> KickVAE:
    """Load a VAE checkpoint → KickVAE in eval mode on ``device`` (default CPU)."""
    ckpt = load_checkpoint(path, "vae")
    vae = _build_fitting(build_vae, ckpt["config"], ckpt["model_state_dict"], Path(path), "vae")
    return vae.to(_device(device)).eval()


def load_diffusion(
    path: str | Path, device: str | torch.device | None = None
) -> tuple[LatentUNet, KeywordEncoder, NoiseScheduler, list[str], DiffusionConfig]:
    """Load a diffusion checkpoint → (EMA U-Net, text encoder, scheduler, vocab, config), eval mode."""
    path = Path(path)
    ckpt = load_checkpoint(path, "diffusion")
    cfg: DiffusionConfig = ckpt["config"]
    vocab = [str(w) for w in ckpt["vocab"]]
    model = _build_fitting(build_unet, cfg, ckpt["ema_state_dict"], path, "diffusion U-Net")
    text_enc = _build_fitting(
        lambda c: KeywordEncoder(len(vocab), c.text_embed_dim, c.cond_dim),
        cfg, ckpt["text_enc_state_dict"], path, "keyword encoder",
    )  # fmt: skip
    dev = _device(device)
    scheduler = NoiseScheduler(cfg.timesteps, cfg.beta_start, cfg.beta_end).to(dev)
    return model.to(dev).eval(), text_enc.to(dev).eval(), scheduler, vocab, cfg


def load_vocoder(path: str | Path, device: str | torch.device | None = None) -> HiFiGANGenerator:
    """Load a vocoder checkpoint → HiFiGANGenerator with weight norm removed, eval mode."""
    ckpt = load_checkpoint(path, "vocoder")
    gen = _build_fitting(build_vocoder, ckpt["config"], ckpt["generator"], Path(path), "vocoder")
    gen.remove_weight_norm()
    return gen.to(_device(device)).eval()


# --------------------------------------------------------------------------- test / benchmark weights

DEFAULT_TEST_VOCAB = [
    "808",
    "909",
    "deep",
    "punchy",
    "short",
    "long",
    "distorted",
    "acoustic",
    "kick",
]


def write_random_checkpoints(
    directory: str | Path,
    seed: int = 0,
    diffusion_config: DiffusionConfig | None = None,
    vocab: list[str] | None = None,
) -> dict[str, Path]:
    """Write seeded random-weight checkpoints under the guide's three names in ``directory``.

    For tests and benchmarks. VAE and vocoder are the default (shipped) sizes, so the guide's
    snippet rebuilds them; the U-Net follows ``diffusion_config`` (e.g.
    ``DiffusionConfig(base_channels=16)`` for a tiny one: keep ``channel_mult`` at its default
    if the guide's snippet, which passes only three arguments, must load it).
    Returns ``{"vae": path, "diffusion": path, "vocoder": path}``.
    """
    directory = Path(directory)
    cfg = diffusion_config or DiffusionConfig()
    vocab = list(DEFAULT_TEST_VOCAB if vocab is None else vocab)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        vae = build_vae(VAEConfig(latent_dim=cfg.latent_dim))
        unet = build_unet(cfg)
        # conv_out starts at zero (standard for training); give it small random weights so that
        # random checkpoints produce non-trivial outputs
        torch.nn.init.normal_(unet.conv_out.weight, std=0.02)
        text_enc = KeywordEncoder(len(vocab), cfg.text_embed_dim, cfg.cond_dim)
        voc_cfg = VocoderConfig()
        generator = build_vocoder(voc_cfg)
    return {
        "vae": save_vae(directory / VAE_FILENAME, vae, epoch=0, random_weights=True),
        "diffusion": save_diffusion(
            directory / DIFFUSION_FILENAME, unet, text_enc, vocab, cfg, step=0, random_weights=True
        ),
        "vocoder": save_vocoder(
            directory / VOCODER_FILENAME, generator, voc_cfg, epoch=0, random_weights=True
        ),
    }
