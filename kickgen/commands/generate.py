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
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kickgen.commands.common import (
    FORMATS,
    GENERATIONS_DIR,
    add_best_of_argument,
    add_checkpoints_argument,
    add_hygiene_arguments,
    add_output_arguments,
    check_free_space,
    check_readable,
    check_sampling_values,
    hygiene_from_args,
    plan_outputs,
    prepare_output_dir,
    remove_dirs,
    resolve_checkpoint_args,
    stage_kick,
)
from kickgen.errors import CommandError

__all__ = ["FORMATS", "GENERATIONS_DIR", "add_generate_arguments", "register", "run_generate"]


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """The guide's generation flags and kickgen's additions, shared by both entry points."""

    parser.add_argument(
        "-p",
        "--prompt",
        default="",
        help='text prompt keywords, e.g. "punchy 808" (default: unconditional)',
    )
    parser.add_argument(
        "--cfg-scale",
        type=float,
        default=3.0,
        help="guidance scale, 0 to 20; 1 = no guidance (default 3.0)",
    )
    parser.add_argument(
        "--steps", type=int, default=50, help="sampler steps, 1 to 200 (default 50)"
    )
    parser.add_argument(
        "-s",
        "--seed",
        type=int,
        default=None,
        help="random seed; kick i uses seed + i (default: random)",
    )
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="a .wav file, or a directory for auto-named files (default: generations/kick_<keywords>_s<seed>.wav)",
    )
    add_checkpoints_argument(parser)
    parser.add_argument(
        "--diffusion-ckpt",
        type=Path,
        default=None,
        help="diffusion checkpoint file (default: from the folder)",
    )
    parser.add_argument(
        "--vae-ckpt", type=Path, default=None, help="VAE checkpoint file (default: from the folder)"
    )
    parser.add_argument(
        "--vocoder-ckpt",
        type=Path,
        default=None,
        help="HiFi-GAN checkpoint file (default: from the folder; the guide's checkpoints/vocoder.pt is accepted as an alias of vocoder_epoch_50.pt)",
    )
    parser.add_argument(
        "--no-vocoder",
        action="store_true",
        help="use Griffin-Lim instead of HiFi-GAN (lower quality)",
    )
    parser.add_argument("-n", "--num", type=int, default=1, help="number of kicks (default 1)")
    parser.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default="float32",
        help="WAV sample format (default float32)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps (default auto)",
    )
    parser.add_argument(
        "--sampler",
        choices=("ddim", "dpm"),
        default="ddim",
        help="ddim (the reference's) or dpm (DPM-Solver++ 2M, good at ~20 steps)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=16,
        help="kicks per batched sampler run, 1 to 92 (default 16)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_generate_producer_arguments(parser)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generate", help="generate kicks from the checkpoints", description=__doc__.split("\n\n")[0]
    )
    add_generate_arguments(p)
    p.set_defaults(func=run_generate)

    v = subparsers.add_parser("vocab", help="list the keywords a diffusion checkpoint understands")
    add_checkpoints_argument(v, "the checkpoints")
    v.add_argument(
        "--diffusion-ckpt",
        type=Path,
        default=None,
        help="diffusion checkpoint file (default: from the folder)",
    )
    v.set_defaults(func=run_vocab)


# --------------------------------------------------------------------------- checks


def check_generate_args(args: argparse.Namespace) -> None:
    """Every user error of ``generate`` as one line, before anything is loaded or written."""
    if args.num < 1:
        raise CommandError(f"-n/--num {args.num}: ask for at least 1 kick")
    check_sampling_values(args, args.steps, "--steps", count=args.num)
    resolve_checkpoint_args(args)
    directory, _ = plan_outputs(
        args.output, args.num
    )  # a bad --output fails here, before any loading
    rows = min(args.batch_size * getattr(args, "best_of", 1), args.num)  # a recipe holds its batch
    recipe = 1024 + rows * (48 + len(args.prompt.encode("utf-8", "replace")))
    extra = 3 * recipe if getattr(args, "sidecar", False) else 0
    extra += 512 * 1024 if getattr(args, "plot", False) else 0  # a PNG of waveform and mel
    check_free_space(directory, args.num, args.format or "float32", recipe, extra)


# --------------------------------------------------------------------------- commands


def open_run(args: argparse.Namespace, count: int):
    """What both ``generate`` paths start with, after their checks: the pipeline for the checked
    checkpoint files, the prompt (unknown words reported on stderr), the first of ``count`` seeds,
    and the output plan ``(directory, paths or None, created directories)``."""
    from kickgen.pipeline import SEED_RANGE, KickPipeline, resolve_device
    from kickgen.producer.kicks import resolve_seed

    if args.seed is not None and not 0 <= args.seed <= SEED_RANGE - count:
        raise CommandError(f"--seed {args.seed}: use a whole number from 0 to {SEED_RANGE - count}")
    pipe = KickPipeline.from_checkpoints(args.diffusion_ckpt, args.vae_ckpt,
                                         None if args.no_vocoder else args.vocoder_ckpt, resolve_device(args.device))  # fmt: skip
    info = pipe.parse_prompt(args.prompt)
    if info.warning_text():
        print(f"kickgen: warning: {info.warning_text()}", file=sys.stderr)
    seed = resolve_seed(args.seed, count)
    directory, paths = plan_outputs(args.output, args.num)
    return pipe, info, seed, directory, paths, prepare_output_dir(directory)


def run_generate(args: argparse.Namespace) -> int:
    """Generate ``--num`` kicks and write them; prints each written path on stdout."""
    if producer_requested(args):  # --init-audio, --best-of, --plot, hygiene flags ...
        return run_producer_generate(args)
    check_generate_args(args)
    from kickgen.output import auto_output_path, variant_tag

    pipe, info, seed, directory, paths, created = open_run(args, args.num)
    try:
        out = PlainRun(pipe, args, seed)  # its seeds now, its kicks batch by batch as written
        if paths is None:
            variant = variant_tag(args.cfg_scale, args.steps, args.sampler)
            paths = [auto_output_path(info, s, variant, directory) for s in out.seeds]
        write_all(paths, out, FORMATS[args.format])
    except BaseException:
        remove_dirs(created)
        raise
    for path, s in zip(paths, out.seeds, strict=True):
        print(path)
        if not args.quiet:
            print(f"  seed {s}", file=sys.stderr)
    return 0


@dataclass
class PlainRun:
    """The kicks of a plain ``generate``: its ``seeds`` at once, then ``(waveform (88200,),
    recipe)`` pairs made batch by batch (``--batch-size``) as they are iterated, with the progress
    bar; only one batch is held in memory, however many kicks are asked for. The batches are the
    ones a single ``pipe(prompt, n, ...)`` call runs, so the kicks and recipes are the same."""

    pipe: Any
    args: argparse.Namespace
    seed: int

    @property
    def seeds(self) -> list[int]:
        return list(range(self.seed, self.seed + self.args.num))

    def __iter__(self) -> Iterator[tuple[Any, dict]]:
        from kickgen.producer.recall import plain_recipes  # every WAV carries its recipe

        a, size = self.args, self.args.batch_size
        for first, count, callback in in_chunks(a, -(-a.num // size) * a.steps):
            out = self.pipe(a.prompt, n=count, seed=self.seed + first, cfg_scale=a.cfg_scale,
                            steps=a.steps, sampler=a.sampler, batch_size=size, callback=callback,
                            warn_unknown=False)  # fmt: skip
            recipes = plain_recipes(self.pipe, a.prompt, out.seeds, a.cfg_scale, a.steps,
                                    a.sampler, size, a.format)  # fmt: skip
            yield from zip(out.waveforms, recipes, strict=True)


def in_chunks(
    args: argparse.Namespace, total_steps: int | None
) -> Iterator[tuple[int, int, Callable[[int, int], None]]]:
    """The chunks that both ``generate`` paths make and write one at a time, so that only one is
    held in memory: ``(first kick, kick count, sampler callback)`` for each ``--batch-size`` kicks
    of ``--num``, under one progress bar over ``total_steps`` sampler steps (None: a count)."""
    from kickgen.progress import Progress

    size = args.batch_size
    with Progress(total_steps, f"generating {args.num} kick(s)", disable=args.quiet) as bar:
        for first in range(0, args.num, size):

            def callback(done: int, _total: int, before: int = bar.count) -> None:
                bar.update(before + done - bar.count)  # done: this chunk's steps so far

            yield first, min(size, args.num - first), callback


def write_all(paths: list[Path], kicks: Iterable[tuple[Any, dict | None]], subtype: str) -> None:
    """Write each kick ``(waveform (88200,), recipe or None)`` as it comes (a run's batches are
    made while this writes): all of them or none (:class:`kickgen.output.OutputTransaction`: a
    failure leaves the folder as it was, files it would have replaced included).

    A kick with a recipe carries it in LIST/INFO (``kickgen regenerate`` reads it).
    """
    from kickgen.audio import write_wav
    from kickgen.output import OutputTransaction
    from kickgen.producer.recall import write_kick

    fmt = {v: k for k, v in FORMATS.items()}[subtype]
    with OutputTransaction() as out:
        for path, (wave, recipe) in zip(paths, kicks, strict=True):
            if recipe is None:
                write_wav(out.stage(path), wave, subtype=subtype)
            else:
                write_kick(out.stage(path), wave.numpy(), recipe, fmt)
        out.commit()


# --------------------------------------------------------------------------- producer options


def add_generate_producer_arguments(parser: argparse.ArgumentParser) -> None:
    """The producer options of ``kickgen generate``."""
    g = parser.add_argument_group("producer options")
    g.add_argument(
        "--init-audio",
        type=Path,
        default=None,
        help="make variations of this kick (audio-to-audio)",
    )
    g.add_argument(
        "--strength",
        type=float,
        default=None,
        help="with --init-audio: 0 keeps the kick, 1 ignores it (default 0.5)",
    )
    add_best_of_argument(g)
    add_output_arguments(g, default_format=None, sample_rate=False)
    add_hygiene_arguments(parser)


def producer_requested(args: argparse.Namespace) -> bool:
    """True when ``generate`` was given any producer option."""
    return bool(
        getattr(args, "init_audio", None) is not None or getattr(args, "strength", None) is not None
        or getattr(args, "best_of", 1) != 1 or getattr(args, "plot", False) or getattr(args, "sidecar", False)
        or (hasattr(args, "fade") and hygiene_from_args(args) is not None)
    )  # fmt: skip


def run_producer_generate(args: argparse.Namespace) -> int:
    """``kickgen generate`` with producer options (same outputs and naming as the plain path)."""
    check_generate_args(args)
    if args.strength is not None and args.init_audio is None:
        raise CommandError("--strength needs --init-audio FILE (the kick to vary)")
    strength = 0.5 if args.strength is None else args.strength
    if args.init_audio is None:
        strength = 1.0
    elif not 0.0 <= strength <= 1.0:
        raise CommandError(f"--strength {strength}: use 0 (keep the kick) to 1 (ignore it)")
    if args.best_of < 1:
        raise CommandError(f"--best-of {args.best_of}: use 1 or more candidates per kick")
    hygiene = hygiene_from_args(args)
    from kickgen.output import auto_output_path, variant_tag
    from kickgen.producer.engine import ProducerError, load_init_audio
    from kickgen.producer.kicks import generate_kicks

    if args.init_audio is not None:
        try:
            load_init_audio(args.init_audio)
        except ProducerError as exc:
            raise CommandError(f"--init-audio: {exc}") from exc
    pipe, info, seed, directory, paths, created = open_run(args, args.num * args.best_of)
    # A chunk of --batch-size kicks has --batch-size x best-of rows: whole batches of the full
    # run, whose kicks and recipes are therefore the same.
    made = []  # (path, seed, note) of each kick written
    try:
        import warnings

        from kickgen.output import OutputTransaction

        with warnings.catch_warnings(), OutputTransaction() as out:
            warnings.simplefilter("ignore")  # unknown words were reported above
            for first, count, callback in in_chunks(args, None):
                kicks = generate_kicks(
                    pipe, args.prompt, n=count, seed=seed + first * args.best_of, cfg_scale=args.cfg_scale,
                    steps=args.steps, sampler=args.sampler, hygiene=hygiene, best_of=args.best_of,
                    init_audio=args.init_audio, strength=strength, batch_size=args.batch_size,
                    callback=callback,
                )  # fmt: skip
                if paths is not None:
                    names = paths[first : first + count]
                else:
                    variant = variant_tag(args.cfg_scale, args.steps, args.sampler, init=args.init_audio,
                                          strength=args.init_audio and strength, best_of=args.best_of if args.best_of > 1 else None,
                                          hygiene=hygiene)  # fmt: skip
                    names = [auto_output_path(info, k.seed, variant, directory) for k in kicks]
                for path, kick in zip(names, kicks, strict=True):
                    stage_kick(out, path, kick, args.format, 44100, args.sidecar, args.plot)
                    checks = f"{sum(kick.checks.values())}/{len(kick.checks)} checks"
                    note = f" (best of {kick.candidates}: {checks})" if kick.checks else ""
                    made.append((path, kick.seed, note))
            out.commit()
    except ProducerError as exc:
        remove_dirs(created)
        raise CommandError(str(exc)) from exc
    except BaseException:
        remove_dirs(created)
        raise
    for path, kick_seed, note in made:
        print(path)
        if not args.quiet:
            print(f"  seed {kick_seed}{note}", file=sys.stderr)
    return 0


def run_vocab(args: argparse.Namespace) -> int:
    """Print the diffusion checkpoint's vocabulary, one keyword per line."""
    from kickgen import checkpoints
    from kickgen.weights import DIFFUSION_NAME, find_checkpoint_dir

    path = (
        args.diffusion_ckpt
        or find_checkpoint_dir(args.checkpoints, ("diffusion",))[0] / DIFFUSION_NAME
    )
    check_readable(path, "diffusion")
    for word in checkpoints.load_checkpoint(path, "diffusion")["vocab"]:
        print(word)
    return 0
