"""The ``kickgen`` console command.

Each command group lives beside the code it drives and exposes ``register(subparsers)``, which
adds its sub-commands and sets ``func`` on them. Modules import their heavy or optional
dependencies inside the command functions, so ``kickgen --help`` stays fast and an extra that is
not installed only affects its own commands.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from kickgen.errors import KickgenError

# (module, what it adds) in the order `kickgen --help` lists them.
COMMAND_MODULES = (
    "kickgen.commands.generate",  # generate, vocab
    "kickgen.data.cli",  # data collect | fetch-open | synth | build | card
    "kickgen.train.cli",  # train vae | diffusion | vocoder
    "kickgen.evaluation.cli",  # eval, bench
    "kickgen.serve.cli",  # serve
    "kickgen.commands.producer",  # morph, regenerate, pack
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kickgen", description="Generate kick-drum one-shots with latent diffusion."
    )
    from kickgen import __version__

    parser.add_argument("--version", action="version", version=f"kickgen {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue  # that command group is not part of this build yet
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KickgenError as exc:
        print(f"kickgen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kickgen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
