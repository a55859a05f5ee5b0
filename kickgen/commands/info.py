"""``kickgen info``: what a bug report needs.

Prints the kickgen and model versions, the checkpoint files in use (found by kickgen's lookup
order, :mod:`kickgen.weights`) with their SHA-256 prefixes and where they came from, the
vocabulary, and the torch, Python and device in use.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="the checkpoints in use, their hashes, the vocabulary, torch and device",
        description="Print what a bug report needs: versions, checkpoint files and hashes, "
        "vocabulary, torch and device.",
    )
    from kickgen.commands.common import add_checkpoints_argument

    add_checkpoints_argument(p)
    p.add_argument(
        "--device", default="auto", help="auto (CUDA > MPS > CPU), cpu, cuda, cuda:N or mps"
    )
    p.set_defaults(func=run_info)


def info_lines(checkpoints: Path | None = None, device: str = "auto") -> list[str]:
    """The lines ``kickgen info`` prints (see the module docstring)."""
    import platform

    import torch

    import kickgen
    from kickgen.checkpoints import load_checkpoint
    from kickgen.pipeline import resolve_device
    from kickgen.producer.engine import file_sha256
    from kickgen.weights import SHIPPED_SHA256, describe_origin, find_checkpoints, model_version

    files = find_checkpoints(checkpoints)
    lines = [
        f"kickgen {kickgen.__version__} ({Path(kickgen.__file__).parent})",
        f"model {model_version()}",
        "checkpoints:",
    ]
    for part, path in files.parts().items():
        sha = file_sha256(path)
        shipped = ", shipped" if SHIPPED_SHA256.get(part) == sha else ""
        lines.append(
            f"  {part:<9} {path.absolute()}  sha256 {sha}  ({describe_origin(files.origins[part])}{shipped})"
        )
    vocab = [str(w) for w in load_checkpoint(files.diffusion, "diffusion")["vocab"]]
    lines.append(f"vocabulary ({len(vocab)}): {' '.join(vocab)}")
    lines.append(
        f"torch {torch.__version__}, Python {platform.python_version()}, {platform.platform()}"
    )
    dev = resolve_device(device)
    name = f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""
    lines.append(f"device {dev}{name}, {torch.get_num_threads()} CPU threads")
    return lines


def run_info(args: argparse.Namespace) -> int:
    for line in info_lines(args.checkpoints, args.device):
        print(line)
    return 0
