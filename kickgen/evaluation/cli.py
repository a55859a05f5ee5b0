"""``kickgen eval`` (quality, :mod:`kickgen.evaluation.quality`) and ``kickgen bench`` (speed against
the reference's costs, written to BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kickgen.commands.common import add_value_argument
from kickgen.errors import CommandError


def _batches(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give batch sizes such as 16,64") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: batch sizes are at least 1")
    return values


def register(subparsers) -> None:
    __import__("kickgen.evaluation.quality", fromlist=["register"]).register(
        subparsers
    )  # kickgen eval
    p = subparsers.add_parser(
        "bench",
        help="measure generation speed (random weights of the shipped sizes) and write BENCHMARKS.md",
        description=__doc__,
    )
    p.add_argument(
        "--batch",
        type=_batches,
        default=(16, 64),
        help="kicks per call in the batched modes, comma-separated (default 16,64)",
    )
    add_value_argument(p, "--steps", int, 50, "DDIM steps of the default setting")
    p.add_argument(
        "--fast-sampler",
        choices=("ddim", "dpm"),
        default="dpm",
        help="sampler of the fast setting (default dpm)",
    )
    add_value_argument(p, "--fast-steps", int, 20, "steps of the fast setting; 0 skips it")
    add_value_argument(p, "--rounds", int, 3, "interleaved measurement rounds")
    add_value_argument(p, "--reference-kicks", int, 2, "kicks per round in reference mode")
    add_value_argument(p, "--cold-runs", int, 2, "cold CLI processes per setting; 0 skips them")
    add_value_argument(p, "--agreement", int, 16, "kicks in the solver agreement check; 0 skips it")
    p.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help="time these checkpoints (default: random weights of the shipped sizes)",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="DIR",
        help="also time the checkpoints in this folder (the models before a change; the same three "
        "file names as --checkpoints) at the default setting, interleaved with the main ones, and "
        "report how much slower or faster per kick the main checkpoints are",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for kickgen and the reference alike (default: torch's for this machine)",
    )
    p.add_argument(
        "--reference-code",
        type=Path,
        default=None,
        metavar="DIR",
        help="also time the reference's own generate() from this copy of its pytorch/ folder "
        "(fetched outside the repository; run with random weights)",
    )
    p.add_argument("--no-griffin-lim", action="store_true", help="skip the Griffin-Lim comparison")
    p.add_argument(
        "--output",
        type=Path,
        default=Path("BENCHMARKS.md"),
        help="report file (default BENCHMARKS.md); '-' prints it",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and write the Markdown report."""
    from kickgen.evaluation.bench import BenchConfig, command_line, run_bench
    from kickgen.evaluation.bench_report import render_markdown

    for name in ("steps", "rounds", "reference_kicks"):
        if getattr(args, name) < 1:
            raise CommandError(f"--{name.replace('_', '-')} {getattr(args, name)}: use at least 1")
    for name in ("fast_steps", "cold_runs", "agreement"):
        if getattr(args, name) < 0:
            raise CommandError(
                f"--{name.replace('_', '-')} {getattr(args, name)}: use 0 (skip) or more"
            )
    if args.agreement == 1:
        raise CommandError("--agreement 1: use 0 (skip) or at least 2 kicks")
    if args.threads is not None and args.threads < 1:
        raise CommandError(f"--threads {args.threads}: use at least 1")
    if args.checkpoints is not None and not args.checkpoints.is_dir():
        raise CommandError(
            f"--checkpoints {args.checkpoints} is not a directory: pass the folder holding the three checkpoints"
        )
    if (
        args.reference_code is not None
        and not (args.reference_code / "inference" / "generate.py").is_file()
    ):
        raise CommandError(
            f"--reference-code {args.reference_code}: no inference/generate.py there; pass the "
            "reference's pytorch/ folder"
        )
    config = BenchConfig(batches=args.batch, steps=args.steps, fast_sampler=args.fast_sampler,
                         fast_steps=args.fast_steps, rounds=args.rounds, reference_kicks=args.reference_kicks,
                         cold_runs=args.cold_runs, agreement=args.agreement, threads=args.threads,
                         griffin_lim=not args.no_griffin_lim, checkpoints=args.checkpoints,
                         reference_code=args.reference_code, baseline=args.baseline)  # fmt: skip
    result = run_bench(config)
    report = render_markdown(result, command_line(config))
    if str(args.output) == "-":
        sys.stdout.write(report)
    else:
        tmp = args.output.with_name(f".{args.output.name}.tmp")
        tmp.write_text(report)
        tmp.replace(args.output)
        print(args.output)
    for mode in result.seconds_per_kick:
        print(f"{mode}: {result.median(mode):.3f} s per kick", file=sys.stderr)
    return 0
