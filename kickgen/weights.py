"""Where the checkpoints come from: one lookup order for every entry point.

``kickgen generate | vocab | morph | pack | regenerate | serve | eval | info``,
``KickPipeline.from_pretrained()`` and ``generate()`` all call :func:`find_checkpoints`, which
takes each of the three files from the first of:

1. an explicit path: a file (``--diffusion-ckpt``, ``--vae-ckpt``, ``--vocoder-ckpt``) or a
   folder (``--checkpoints DIR``, ``from_pretrained(DIR)``);
2. the folder named by ``$KICKGEN_CHECKPOINTS``;
3. ``./checkpoints`` when it holds the guide's files (the repository root does);
4. the weights installed with the package, ``kickgen/weights/`` (read through
   ``importlib.resources``).

A folder named in 1 or 2 that lacks a file is a one-line error naming the file, never a silent
fall-back to the packaged weights. This module imports no torch, so ``kickgen --help`` stays fast.
"""

from __future__ import annotations

import importlib.resources
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kickgen.errors import KickgenError

# The seed guide's file names.
DIFFUSION_NAME = "diffusion_step_100000.pt"
VAE_NAME = "vae_epoch_100.pt"
VOCODER_NAME = "vocoder_epoch_50.pt"
VOCODER_ALIAS = "vocoder.pt"  # the guide's CLI table names this; it resolves to VOCODER_NAME
FILE_NAMES = {"diffusion": DIFFUSION_NAME, "vae": VAE_NAME, "vocoder": VOCODER_NAME}

ENV_VAR = "KICKGEN_CHECKPOINTS"
LOCAL_DIR = Path("checkpoints")  # relative to the working directory
PACKAGE_DIR = "weights"  # inside the kickgen package
LOOKUP_HELP = f"${ENV_VAR}, ./checkpoints when it holds the three files, then the packaged weights"

# The shipped model: its version and the SHA-256 prefixes of its files (the recipe's 16 hex digits).
# tests/test_weights.py checks these against kickgen/weights/; retrained weights bump the version.
MODEL_VERSION = "2026.12.3"
SHIPPED_SHA256 = {
    "diffusion": "9cb2fdc1cf646ed2",
    "vae": "d1fc66a6a6bec324",
    "vocoder": "590d6c07af4c5bcd",
}


class CheckpointNotFoundError(KickgenError):
    """A checkpoint file or folder that was named (or is needed) is not there."""


@dataclass(frozen=True)
class CheckpointFiles:
    """The checkpoint files one run uses and where they were found."""

    diffusion: Path
    vae: Path
    vocoder: Path | None  # None: Griffin-Lim
    origins: Mapping[str, str]  # part → "file" | "folder" | "env" | "local" | "package"
    directory: Path | None = None  # the folder the files not given one by one came from

    def parts(self) -> dict[str, Path | None]:
        """``{"diffusion": path, "vae": path, "vocoder": path or None}``."""
        return {"diffusion": self.diffusion, "vae": self.vae, "vocoder": self.vocoder}


def model_version() -> str:
    """The shipped model's version, e.g. ``2026.12.3 (diffusion 9cb2fdc1, vae d1fc66a6, vocoder 590d6c07)``."""
    hashes = ", ".join(f"{part} {sha[:8]}" for part, sha in SHIPPED_SHA256.items())
    return f"{MODEL_VERSION} ({hashes})"


def packaged_dir() -> Path:
    """The folder of the weights installed with the package (``kickgen/weights``)."""
    root = importlib.resources.files("kickgen") / PACKAGE_DIR
    if not isinstance(root, Path):  # a zipped install: torch.load needs real files
        raise CheckpointNotFoundError(
            f"the packaged weights ({root}) are not plain files: install kickgen unzipped, "
            f"or set {ENV_VAR} to a folder holding the three checkpoints"
        )
    return root


def resolve_vocoder_path(path: str | Path) -> Path:
    """The guide's CLI default ``checkpoints/vocoder.pt`` resolves to the shipped
    ``vocoder_epoch_50.pt`` beside it when no file of that name exists; any other path is kept."""
    path = Path(path)
    if path.name == VOCODER_ALIAS and not path.exists() and (path.parent / VOCODER_NAME).exists():
        return path.parent / VOCODER_NAME
    return path


def _named_folder(
    directory: Path, parts: list[str], named_by: str, vocoder_hint: str | None
) -> Path:
    """``directory`` checked to hold every file of ``parts``; one-line errors name what is missing."""
    if not directory.is_dir():
        raise CheckpointNotFoundError(
            f"{named_by} {directory} is not a folder: name the folder holding "
            f"{DIFFUSION_NAME}, {VAE_NAME} and {VOCODER_NAME}"
        )
    for part in parts:
        path = directory / FILE_NAMES[part]
        if not path.is_file():
            hint = (
                f" (or {vocoder_hint} for Griffin-Lim)"
                if part == "vocoder" and vocoder_hint
                else ""
            )
            raise CheckpointNotFoundError(
                f"{path} not found: {named_by} {directory} lacks the {part} checkpoint; "
                f"put {FILE_NAMES[part]} there{hint}"
            )
    return directory


def find_checkpoint_dir(
    directory: str | Path | None = None,
    parts: tuple[str, ...] = ("diffusion", "vae", "vocoder"),
    named_by: str = "--checkpoints",
    vocoder_hint: str | None = "--no-vocoder",
    environ: Mapping[str, str] | None = None,
) -> tuple[Path, str]:
    """``(folder, origin)`` holding the files of ``parts``, by the lookup order of the module docstring.

    ``named_by`` says in errors what named ``directory`` (a flag, or ``from_pretrained``);
    ``vocoder_hint`` how to ask for Griffin-Lim instead of a missing vocoder (None: no hint).
    """
    parts = tuple(parts)
    if directory is not None:
        return _named_folder(Path(directory), list(parts), named_by, vocoder_hint), "folder"
    env = (os.environ if environ is None else environ).get(ENV_VAR, "")
    if env:
        return _named_folder(Path(env), list(parts), f"${ENV_VAR}", vocoder_hint), "env"
    present = [p for p in FILE_NAMES if (LOCAL_DIR / FILE_NAMES[p]).is_file()]
    if all(p in present for p in parts):
        return LOCAL_DIR, "local"
    if present:  # a partial ./checkpoints is a likely mistake: say which weights are used instead
        missing = ", ".join(FILE_NAMES[p] for p in parts if p not in present)
        warnings.warn(
            f"{LOCAL_DIR}/ lacks {missing}: using the packaged weights "
            f"(name the folder with --checkpoints or ${ENV_VAR} to use it)",
            stacklevel=3,
        )
    return packaged_dir(), "package"


def find_checkpoints(
    directory: str | Path | None = None,
    diffusion: str | Path | None = None,
    vae: str | Path | None = None,
    vocoder: str | Path | None = None,
    use_vocoder: bool = True,
    named_by: str = "--checkpoints",
    vocoder_hint: str | None = "--no-vocoder",
    environ: Mapping[str, str] | None = None,
) -> CheckpointFiles:
    """The three files one run uses: each explicit file as given (the vocoder alias resolved),
    the others from :func:`find_checkpoint_dir`. ``use_vocoder=False``: no vocoder (Griffin-Lim).

    Explicit files are not checked here (the loaders' errors name them); folders are.
    """
    explicit = {"diffusion": diffusion, "vae": vae, "vocoder": vocoder if use_vocoder else None}
    wanted = [p for p in FILE_NAMES if p != "vocoder" or use_vocoder]
    from_dir = tuple(p for p in wanted if explicit[p] is None)
    folder, origin = None, None
    if from_dir or directory is not None:
        folder, origin = find_checkpoint_dir(directory, from_dir, named_by, vocoder_hint, environ)
    paths: dict[str, Path | None] = {"vocoder": None}
    origins: dict[str, str] = {}
    for part in wanted:
        if explicit[part] is not None:
            paths[part], origins[part] = Path(explicit[part]), "file"
        else:
            paths[part], origins[part] = folder / FILE_NAMES[part], origin
    if paths["vocoder"] is not None:
        paths["vocoder"] = resolve_vocoder_path(paths["vocoder"])
    return CheckpointFiles(
        paths["diffusion"], paths["vae"], paths["vocoder"], origins, folder if from_dir else None
    )


def describe_origin(origin: str) -> str:
    """Words for an origin in ``kickgen info``: ``$KICKGEN_CHECKPOINTS``, ``./checkpoints``, ..."""
    return {
        "file": "named file",
        "folder": "named folder",
        "env": f"${ENV_VAR}",
        "local": f"./{LOCAL_DIR}",
        "package": "packaged weights",
    }[origin]
