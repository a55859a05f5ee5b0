"""The seed guide's generation module and CLI, a thin door into the ``kickgen`` package.

    python inference/generate.py --vocoder-ckpt checkpoints/vocoder_epoch_50.pt --prompt "808"

takes the guide's flags (and ``kickgen generate``'s additions) and runs ``kickgen generate``.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: put the repository root on sys.path
    _ROOT = str(Path(__file__).resolve().parents[1])
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)

from kickgen.pipeline import generate  # noqa: E402
from kickgen.prompts import parse_prompt  # noqa: E402
from kickgen.sampling import DDIMSampler  # noqa: E402

__all__ = ["DDIMSampler", "generate", "main", "parse_prompt"]


def main(argv: list[str] | None = None) -> int:
    """The guide's CLI: same flags as ``kickgen generate``; one-line errors, exit code 2."""
    import argparse

    from kickgen.commands.generate import add_generate_arguments, run_generate
    from kickgen.errors import KickgenError

    parser = argparse.ArgumentParser(
        prog="inference/generate.py", description="Generate kick drums."
    )
    add_generate_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_generate(args)
    except KickgenError as exc:
        print(f"generate.py: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
