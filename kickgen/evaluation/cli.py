"""``kickgen bench``: generation speed against the reference's costs, written to BENCHMARKS.md."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kickgen.errors import CommandError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure generation speed (random weights of the shipped sizes) and write BENCHMARKS.md",
        description=__doc__,
    )
    p.add_argument("--batch", type=int, default=16, help="kicks per call in batched mode (default 16)")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds (default 3)")
    p.add_argument("--reference-kicks", type=int, default=2, help="kicks per round in reference mode (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: fastest on a shared, loaded machine)")
    p.add_argument("--no-griffin-lim", action="store_true", help="skip the Griffin-Lim comparison")
    p.add_argument("--output", type=Path, default=Path("BENCHMARKS.md"), help="report file (default BENCHMARKS.md); '-' prints it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and write the Markdown report."""
    from kickgen.evaluation.bench import BenchConfig, command_line, render_markdown, run_bench

    for name in ("batch", "steps", "rounds", "reference_kicks"):
        if getattr(args, name) < 1:
            raise CommandError(f"--{name.replace('_', '-')} {getattr(args, name)}: use at least 1")
    if args.threads is not None and args.threads < 1:
        raise CommandError(f"--threads {args.threads}: use at least 1")
    config = BenchConfig(batch=args.batch, steps=args.steps, rounds=args.rounds,
                         reference_kicks=args.reference_kicks, threads=args.threads,
                         griffin_lim=not args.no_griffin_lim)  # fmt: skip
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
