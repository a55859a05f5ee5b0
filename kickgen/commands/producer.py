"""``kickgen morph``, ``kickgen regenerate`` and ``kickgen pack`` (the producer options of
``kickgen generate`` live with it, in :mod:`kickgen.commands.generate`).

Every argument is checked before a model is loaded; files are written after all kicks exist.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kickgen.commands.common import (
    add_best_of_argument,
    add_hygiene_arguments,
    add_model_arguments,
    add_output_arguments,
    add_sampling_arguments,
    bar_callback,
    check_sampling_args,
    hygiene_from_args,
    load_pipeline,
    prepare_output_dir,
    remove_dirs,
    write_outputs,
)
from kickgen.errors import CommandError

# --------------------------------------------------------------------------- register


def register(subparsers) -> None:
    m = subparsers.add_parser("morph", help="a numbered series from A to B (two seeds, prompts or audio files)",
                              description="Morph between two seeds (--seeds, same --prompt), two prompts (--prompts, "
                              "same --seed) or two audio files (--audio).")  # fmt: skip
    ends = m.add_argument_group("the two ends (give one of these)")
    ends.add_argument(
        "--seeds", nargs=2, type=int, metavar=("A", "B"), help="two seeds, same --prompt"
    )
    ends.add_argument(
        "--prompts", nargs=2, metavar=("A", "B"), help="two prompts, same --seed: --prompts 808 909"
    )
    ends.add_argument("--audio", nargs=2, type=Path, metavar=("A", "B"), help="two audio files")
    m.add_argument("positional_ends", nargs="*", help=argparse.SUPPRESS)  # the old form: refused
    m.add_argument("--kind", default=None, help=argparse.SUPPRESS)  # the old form: refused
    m.add_argument(
        "--frames",
        type=int,
        default=8,
        help="number of kicks in the series, both ends included (default 8)",
    )
    add_sampling_arguments(m)
    # before --frames existed, morph's sampler steps were --sample-steps (and --steps counted frames)
    m.add_argument("--sample-steps", dest="sample_steps", type=int, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)  # fmt: skip
    m.add_argument(
        "--strength",
        type=float,
        default=0.0,
        help="audio morphs: 0 decodes the mixed latents (default), >0 re-denoises them with --prompt",
    )
    m.add_argument(
        "-o",
        "--output",
        "--out",
        dest="out",
        type=Path,
        default=Path("morph"),
        help="output folder (default: morph/)",
    )
    m.add_argument(
        "--name",
        default="morph",
        help="file name stem: NAME_00.wav, NAME_01.wav, ... (default morph)",
    )
    add_output_arguments(m, sidecar_help="also write the recipe as FILE.json")
    add_hygiene_arguments(m)
    add_model_arguments(m)
    m.set_defaults(func=run_morph)

    r = subparsers.add_parser("regenerate", help="re-make a kickgen WAV from the recipe it carries",
                              description="Re-make a WAV written by kickgen, bit for bit on the same device type.")  # fmt: skip
    r.add_argument(
        "file", type=Path, help="a WAV written by kickgen (recipe in LIST/INFO or FILE.json)"
    )
    r.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="where to write it (default: FILE.regen.wav beside it)",
    )
    r.add_argument(
        "--check", action="store_true", help="exit 1 unless the samples are bit-identical to FILE"
    )
    add_model_arguments(r)
    r.set_defaults(func=run_regenerate)

    p = subparsers.add_parser("pack", help="a sample pack: named WAVs, CSV manifest, SFZ mapping",
                              description="Generate N kicks per prompt line into a folder with a manifest and an SFZ mapping.")  # fmt: skip
    p.add_argument(
        "--prompts", type=Path, required=True, help="text file, one prompt per line (# comments)"
    )
    p.add_argument("-n", "--num", type=int, default=8, help="kicks per prompt (default 8)")
    p.add_argument(
        "-o",
        "--output",
        "--out",
        dest="out",
        type=Path,
        required=True,
        help="pack folder (new or empty; see --force)",
    )
    add_output_arguments(p, default_format="pcm24")
    add_best_of_argument(p)
    p.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    add_sampling_arguments(p, prompt=False)
    add_hygiene_arguments(p, default_on=True)
    add_model_arguments(p)
    p.set_defaults(func=run_pack)


# --------------------------------------------------------------------------- commands


def morph_ends(args: argparse.Namespace) -> tuple[str, object, object]:
    """``(kind, A, B)`` from ``--seeds``, ``--prompts`` or ``--audio``; the old positional form
    (``kickgen morph 808 909``, which read two numbers as seeds) is a one-line error saying which
    flag to use."""
    given = [
        (k, v)
        for k, v in (("seed", args.seeds), ("prompt", args.prompts), ("audio", args.audio))
        if v
    ]
    old = args.positional_ends
    if old or args.kind is not None:
        ends = " ".join(old) or "A B"
        raise CommandError(
            f"kickgen morph {ends}: name what the ends are: --seeds {ends} (two seeds, same --prompt), "
            f"--prompts {ends} (two prompts, same --seed) or --audio {ends} (two files); "
            "the series length is --frames"
        )
    if len(given) != 1:
        raise CommandError(
            "kickgen morph: give one pair of ends: --seeds A B, --prompts A B or --audio A B"
        )
    ((kind, (a, b)),) = given
    return kind, a, b


def run_morph(args: argparse.Namespace) -> int:
    """Write the series NAME_00.wav … into ``--out``; prints each path."""
    from kickgen.producer.engine import ProducerError
    from kickgen.producer.morph import morph, morph_rows

    kind, a, b = morph_ends(args)
    check_sampling_args(args)
    if args.frames < 2 or args.frames > 1000:
        raise CommandError(f"--frames {args.frames}: a morph needs 2 to 1000 kicks")
    if not 0.0 <= args.strength <= 1.0:
        raise CommandError(f"--strength {args.strength}: use 0 to 1")
    if (
        not args.name
        or args.name != Path(args.name).name
        or args.name in (".", "..")
        or "\\" in args.name
    ):
        raise CommandError(
            f"--name {args.name!r}: give a file name stem, without folders (use --out for the folder)"
        )
    hygiene = hygiene_from_args(args)
    try:
        # endpoint errors (unreadable files, a seed and a prompt) before any model is loaded
        morph_rows(a, b, args.frames, args.prompt, args.seed or 0, kind)
    except ProducerError as exc:
        raise CommandError(str(exc)) from exc
    from kickgen.progress import Progress

    pipe = load_pipeline(args)
    created = prepare_output_dir(args.out)
    try:
        width = max(2, len(str(args.frames - 1)))
        with Progress(None, f"morphing {args.frames} kicks", disable=args.quiet) as bar:
            kicks = morph(
                pipe, a, b, frames=args.frames, prompt=args.prompt, seed=args.seed,
                cfg_scale=args.cfg_scale, steps=args.sample_steps, sampler=args.sampler,
                strength=args.strength, hygiene=hygiene, batch_size=args.batch_size, callback=bar_callback(bar),
                kind=kind,
            )  # fmt: skip
        paths = [args.out / f"{args.name}_{k:0{width}d}.wav" for k in range(len(kicks))]
        write_outputs(paths, kicks, args.format, args.sample_rate, args.sidecar, args.plot)
    except BaseException:
        remove_dirs(created)
        raise
    for path in paths:
        print(path)
    return 0


def run_regenerate(args: argparse.Namespace) -> int:
    """Re-make FILE from its recipe; prints the new path and whether it is bit-identical."""
    from kickgen.producer.recall import read_recipe, regenerate

    recipe = read_recipe(args.file)  # a file without a recipe fails before loading models
    output = args.output or args.file.with_name(f"{args.file.stem}.regen.wav")
    if output.resolve() == args.file.resolve():
        raise CommandError(f"--output {output} is the file being regenerated: choose another path")
    pipe = load_pipeline(args)
    if recipe.get("device") and recipe["device"] != pipe.device.type:
        print(f"kickgen: warning: {args.file} was made on {recipe['device']}, regenerating on {pipe.device.type}: "
              "the last bits may differ", file=sys.stderr)  # fmt: skip
    written, same = regenerate(pipe, args.file, output)
    print(written)
    print(f"{'bit-identical to' if same else 'differs from'} {args.file}", file=sys.stderr)
    return 0 if same or not args.check else 1


def run_pack(args: argparse.Namespace) -> int:
    """Write the pack; prints the folder, the manifest and the SFZ file."""
    from kickgen.producer.pack import check_pack_args, make_pack, read_prompts
    from kickgen.progress import Progress

    check_sampling_args(args)
    if args.best_of < 1:
        raise CommandError(f"--best-of {args.best_of}: use 1 or more candidates per kick")
    hygiene = hygiene_from_args(args, default_on=True)
    prompts = read_prompts(args.prompts)
    check_pack_args(prompts, args.num, args.format, args.sample_rate)
    pipe = load_pipeline(args)
    with Progress(None, f"pack of {len(prompts) * args.num} kicks", disable=args.quiet) as bar:
        pack = make_pack(
            pipe, prompts, n=args.num, out_dir=args.out, seed=args.seed, cfg_scale=args.cfg_scale,
            steps=args.sample_steps, sampler=args.sampler, hygiene=hygiene, best_of=args.best_of,
            fmt=args.format, sample_rate=args.sample_rate, plot=args.plot, sidecar=args.sidecar,
            force=args.force, batch_size=args.batch_size, callback=bar_callback(bar),
        )  # fmt: skip
    print(pack.directory)
    print(pack.manifest)
    print(pack.sfz)
    if not args.quiet:
        print(f"  {len(pack.wavs)} kicks, seeds from {pack.seed}", file=sys.stderr)
    return 0
