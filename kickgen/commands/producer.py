"""``kickgen morph``, ``kickgen regenerate``, ``kickgen pack`` and the producer options of
``kickgen generate`` (``--init-audio --strength --best-of --plot --sidecar`` and hygiene flags).

Every argument is checked before a model is loaded; files are written after all kicks exist.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kickgen.errors import CommandError

# --------------------------------------------------------------------------- shared arguments


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
    g.add_argument(
        "--trim", action="store_true", help="cut the silent tail (files shorter than 2 s)"
    )
    g.add_argument("--no-align", action="store_true", help="leave the onset where the model put it")
    g.add_argument(
        "--no-dc", action="store_true", help="skip DC removal (median offset and 10 Hz high-pass)"
    )


def hygiene_from_args(args: argparse.Namespace, default_on: bool = False):
    """The :class:`HygieneConfig` the flags ask for, or None for the reference output stage."""
    from kickgen.producer.hygiene import HygieneConfig, HygieneError

    asked = any(
        [getattr(args, "hygiene", False), args.fade, args.normalize, args.peak is not None, args.true_peak,
         args.lufs is not None, args.ceiling is not None, args.trim, args.no_align, args.no_dc]
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


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    from kickgen.weights import LOOKUP_HELP

    parser.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"folder with the three checkpoints (default: {LOOKUP_HELP})",
    )
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
    parser.add_argument("--cfg-scale", type=float, default=3.0, help="guidance scale, 0 to 20 (default 3.0)")
    parser.add_argument(
        steps_flag, dest="sample_steps", type=int, default=50, help="sampler steps (default 50)"
    )
    parser.add_argument(
        "--sampler", choices=("ddim", "dpm"), default="ddim", help="ddim or dpm (default ddim)"
    )
    parser.add_argument(
        "-s", "--seed", type=int, default=None, help="random seed (default: random)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=16, help="kicks per batched sampler run (default 16)"
    )


def check_sampling_args(args: argparse.Namespace) -> None:
    if args.sample_steps < 1:
        raise CommandError(f"sampler steps {args.sample_steps}: use at least 1 (50 is the default)")
    from kickgen.pipeline import MAX_CFG_SCALE, SEED_RANGE

    if not 0 <= args.cfg_scale <= MAX_CFG_SCALE:  # also rejects NaN and inf
        raise CommandError(f"--cfg-scale {args.cfg_scale}: use 0 to {MAX_CFG_SCALE:g} (3.0 is the default)")
    if args.batch_size < 1:
        raise CommandError(f"--batch-size {args.batch_size}: use at least 1")

    if args.seed is not None and not 0 <= args.seed < SEED_RANGE:
        raise CommandError(f"--seed {args.seed}: use a whole number from 0 to {SEED_RANGE - 1}")


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


# --------------------------------------------------------------------------- register


def register(subparsers) -> None:
    m = subparsers.add_parser("morph", help="a numbered series from A to B (two seeds, prompts or audio files)",
                              description="Morph between two seeds (same --prompt), two prompts (same --seed) or two audio files.")  # fmt: skip
    m.add_argument("a", help="seed, prompt or audio file A")
    m.add_argument("b", help="seed, prompt or audio file B")
    m.add_argument(
        "--kind",
        choices=("seed", "prompt", "audio"),
        default=None,
        help="how to read A and B (default: two numbers are seeds, two files audio, else prompts; "
        "--kind prompt for 808 909)",
    )
    m.add_argument(
        "--steps",
        dest="frames",
        type=int,
        default=8,
        help="number of kicks in the series, both ends included (default 8)",
    )
    add_sampling_arguments(m, steps_flag="--sample-steps")
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
    m.add_argument(
        "--format",
        choices=("float32", "pcm16", "pcm24"),
        default="float32",
        help="WAV sample format (default float32)",
    )
    m.add_argument(
        "--sample-rate", type=int, choices=(44100, 48000), default=44100, help="(default 44100)"
    )
    m.add_argument(
        "--plot",
        action="store_true",
        help="PNG of waveform and mel beside each WAV (needs matplotlib)",
    )
    m.add_argument("--sidecar", action="store_true", help="also write the recipe as FILE.json")
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
    p.add_argument(
        "--format",
        choices=("float32", "pcm16", "pcm24"),
        default="pcm24",
        help="WAV sample format (default pcm24)",
    )
    p.add_argument(
        "--sample-rate", type=int, choices=(44100, 48000), default=44100, help="(default 44100)"
    )
    p.add_argument(
        "--best-of",
        type=int,
        default=1,
        help="candidates per kick; keep the one passing the most sanity checks",
    )
    p.add_argument(
        "--plot",
        action="store_true",
        help="PNG of waveform and mel beside each WAV (needs matplotlib)",
    )
    p.add_argument("--sidecar", action="store_true", help="also write each recipe as FILE.json")
    p.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    add_sampling_arguments(p, prompt=False)
    add_hygiene_arguments(p, default_on=True)
    add_model_arguments(p)
    p.set_defaults(func=run_pack)


# --------------------------------------------------------------------------- commands


def run_morph(args: argparse.Namespace) -> int:
    """Write the series NAME_00.wav … into ``--out``; prints each path."""
    from kickgen.producer.engine import ProducerError
    from kickgen.producer.morph import morph, morph_rows

    check_sampling_args(args)
    if args.frames < 2 or args.frames > 1000:
        raise CommandError(f"--steps {args.frames}: a morph needs 2 to 1000 kicks")
    if not 0.0 <= args.strength <= 1.0:
        raise CommandError(f"--strength {args.strength}: use 0 to 1")
    if not args.name or args.name != Path(args.name).name or args.name in (".", "..") or "\\" in args.name:
        raise CommandError(f"--name {args.name!r}: give a file name stem, without folders (use --out for the folder)")
    hygiene = hygiene_from_args(args)
    try:
        # endpoint errors (unreadable files, a seed and a prompt) before any model is loaded
        morph_rows(args.a, args.b, args.frames, args.prompt, args.seed or 0, args.kind)
    except ProducerError as exc:
        raise CommandError(str(exc)) from exc
    from kickgen.commands.generate import prepare_output_dir, remove_dirs
    from kickgen.progress import Progress

    pipe = load_pipeline(args)
    created = prepare_output_dir(args.out)
    try:
        width = max(2, len(str(args.frames - 1)))
        with Progress(None, f"morphing {args.frames} kicks", disable=args.quiet) as bar:
            kicks = morph(
                pipe, args.a, args.b, frames=args.frames, prompt=args.prompt, seed=args.seed,
                cfg_scale=args.cfg_scale, steps=args.sample_steps, sampler=args.sampler,
                strength=args.strength, hygiene=hygiene, batch_size=args.batch_size, callback=bar_callback(bar),
                kind=args.kind,
            )  # fmt: skip
        paths = [args.out / f"{args.name}_{k:0{width}d}.wav" for k in range(len(kicks))]
        write_outputs(paths, kicks, args.format, args.sample_rate, args.sidecar, args.plot)
    except BaseException:
        remove_dirs(created)
        raise
    for path in paths:
        print(path)
    return 0


def write_outputs(paths, kicks, fmt: str, sample_rate: int, sidecar: bool, plot: bool) -> None:
    """Write kicks (their sidecars and plots): all of them or none, so a failure leaves the
    folder as it was (:class:`kickgen.output.OutputTransaction`)."""
    from kickgen.output import OutputTransaction

    with OutputTransaction() as out:
        for path, kick in zip(paths, kicks, strict=True):
            stage_kick(out, path, kick, fmt, sample_rate, sidecar, plot)
        out.commit()


def stage_kick(out, path: Path, kick, fmt: str, sample_rate: int, sidecar: bool, plot: bool) -> None:
    """Write one kick (and its ``.json`` and ``.png`` when asked) to names staged in ``out``."""
    from kickgen.producer.recall import write_kick, write_sidecar

    write_kick(out.stage(path), kick.wave, kick.recipe, fmt, sample_rate)
    if sidecar:
        write_sidecar(out.stage(path.with_suffix(".json")), {**kick.recipe, "format": fmt, "sample_rate": sample_rate})
    if plot:
        from kickgen.producer.plot import plot_kick

        prompt = kick.recipe["rows"][kick.recipe["index"]].get("prompt", "")
        plot_kick(kick.wave, out.stage(path.with_suffix(".png")), f"{prompt}  seed {kick.seed}")


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


# --------------------------------------------------------------------------- generate hooks


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
    g.add_argument(
        "--best-of",
        type=int,
        default=1,
        help="candidates per kick; keep the one passing the most sanity checks",
    )
    g.add_argument(
        "--plot",
        action="store_true",
        help="PNG of waveform and mel beside each WAV (needs matplotlib)",
    )
    g.add_argument(
        "--sidecar", action="store_true", help="also write each kick's recipe as FILE.json"
    )
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
    from kickgen.commands.generate import (
        check_generate_args,
        plan_outputs,
        prepare_output_dir,
        remove_dirs,
    )

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
    from kickgen.pipeline import (
        SEED_RANGE,
        KickPipeline,
        auto_output_path,
        output_key,
        resolve_device,
    )
    from kickgen.producer.engine import ProducerError, load_init_audio
    from kickgen.producer.kicks import generate_kicks, resolve_seed
    from kickgen.progress import Progress

    if args.init_audio is not None:
        try:
            load_init_audio(args.init_audio)
        except ProducerError as exc:
            raise CommandError(f"--init-audio: {exc}") from exc
    count = args.num * args.best_of
    if args.seed is not None and not 0 <= args.seed <= SEED_RANGE - count:
        raise CommandError(f"--seed {args.seed}: use a whole number from 0 to {SEED_RANGE - count}")
    device = resolve_device(args.device)
    pipe = KickPipeline.from_checkpoints(
        args.diffusion_ckpt, args.vae_ckpt, None if args.no_vocoder else args.vocoder_ckpt, device
    )
    info = pipe.parse_prompt(args.prompt)
    if info.unknown:
        print(f"kickgen: warning: {info.warning_text()}", file=sys.stderr)
    seed = resolve_seed(args.seed, count)
    directory, paths = plan_outputs(args.output, args.num)
    created = prepare_output_dir(directory)
    try:
        with Progress(None, f"generating {args.num} kick(s)", disable=args.quiet) as bar:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # unknown words were reported above
                kicks = generate_kicks(
                    pipe, args.prompt, n=args.num, seed=seed, cfg_scale=args.cfg_scale, steps=args.steps,
                    sampler=args.sampler, hygiene=hygiene, best_of=args.best_of, init_audio=args.init_audio,
                    strength=strength, batch_size=args.batch_size, callback=bar_callback(bar),
                )  # fmt: skip
        if paths is None:
            extra = f"|init={args.init_audio}|strength={strength}|best_of={args.best_of}|hygiene={hygiene}"
            keys = [
                output_key(
                    args.prompt, k.seed, args.cfg_scale, args.steps, pipe.sources, args.sampler
                )
                + extra
                for k in kicks
            ]
            paths = [directory / auto_output_path(info, key).name for key in keys]
        write_outputs(paths, kicks, args.format, 44100, args.sidecar, args.plot)
    except ProducerError as exc:
        remove_dirs(created)
        raise CommandError(str(exc)) from exc
    except BaseException:
        remove_dirs(created)
        raise
    for path, kick in zip(paths, kicks, strict=True):
        print(path)
        if not args.quiet:
            note = (
                f" (best of {kick.candidates}: {sum(kick.checks.values())}/{len(kick.checks)} checks)"
                if kick.checks
                else ""
            )
            print(f"  seed {kick.seed}{note}", file=sys.stderr)
    return 0
