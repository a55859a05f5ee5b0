"""Command-line plumbing that ``kickgen generate`` and the producer commands (``morph``,
``regenerate``, ``pack``) share: argument groups (model, sampling, hygiene), their checks, the
checkpoint files a run uses, loading the pipeline, output folders and all-or-nothing writing.

Both command modules import this one; neither imports the other.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kickgen.errors import CommandError

FORMATS = {"float32": "FLOAT", "pcm16": "PCM_16", "pcm24": "PCM_24"}  # --format → WAV subtype
GENERATIONS_DIR = Path("generations")

# --------------------------------------------------------------------------- arguments


def add_value_argument(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    kind: Callable[[str], Any],
    default: Any,
    text: str,
) -> None:
    """``flag`` with one value read by ``kind``, ``default`` when absent; the help is ``text``
    followed by ``(default DEFAULT)``."""
    parser.add_argument(flag, type=kind, default=default, help=f"{text} (default {default})")


def add_hygiene_arguments(parser: argparse.ArgumentParser, default_on: bool = False) -> None:
    """Hygiene flags; any of them turns hygiene on (``--hygiene`` with the defaults)."""
    g = parser.add_argument_group(
        "one-shot hygiene" + (" (on by default)" if default_on else " (off unless asked for)")
    )
    if default_on:
        g.add_argument(
            "--no-hygiene",
            action="store_true",
            help="keep the reference output stage (1.0-1.75 s cubic fade, 0.95 peak)",
        )
    else:
        g.add_argument(
            "--hygiene",
            action="store_true",
            help="onset at the start, no DC, decay-aware fade, 0.95 peak",
        )
    g.add_argument(
        "--fade",
        choices=("decay", "reference", "none"),
        default=None,
        help="tail fade: decay (default: from the kick's -40 dB point), reference (1.0-1.75 s cubic) or none",
    )
    g.add_argument(
        "--normalize",
        choices=("peak", "lufs", "none"),
        default=None,
        help="level: peak (default, 0.95), lufs (see --lufs) or none",
    )
    g.add_argument("--peak", type=float, default=None, help="peak target, linear (default 0.95)")
    g.add_argument(
        "--true-peak",
        action="store_true",
        help="normalise the 4x oversampled (true) peak instead of the sample peak",
    )
    g.add_argument(
        "--lufs",
        type=float,
        default=None,
        help="integrated loudness target in LUFS (BS.1770); implies --normalize lufs (default -22)",
    )
    g.add_argument(
        "--ceiling",
        type=float,
        default=None,
        help="true-peak ceiling in dBTP for --normalize lufs (default -1)",
    )
    for flag, text in (
        ("--trim", "cut the silent tail (files shorter than 2 s)"),
        ("--no-align", "leave the onset where the model put it"),
        ("--no-dc", "skip DC removal (median offset and 10 Hz high-pass)"),
    ):
        g.add_argument(flag, action="store_true", help=text)
    g.add_argument(
        "--key",
        default=None,
        metavar="NOTE",
        help="tune each kick's body to the nearest octave of NOTE (F, F#, Bb ...), click kept",
    )


def hygiene_from_args(args: argparse.Namespace, default_on: bool = False):
    """The :class:`HygieneConfig` the flags ask for, or None for the reference output stage."""
    from kickgen.producer.hygiene import HygieneConfig, HygieneError

    asked = any(
        [getattr(args, "hygiene", False), args.fade, args.normalize, args.peak is not None, args.true_peak,
         args.lufs is not None, args.ceiling is not None, args.trim, args.no_align, args.no_dc,
         getattr(args, "key", None) is not None]
    )  # fmt: skip
    if default_on and getattr(args, "no_hygiene", False):
        if asked:
            raise CommandError(
                "--no-hygiene cannot be combined with hygiene flags: drop one of them"
            )
        return None
    if not (asked or default_on):
        return None
    level = args.normalize or ("lufs" if args.lufs is not None else "peak")
    if args.lufs is not None and level != "lufs":
        raise CommandError(f"--lufs {args.lufs} needs --normalize lufs (or no --normalize)")
    kwargs = {
        "level": level,
        "fade": args.fade or "decay",
        "trim": args.trim,
        "align_onset": not args.no_align,
        "dc_hz": None if args.no_dc else 10.0,
        "true_peak": args.true_peak,
        "key": getattr(args, "key", None),
    }
    if args.lufs is not None:
        kwargs["lufs"] = args.lufs
    if args.peak is not None:
        kwargs["peak"] = args.peak
    if args.ceiling is not None:
        kwargs["ceiling_dbtp"] = args.ceiling
    cfg = HygieneConfig(**kwargs)
    try:
        cfg.check()
    except HygieneError as exc:
        raise CommandError(str(exc)) from exc
    return cfg


def add_output_arguments(
    parser,
    default_format: str | None = "float32",
    sample_rate: bool = True,
    sidecar_help: str = "also write each kick's recipe as FILE.json",
) -> None:
    """``--format`` (unless ``default_format`` is None), ``--sample-rate``, ``--plot``, ``--sidecar``."""
    if default_format is not None:
        parser.add_argument("--format", choices=sorted(FORMATS), default=default_format,
                            help=f"WAV sample format (default {default_format})")  # fmt: skip
    if sample_rate:
        parser.add_argument(
            "--sample-rate", type=int, choices=(44100, 48000), default=44100, help="(default 44100)"
        )
    parser.add_argument(
        "--plot",
        action="store_true",
        help="PNG of waveform and mel beside each WAV (needs matplotlib)",
    )
    parser.add_argument("--sidecar", action="store_true", help=sidecar_help)


def add_best_of_argument(parser) -> None:
    parser.add_argument("--best-of", type=int, default=1,
                        help="candidates per kick; keep the one passing the most sanity checks")  # fmt: skip


def add_checkpoints_argument(
    parser: argparse.ArgumentParser, holding: str = "the three checkpoints"
) -> None:
    """``--checkpoints DIR``, the folder with ``holding``; absent, kickgen's lookup order."""
    from kickgen.weights import LOOKUP_HELP

    parser.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"folder with {holding} (default: {LOOKUP_HELP})",
    )


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoints_argument(parser)
    parser.add_argument(
        "--no-vocoder", action="store_true", help="use Griffin-Lim instead of HiFi-GAN"
    )
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_sampling_arguments(
    parser: argparse.ArgumentParser, steps_flag: str = "--steps", prompt: bool = True
) -> None:
    if prompt:
        parser.add_argument(
            "-p", "--prompt", default="", help='text prompt keywords, e.g. "punchy 808"'
        )
    parser.add_argument(
        "--cfg-scale", type=float, default=3.0, help="guidance scale, 0 to 20 (default 3.0)"
    )
    parser.add_argument(
        steps_flag,
        dest="sample_steps",
        type=int,
        default=50,
        metavar="STEPS",
        help="sampler steps, 1 to 200 (default 50)",
    )
    parser.add_argument(
        "--sampler", choices=("ddim", "dpm"), default="ddim", help="ddim or dpm (default ddim)"
    )
    parser.add_argument(
        "-s", "--seed", type=int, default=None, help="random seed (default: random)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=16,
        help="kicks per batched sampler run, 1 to 92 (default 16)",
    )


def check_sampling_values(
    args: argparse.Namespace, steps: int, steps_label: str, count: int = 1
) -> None:
    """One-line errors for the sampling flags: ``steps`` (given as ``steps_label``), ``--cfg-scale``,
    ``--batch-size`` and ``--seed`` (seeds seed … seed + count − 1 must fit)."""
    from kickgen.pipeline import MAX_CFG_SCALE, SEED_RANGE
    from kickgen.producer.recall import MAX_ROWS, MAX_STEPS

    if not 1 <= steps <= MAX_STEPS:  # a recipe of more steps would not regenerate
        raise CommandError(f"{steps_label} {steps}: use 1 to {MAX_STEPS} (50 is the default)")
    if not 0 <= args.cfg_scale <= MAX_CFG_SCALE:  # also rejects NaN and inf
        raise CommandError(
            f"--cfg-scale {args.cfg_scale}: use 0 to {MAX_CFG_SCALE:g} (3.0 is the default; 1 = no guidance)"
        )
    if not 1 <= args.batch_size <= MAX_ROWS:  # each kick's recipe holds its whole batch
        raise CommandError(f"--batch-size {args.batch_size}: use 1 to {MAX_ROWS}")
    if args.seed is not None and not 0 <= args.seed <= SEED_RANGE - count:
        raise CommandError(f"--seed {args.seed}: use a whole number from 0 to {SEED_RANGE - count}")


# Bytes of a 2 s WAV at 44.1 kHz besides its samples: header, PEAK chunk, LIST/INFO title and
# software; the recipe comes on top (:func:`check_free_space`).
WAV_OVERHEAD = 1024
SAMPLE_BYTES = {"float32": 4, "pcm16": 2, "pcm24": 3}


def check_free_space(
    directory: Path, count: int, fmt: str, recipe_bytes: int, extra_bytes: int = 0
) -> None:
    """Refuse, before anything is made, ``count`` kicks that the disk holding ``directory`` has no
    room for: every file of a run is on disk (staged) before any is put in place. Each kick is a
    2 s WAV of ``fmt`` with a recipe of about ``recipe_bytes``, plus ``extra_bytes`` (sidecar, plot)."""
    import shutil

    from kickgen.audio import NUM_SAMPLES

    existing = Path(directory).absolute()
    while not existing.exists():  # the folder is made later; its disk is a parent's
        existing = existing.parent
    usage = shutil.disk_usage(existing)
    if usage.total == 0:  # a pseudo-filesystem (/proc, /sys) has no size: the write says what fails
        return
    free = usage.free
    need = count * (NUM_SAMPLES * SAMPLE_BYTES[fmt] + WAV_OVERHEAD + recipe_bytes + extra_bytes)
    if need > free:
        raise CommandError(
            f"{directory}: {count} kicks need about {need / 2**20:,.0f} MiB and only {free / 2**20:,.0f} MiB "
            "are free there: ask for fewer kicks (-n) or free some space"
        )


def check_sampling_args(args: argparse.Namespace) -> None:
    """The sampling flags of ``morph`` and ``pack`` (:func:`add_sampling_arguments`)."""
    check_sampling_values(args, args.sample_steps, "--steps")


def load_pipeline(args: argparse.Namespace):
    """The pipeline from ``--checkpoints`` or kickgen's lookup order (one-line errors for missing files)."""
    from kickgen.pipeline import KickPipeline, resolve_device
    from kickgen.weights import find_checkpoints

    files = find_checkpoints(args.checkpoints, use_vocoder=not args.no_vocoder)
    return KickPipeline.from_checkpoints(
        files.diffusion, files.vae, files.vocoder, device=resolve_device(args.device)
    )


def bar_callback(bar):
    """A ``callback(done, total)`` that drives a :class:`~kickgen.progress.Progress` bar."""

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.count)

    return update


# --------------------------------------------------------------------------- checkpoints and outputs


def check_readable(path: Path, what: str) -> None:
    if not path.exists():
        raise CommandError(f"{what} checkpoint {path} not found: pass its path with --{what}-ckpt")
    if not path.is_file():
        raise CommandError(
            f"{what} checkpoint {path} is not a file: pass the .pt file with --{what}-ckpt"
        )
    if not os.access(path, os.R_OK):
        raise CommandError(f"cannot read {what} checkpoint {path}: check its permissions")


def prepare_output_dir(directory: Path) -> list[Path]:
    """Create ``directory`` if needed and prove it writable with a probe file.

    Returns the directories it created (for :func:`remove_dirs` if the run fails); raises
    :class:`CommandError` naming the directory when it cannot be written, leaving nothing behind.
    """
    missing: list[Path] = []
    probe = directory
    while not probe.exists() and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    if not probe.is_dir():
        raise CommandError(
            f"cannot write into {directory}: {probe} is not a directory; choose another --output"
        )
    created: list[Path] = []
    try:
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        remove_dirs(created)
        raise CommandError(
            f"cannot write into {directory}: {exc.strerror or exc}; choose another --output"
        ) from exc
    return created


def remove_dirs(created: list[Path]) -> None:
    """Remove directories made by :func:`prepare_output_dir` when they are still empty."""
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            pass


def plan_outputs(output: Path | None, n: int) -> tuple[Path, list[Path] | None]:
    """``(directory, explicit file paths or None for auto names)`` for ``--output`` and ``n`` kicks."""
    if output is None:
        return GENERATIONS_DIR, None
    as_dir = output.is_dir() or str(output).endswith(("/", os.sep)) or output.suffix == ""
    if as_dir:
        return output, None
    if output.suffix.lower() != ".wav":
        raise CommandError(f"--output {output}: give a .wav file or a directory")
    if n == 1:
        return output.parent, [output]
    width = len(str(n - 1))
    return output.parent, [
        output.with_name(f"{output.stem}_{i:0{width}d}{output.suffix}") for i in range(n)
    ]


def resolve_checkpoint_args(args: argparse.Namespace) -> None:
    """Set ``args.diffusion_ckpt``, ``vae_ckpt`` and ``vocoder_ckpt`` (None with --no-vocoder) to
    the files this run uses: named files as given, the others by kickgen's lookup order."""
    from kickgen.weights import find_checkpoints

    files = find_checkpoints(args.checkpoints, args.diffusion_ckpt, args.vae_ckpt, args.vocoder_ckpt,
                             use_vocoder=not args.no_vocoder)  # fmt: skip
    for part, path in files.parts().items():
        if part == "vocoder" and path is None:
            continue
        if files.origins[part] == "file" and not path.exists():
            extra = " or --no-vocoder for Griffin-Lim" if part == "vocoder" else ""
            raise CommandError(
                f"{part} checkpoint {path} not found: pass its path with --{part}-ckpt{extra}"
            )
        check_readable(path, part)
    args.diffusion_ckpt, args.vae_ckpt, args.vocoder_ckpt = (
        files.diffusion,
        files.vae,
        files.vocoder,
    )
    args.no_vocoder = files.vocoder is None


def write_outputs(paths, kicks, fmt: str, sample_rate: int, sidecar: bool, plot: bool) -> None:
    """Write kicks (their sidecars and plots): all of them or none, so a failure leaves the
    folder as it was (:class:`kickgen.output.OutputTransaction`)."""
    from kickgen.output import OutputTransaction

    with OutputTransaction() as out:
        for path, kick in zip(paths, kicks, strict=True):
            stage_kick(out, path, kick, fmt, sample_rate, sidecar, plot)
        out.commit()


def stage_kick(
    out, path: Path, kick, fmt: str, sample_rate: int, sidecar: bool, plot: bool
) -> None:
    """Write one kick (and its ``.json`` and ``.png`` when asked) to names staged in ``out``."""
    from kickgen.producer.recall import write_kick, write_sidecar

    write_kick(out.stage(path), kick.wave, kick.recipe, fmt, sample_rate)
    if sidecar:
        write_sidecar(
            out.stage(path.with_suffix(".json")),
            {**kick.recipe, "format": fmt, "sample_rate": sample_rate},
        )
    if plot:
        from kickgen.producer.plot import plot_kick

        prompt = kick.recipe["rows"][kick.recipe["index"]].get("prompt", "")
        plot_kick(kick.wave, out.stage(path.with_suffix(".png")), f"{prompt}  seed {kick.seed}")
