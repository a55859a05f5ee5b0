"""``kickgen generate`` and ``kickgen vocab``.

``generate`` takes the guide's flags (``--prompt --cfg-scale --steps --seed --output
--diffusion-ckpt --vae-ckpt --vocoder-ckpt --no-vocoder``, with ``-p -s -o``) plus
``--checkpoints DIR``, ``-n/--num``, ``--format``, ``--device``, ``--sampler`` and
``--batch-size``. ``inference/generate.py`` runs the same parser. Checkpoints not named one by
one come from kickgen's lookup order (:mod:`kickgen.weights`).
Every argument is checked before any model is loaded; files are written only after all kicks are
generated, all or none: a failed write leaves the output folder as it was.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
from pathlib import Path

from kickgen.errors import CommandError

FORMATS = {"float32": "FLOAT", "pcm16": "PCM_16", "pcm24": "PCM_24"}  # --format → WAV subtype
GENERATIONS_DIR = Path("generations")


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """The guide's generation flags and kickgen's additions, shared by both entry points."""
    from kickgen.weights import LOOKUP_HELP

    parser.add_argument("-p", "--prompt", default="", help='text prompt keywords, e.g. "punchy 808" (default: unconditional)')
    parser.add_argument("--cfg-scale", type=float, default=3.0, help="guidance scale, 0 to 20; 1 = no guidance (default 3.0)")
    parser.add_argument("--steps", type=int, default=50, help="sampler steps, at least 1 (default 50)")
    parser.add_argument("-s", "--seed", type=int, default=None, help="random seed; kick i uses seed + i (default: random)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="a .wav file, or a directory for auto-named files (default: generations/kick_<keywords>_<hash>.wav)",
    )
    parser.add_argument("--checkpoints", type=Path, default=None, metavar="DIR",
                        help=f"folder with the three checkpoints (default: {LOOKUP_HELP})")  # fmt: skip
    parser.add_argument("--diffusion-ckpt", type=Path, default=None, help="diffusion checkpoint file (default: from the folder)")
    parser.add_argument("--vae-ckpt", type=Path, default=None, help="VAE checkpoint file (default: from the folder)")
    parser.add_argument(
        "--vocoder-ckpt",
        type=Path,
        default=None,
        help="HiFi-GAN checkpoint file (default: from the folder; the guide's checkpoints/vocoder.pt is accepted as an alias of vocoder_epoch_50.pt)",
    )
    parser.add_argument("--no-vocoder", action="store_true", help="use Griffin-Lim instead of HiFi-GAN (lower quality)")
    parser.add_argument("-n", "--num", type=int, default=1, help="number of kicks (default 1)")
    parser.add_argument("--format", choices=sorted(FORMATS), default="float32", help="WAV sample format (default float32)")
    parser.add_argument("--device", default="auto", help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps (default auto)")
    parser.add_argument("--sampler", choices=("ddim", "dpm"), default="ddim", help="ddim (the reference's) or dpm (DPM-Solver++ 2M, good at ~20 steps)")
    parser.add_argument("--batch-size", type=int, default=16, help="kicks per batched sampler run (default 16)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    from kickgen.commands.producer import add_generate_producer_arguments  # producer features' hook

    add_generate_producer_arguments(parser)


def register(subparsers) -> None:
    p = subparsers.add_parser("generate", help="generate kicks from the checkpoints", description=__doc__.split("\n\n")[0])
    add_generate_arguments(p)
    p.set_defaults(func=run_generate)

    from kickgen.weights import LOOKUP_HELP

    v = subparsers.add_parser("vocab", help="list the keywords a diffusion checkpoint understands")
    v.add_argument("--checkpoints", type=Path, default=None, metavar="DIR", help=f"folder with the checkpoints (default: {LOOKUP_HELP})")
    v.add_argument("--diffusion-ckpt", type=Path, default=None, help="diffusion checkpoint file (default: from the folder)")
    v.set_defaults(func=run_vocab)


# --------------------------------------------------------------------------- checks


def _check_readable(path: Path, what: str) -> None:
    if not path.exists():
        raise CommandError(f"{what} checkpoint {path} not found: pass its path with --{what}-ckpt")
    if not path.is_file():
        raise CommandError(f"{what} checkpoint {path} is not a file: pass the .pt file with --{what}-ckpt")
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
        raise CommandError(f"cannot write into {directory}: {probe} is not a directory; choose another --output")
    created: list[Path] = []
    try:
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        remove_dirs(created)
        raise CommandError(f"cannot write into {directory}: {exc.strerror or exc}; choose another --output") from exc
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
    return output.parent, [output.with_name(f"{output.stem}_{i:0{width}d}{output.suffix}") for i in range(n)]


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
            raise CommandError(f"{part} checkpoint {path} not found: pass its path with --{part}-ckpt{extra}")
        _check_readable(path, part)
    args.diffusion_ckpt, args.vae_ckpt, args.vocoder_ckpt = files.diffusion, files.vae, files.vocoder
    args.no_vocoder = files.vocoder is None


def check_generate_args(args: argparse.Namespace) -> None:
    """Every user error of ``generate`` as one line, before anything is loaded or written."""
    if args.num < 1:
        raise CommandError(f"-n/--num {args.num}: ask for at least 1 kick")
    if args.steps < 1:
        raise CommandError(f"--steps {args.steps}: use at least 1 (50 is the default)")
    from kickgen.pipeline import MAX_CFG_SCALE, SEED_RANGE

    if not 0 <= args.cfg_scale <= MAX_CFG_SCALE:  # also rejects NaN and inf
        raise CommandError(f"--cfg-scale {args.cfg_scale}: use 0 to {MAX_CFG_SCALE:g} (3.0 is the default; 1 = no guidance)")
    if args.batch_size < 1:
        raise CommandError(f"--batch-size {args.batch_size}: use at least 1")

    if args.seed is not None and not 0 <= args.seed <= SEED_RANGE - args.num:
        raise CommandError(f"--seed {args.seed}: use a whole number from 0 to {SEED_RANGE - args.num}")
    resolve_checkpoint_args(args)
    plan_outputs(args.output, args.num)  # a bad --output fails here, before any loading


# --------------------------------------------------------------------------- commands


def run_generate(args: argparse.Namespace) -> int:
    """Generate ``--num`` kicks and write them; prints each written path on stdout."""
    from kickgen.commands.producer import producer_requested, run_producer_generate

    if producer_requested(args):  # --init-audio, --best-of, --plot, hygiene flags ...
        return run_producer_generate(args)
    check_generate_args(args)
    from kickgen.pipeline import (
        SEED_RANGE,
        KickPipeline,
        auto_output_path,
        output_key,
        resolve_device,
    )
    from kickgen.progress import Progress

    device = resolve_device(args.device)
    pipe = KickPipeline.from_checkpoints(
        args.diffusion_ckpt, args.vae_ckpt, None if args.no_vocoder else args.vocoder_ckpt, device
    )
    info = pipe.parse_prompt(args.prompt)
    if info.unknown:
        print(f"kickgen: warning: {info.warning_text()}", file=sys.stderr)
    seed = args.seed if args.seed is not None else secrets.randbelow(SEED_RANGE - args.num)

    directory, paths = plan_outputs(args.output, args.num)
    created = prepare_output_dir(directory)
    try:
        batches = -(-args.num // args.batch_size)
        with Progress(batches * args.steps, f"generating {args.num} kick(s)", disable=args.quiet) as bar:
            out = pipe(
                args.prompt,
                n=args.num,
                seed=seed,
                cfg_scale=args.cfg_scale,
                steps=args.steps,
                sampler=args.sampler,
                batch_size=args.batch_size,
                callback=lambda done, total: bar.update(done - bar.count),
                warn_unknown=False,
            )
        if paths is None:
            keys = [output_key(args.prompt, s, args.cfg_scale, args.steps, pipe.sources, args.sampler)
                    for s in out.seeds]
            paths = [directory / auto_output_path(info, key).name for key in keys]
        from kickgen.producer.recall import plain_recipes  # every WAV carries its recipe

        recipes = plain_recipes(pipe, args.prompt, out.seeds, args.cfg_scale, args.steps, args.sampler,
                                args.batch_size, args.format)  # fmt: skip
        write_all(paths, out.waveforms, FORMATS[args.format], recipes)
    except BaseException:
        remove_dirs(created)
        raise
    for path, s in zip(paths, out.seeds, strict=True):
        print(path)
        if not args.quiet:
            print(f"  seed {s}", file=sys.stderr)
    return 0


def write_all(paths: list[Path], waveforms, subtype: str, recipes: list[dict] | None = None) -> None:
    """Write each waveform ``(88200,)``: all of them or none (:class:`kickgen.output.OutputTransaction`:
    a failure leaves the folder as it was, files it would have replaced included).

    With ``recipes`` each WAV carries its recipe in LIST/INFO (``kickgen regenerate`` reads it).
    """
    from kickgen.audio import write_wav
    from kickgen.output import OutputTransaction
    from kickgen.producer.recall import write_kick

    fmt = {v: k for k, v in FORMATS.items()}[subtype]
    with OutputTransaction() as out:
        for i, (path, wave) in enumerate(zip(paths, waveforms, strict=True)):
            if recipes is None:
                write_wav(out.stage(path), wave, subtype=subtype)
            else:
                write_kick(out.stage(path), wave.numpy(), recipes[i], fmt)
        out.commit()


def run_vocab(args: argparse.Namespace) -> int:
    """Print the diffusion checkpoint's vocabulary, one keyword per line."""
    from kickgen import checkpoints
    from kickgen.weights import DIFFUSION_NAME, find_checkpoint_dir

    path = args.diffusion_ckpt or find_checkpoint_dir(args.checkpoints, ("diffusion",))[0] / DIFFUSION_NAME
    _check_readable(path, "diffusion")
    for word in checkpoints.load_checkpoint(path, "diffusion")["vocab"]:
        print(word)
    return 0
