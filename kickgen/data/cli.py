"""``kickgen data collect | fetch-open | synth | build | card``: the corpus commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kickgen.commands.common import add_value_argument
from kickgen.errors import CommandError


def _ranged(parse, low: float, high: float, what: str, high_open: bool = False):
    """An argparse ``type`` that reads a value with ``parse`` and takes it in [low, high] (or
    [low, high)), else says ``what`` it must be."""

    def read(value: str):
        try:
            x = parse(value)
        except ValueError:
            x = None
        if x is None or not low <= x <= high or (high_open and x == high):
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}")
        return x

    return read


_positive = _ranged(int, 0, float("inf"), "a count (0 or more)")
_fraction = _ranged(float, 0.0, 1.0, "a fraction in [0, 1)", high_open=True)
_decibels = _ranged(float, 0.0, 24.0, "a level in dB from 0 to 24")


def register(subparsers) -> None:
    data = subparsers.add_parser(
        "data", help="build the training corpus (collect, fetch-open, synth, build, card)",
        description="Build a kick corpus from sample libraries, open Debian sources and synthesis.",
    )  # fmt: skip
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])
    sub = data.add_subparsers(dest="data_command", metavar="COMMAND")

    p = _command(sub, cmd_collect, "find the kicks of a sample library (writes a source manifest)")
    p.add_argument(
        "dirs", nargs="+", type=Path, help="sample-library folders, searched recursively"
    )
    p.add_argument("--out", type=Path, default=Path("sources.csv"), help="source manifest to write")
    p.add_argument("--min-bytes", type=_positive, default=5_000, help="skip smaller files")
    p.add_argument("--max-bytes", type=_positive, default=1_000_000, help="skip larger files")

    p = _command(sub, cmd_fetch_open, "download the allowed open sources and collect their kicks")
    p.add_argument(
        "cache", type=Path, help="cache folder (debs, archives, unpacked files, renders)"
    )
    p.add_argument("--packages", nargs="+", default=None, metavar="SOURCE",
                   help="only these sources (Debian packages, foxdot, uzu-drumkit, web-audio-samples)")  # fmt: skip
    _add_git_mirror(p)

    p = _command(sub, cmd_synth, "synthesize N kicks into a folder (WAVs + source manifest)")
    p.add_argument("n", type=_positive, help="number of kicks")
    p.add_argument("--out", type=Path, required=True, help="folder for the WAVs and synth.csv")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--family", default=None, help="one style family (default: all, weighted)")

    p = _command(sub, cmd_build, "build the corpus: clips, metadata.csv, vocab.json, cache/")
    p.add_argument("--out", type=Path, required=True, help="corpus folder")
    p.add_argument("--open", dest="open_cache", type=Path, default=None, metavar="CACHE",
                   help="fetch the open kicks into CACHE and use them (see fetch-open)")  # fmt: skip
    _add_git_mirror(p)
    p.add_argument("--library", type=Path, action="append", default=[], metavar="DIR",
                   help="collect this sample-library folder (repeatable)")  # fmt: skip
    p.add_argument("--sources", type=Path, action="append", default=[], metavar="CSV",
                   help="use this source manifest (repeatable)")  # fmt: skip
    for flag, kind, default, text in (
        ("--synth", _positive, 3800, "procedural kicks"),
        ("--augment", _positive, 12, "variants per real recording"),
        ("--val-fraction", _fraction, 0.05, "share of groups held out, per kind"),
        ("--val-real-fraction", _fraction, 0.15, "share of the real recordings' groups held out"),
        ("--val-real", _positive, 12, "at least this many real recordings in validation"),
        ("--val-kits", _positive, 4, "... from at least this many kits"),
        ("--min-count", _positive, 5, "groups a keyword needs to join the vocabulary"),
        ("--fit-share", _fraction, 0.6, "share of the procedural kicks drawn around the fits of "
         "the real training recordings; the others come from the calibrated style families"),
        ("--fit-steps", _positive, 200, "Adam steps of each fit"),
        ("--min-lead-db", _decibels, 0.0, "dB by which a made kick's loudest sample in its "
         "first 30 ms must lead the rest (draws again, or drops a render; 0: only loudest there)"),
    ):  # fmt: skip
        add_value_argument(p, flag, kind, default, text)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=_positive, default=2, help="processes (default 2)")

    p = _command(sub, cmd_card, "write the dataset card (DATASET.md) and its example figure")
    p.add_argument("corpus", type=Path, help="a built corpus folder")
    p.add_argument("--out", type=Path, default=Path("DATASET.md"))
    p.add_argument("--png", type=Path, default=Path("docs/dataset_examples.png"))


def _command(sub, func, help_text: str) -> argparse.ArgumentParser:
    """The subcommand that runs ``func`` (``cmd_fetch_open`` → ``fetch-open``); its ``--help``
    description is ``func``'s docstring, where it has one."""
    name = func.__name__.removeprefix("cmd_").replace("_", "-")
    p = sub.add_parser(name, help=help_text, description=func.__doc__)
    p.set_defaults(func=func)
    return p


def _add_git_mirror(p: argparse.ArgumentParser) -> None:
    p.add_argument("--git-mirror", dest="git_mirrors", type=Path, action="append", default=[],
                   metavar="DIR", help="a clone or mirror of an open GitHub source "
                   "(tidalcycles/uzu-drumkit, GoogleChromeLabs/web-audio-samples), or a folder "
                   "holding them as OWNER+NAME, NAME or OWNER/NAME (repeatable)")  # fmt: skip


def _print_skipped(skipped: list[tuple[str, str]], limit: int = 20) -> None:
    for path, reason in skipped[:limit]:
        print(f"  skipped {path}: {reason}")
    if len(skipped) > limit:
        print(f"  … and {len(skipped) - limit} more")


def cmd_collect(args: argparse.Namespace) -> int:
    from kickgen.data.collect import collect_library, write_sources
    from kickgen.progress import Progress

    with Progress(None, "collect") as bar:
        clips, skipped = collect_library(
            args.dirs,
            min_bytes=args.min_bytes,
            max_bytes=args.max_bytes,
            on_file=lambda p: bar.update(1),
        )
    write_sources(args.out, clips)
    print(f"collect: {len(clips)} kicks written to {args.out}; {len(skipped)} files skipped")
    _print_skipped(skipped)
    return 0


def cmd_fetch_open(args: argparse.Namespace) -> int:
    """Collect the open kicks: Debian packages (apt-get download), the FoxDot source archive (pip
    download) and the GitHub repositories found in CACHE/git or among the --git-mirror folders (a
    repository found nowhere is reported missing)."""
    from collections import Counter

    from kickgen.data.open_sources import PACKAGES, SOURCES, fetch_open
    from kickgen.progress import Progress

    sources = tuple(args.packages) if args.packages else SOURCES
    with Progress(sum(s in PACKAGES for s in sources), "fetch-open") as bar:

        def step(message: str) -> None:
            if message.endswith("download and unpack") and message.split(":")[0] in PACKAGES:
                bar.update(1, package=message.split(":")[0])

        clips, skipped, status = fetch_open(
            args.cache, sources, git_mirrors=tuple(args.git_mirrors), progress=step
        )
    print(f"fetch-open: {len(clips)} kicks in {args.cache / 'open_sources.csv'}")
    for name, line in status.items():
        print(f"  {name:26s} {line}")
    for (source, kind), n in sorted(Counter((c.source, c.kind) for c in clips).items()):
        print(f"  {source:18s} {kind:10s} {n}")
    print(f"skipped {len(skipped)} files (unreadable, silent, loops, duplicates, copies):")
    _print_skipped(skipped)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from collections import Counter

    from kickgen.audio import write_wav
    from kickgen.data import synth
    from kickgen.data.collect import SourceClip, write_sources
    from kickgen.progress import progress

    if args.family is not None and args.family not in synth.FAMILIES:
        raise CommandError(
            f"unknown family {args.family!r}; choose from {', '.join(sorted(synth.FAMILIES))}"
        )
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in progress(range(args.n), "synth"):
        wave, family, params = synth.synth_kick(args.seed * 1_000_003 + i, args.family)
        path = write_wav(
            out / f"synth_{family}_{i:05d}.wav", (0.9 * wave / abs(wave).max()).astype("float32")
        )
        clips.append(
            SourceClip(
                file=str(path.resolve()), source="synth", package="", kit=family,
                licence="kickgen (MIT)", name=family, keywords=" ".join(synth.FAMILIES[family].keywords),
                group=f"synth:{path.stem}", kind="synth", params=synth.params_text(params),
            )
        )  # fmt: skip
    manifest = write_sources(out / "synth.csv", clips)
    families = ", ".join(f"{k} {v}" for k, v in sorted(Counter(c.kit for c in clips).items()))
    print(f"synth: {len(clips)} kicks in {out} ({families}); manifest {manifest}")
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    """Build a training corpus. The shipped corpus, from nothing (downloads the open sources,
    renders their patches, synthesizes, augments, checks, caches): kickgen data build --open CACHE
    --git-mirror DIR --out CORPUS"""
    from kickgen.data.build import BuildConfig, build_corpus, summary

    config = BuildConfig(
        out=args.out, open_cache=args.open_cache, git_mirrors=tuple(args.git_mirrors),
        library=tuple(args.library),
        sources=tuple(args.sources), synth=args.synth, augment=args.augment,
        val_fraction=args.val_fraction, val_real_fraction=args.val_real_fraction,
        val_real=args.val_real,
        val_kits=args.val_kits, min_count=args.min_count, fit_share=args.fit_share,
        fit_steps=args.fit_steps, min_lead_db=args.min_lead_db, seed=args.seed,
        workers=max(args.workers, 1),
    )  # fmt: skip
    import shlex

    report = build_corpus(config, command=shlex.join(["python", "-m", "kickgen", *sys.argv[1:]]))
    print(summary(report))
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from kickgen.data.card import write_card

    md, png = write_card(args.corpus, args.out, args.png)
    print(f"card: {md} and {png}", file=sys.stdout)
    return 0
