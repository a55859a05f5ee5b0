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
import warnings

from kickgen.errors import KickgenError

# (module, what it adds) in the order `kickgen --help` lists them.
COMMAND_MODULES = (
    "kickgen.commands.generate",  # generate, vocab
    "kickgen.data.cli",  # data collect | fetch-open | synth | build | card
    "kickgen.train.cli",  # train vae | diffusion | vocoder
    "kickgen.evaluation.cli",  # eval, bench
    "kickgen.serve.cli",  # serve
    "kickgen.commands.producer",  # morph, regenerate, pack
    "kickgen.commands.info",  # info
)


class VersionAction(argparse.Action):
    """``--version``: ``kickgen 0.1.0, model 2026.12.3 (diffusion 9cb2fdc1, ...)`` on one line."""

    def __init__(
        self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None
    ):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        from kickgen import __version__
        from kickgen.weights import model_version

        print(f"kickgen {__version__}, model {model_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kickgen", description="Generate kick-drum one-shots with latent diffusion."
    )
    parser.add_argument(
        "--version", action=VersionAction, help="show kickgen's and the model's version and exit"
    )
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
    formatwarning = warnings.formatwarning
    warnings.formatwarning = _one_line_warning  # warnings read like the CLI's own: one line
    try:
        return int(args.func(args) or 0)
    except KickgenError as exc:
        print(f"kickgen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kickgen: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatwarning


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"kickgen: warning: {message}\n"


if __name__ == "__main__":
    raise SystemExit(main())
