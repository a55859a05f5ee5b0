"""Output files: their names, and files that are all written or not at all.

:func:`kick_file_name` is the one name of a generated kick (``kick_<keywords>_s<seed>.wav``),
:func:`variant_tag` what sets apart other settings' kicks of the same seed.

Every command that writes files (``generate``, ``morph``, ``pack``, ``regenerate``, the corpus
tools) goes through two pieces here:

- :func:`temporary_name` gives a unique hidden name beside a target (``.NAME.<pid>.<token>.tmp.wav``),
  so two processes writing the same output never share a temporary file, and a file is only ever
  seen complete (written, then renamed into place).
- :class:`OutputTransaction` stages a whole run's files under such names and puts them in place in
  :meth:`~OutputTransaction.commit` only when every one of them was written. A file a run replaces
  is kept aside until the commit has succeeded and put back if it fails; a failed run removes its
  staged files. Either way the folder is left as it was before the run, or as the run finished it.

Write failures (a full disk: soundfile raises ``LibsndfileError``, not ``OSError``) become an
:class:`OutputError` with one line naming the file.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import soundfile as sf

from kickgen.errors import KickgenError

if TYPE_CHECKING:
    from kickgen.prompts import PromptInfo

T = TypeVar("T")
_TEMP_NAME = re.compile(r"^\.(?P<stem>.*)\.\d+\.[0-9a-f]{8}\.tmp(?P<suffix>\.[^.]*)?$")


class OutputError(KickgenError):
    """An output file could not be written; nothing of the run was left behind."""


def temporary_name(path: str | Path) -> Path:
    """A unique hidden name in ``path``'s folder that keeps its suffix (plotting and audio
    libraries pick the format from it): ``dir/.kick.<pid>.<token>.tmp.wav``."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")


def is_temporary_name(path: str | Path) -> bool:
    return _TEMP_NAME.match(Path(path).name) is not None


def target_of(path: str | Path) -> Path:
    """The file a :func:`temporary_name` stands for (other paths are returned as they are)."""
    path = Path(path)
    m = _TEMP_NAME.match(path.name)
    return path.with_name(m["stem"] + (m["suffix"] or "")) if m else path


def write_failure(path: str | Path, exc: BaseException) -> OutputError:
    """The one-line error of a failed write of ``path`` (named as its target, never a temp)."""
    if isinstance(exc, sf.LibsndfileError):
        reason = exc.error_string
    else:
        reason = getattr(exc, "strerror", None) or str(exc).strip()
    reason = (reason or type(exc).__name__).splitlines()[0]
    return OutputError(
        f"cannot write {target_of(path)}: {reason}; free some space or choose another output folder"
    )


def make_folder(path: Path, error: type[KickgenError], advice: str) -> None:
    """Create ``path`` and its parents; failing that, raise ``error`` with one line ending in
    ``advice`` (what the user should do)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise error(f"cannot create {path}: {exc.strerror or exc}; {advice}") from exc


def write_atomically(path: str | Path, write: Callable[[Path], T]) -> Path:
    """``write(tmp)`` to a :func:`temporary_name` beside ``path``, then rename it to ``path``.

    A failed write (``OSError``, ``LibsndfileError``) raises :class:`OutputError` and leaves
    neither a temporary file nor a changed ``path``.
    """
    path = Path(path)
    if is_temporary_name(path):  # staged by an OutputTransaction: already unique and hidden
        try:
            write(path)
        except (OSError, sf.SoundFileError) as exc:
            path.unlink(missing_ok=True)
            raise write_failure(path, exc) from exc
        return path
    tmp = temporary_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except (OSError, sf.SoundFileError) as exc:
        raise write_failure(path, exc) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return path


class OutputTransaction:
    """Stage files under temporary names; put all of them in place at once, or none.

    ::

        with OutputTransaction() as out:
            for path, wave in zip(paths, waves):
                write_wav(out.stage(path), wave)
            out.commit()          # without it (an exception, a return) nothing is kept

    Write a staged name in any way (``write_wav``, ``savefig``, ``open``); a write that fails
    with ``OSError`` or ``LibsndfileError`` inside the ``with`` block leaves the block as an
    :class:`OutputError` naming the target file.
    """

    def __init__(self) -> None:
        self._staged: dict[Path, Path] = {}  # target → its staged temporary file
        self.committed = False

    def stage(self, path: str | Path) -> Path:
        """The temporary name to write ``path``'s contents to."""
        path = Path(path)
        if path in self._staged:
            raise OutputError(f"{path} is written twice in one run: give each output its own name")
        tmp = temporary_name(path)
        self._staged[path] = tmp
        return tmp

    @property
    def targets(self) -> list[Path]:
        return list(self._staged)

    def commit(self) -> list[Path]:
        """Rename every staged file into place (replacing what was there); returns the targets.

        If a rename fails, the targets already placed are undone and the files they replaced
        restored before :class:`OutputError` is raised.
        """
        missing = [p for p, tmp in self._staged.items() if not tmp.is_file()]
        if missing:
            raise OutputError(f"{missing[0]} was never written: nothing of this run was kept")
        placed: list[tuple[Path, Path | None]] = []  # (target, what it replaced, kept aside)
        target = None
        try:
            for target, tmp in self._staged.items():
                backup = None
                if target.exists() or target.is_symlink():
                    backup = temporary_name(target)
                    os.replace(target, backup)
                placed.append((target, backup))
                os.replace(tmp, target)
        except OSError as exc:
            for path, backup in reversed(placed):
                if backup is not None:
                    os.replace(backup, path)
                else:
                    path.unlink(missing_ok=True)
            raise write_failure(target, exc) from exc
        for _, backup in placed:
            if backup is not None:
                backup.unlink(missing_ok=True)
        self.committed = True
        return self.targets

    def abort(self) -> None:
        """Remove every staged file; the targets are untouched."""
        for tmp in self._staged.values():
            tmp.unlink(missing_ok=True)

    def __enter__(self) -> OutputTransaction:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if not self.committed:
            self.abort()
        if isinstance(exc, (OSError, sf.SoundFileError)):  # a staged file written directly
            raise write_failure(getattr(exc, "filename", None) or "an output file", exc) from exc
        return False


# --------------------------------------------------------------------------- names


def kick_file_name(keywords: Sequence[str], seed: int, variant: str = "") -> str:
    """``kick_<keywords>_s<seed>[_<variant>].wav``, the one name of a generated kick (CLI, page).

    Only the keywords the model knows name a file (``uncond`` for none); the seed is zero-padded to
    10 digits (seeds stay below 2³¹) so a folder lists a prompt's kicks in seed order. Letters,
    digits, ``_``, ``.`` and ``-`` only, safe in any file system and HTTP header.
    """
    words = [re.sub(r"[^a-z0-9]+", "", kw.lower()) for kw in keywords]
    stem = "_".join(w for w in words if w)[:80] or "uncond"
    tail = "_" + re.sub(r"[^a-z0-9._-]+", "", variant.lower()) if variant else ""
    return f"kick_{stem}_s{seed:010d}{tail}.wav"


def variant_tag(
    cfg_scale: float = 3.0, steps: int = 50, sampler: str = "ddim", **options: object
) -> str:
    """What sets a kick's file name apart from the default settings' kick of the same seed:
    ``""`` at the defaults, else ``g5_st20_dpm`` (guidance, steps, solver that differ) and a 6-hex
    digest of any other ``options`` that are not None (init kick, strength, best-of, hygiene), so
    runs with different settings never overwrite each other's files."""
    parts = []
    if cfg_scale != 3.0:
        parts.append(f"g{cfg_scale:g}")
    if steps != 50:
        parts.append(f"st{steps}")
    if sampler != "ddim":
        parts.append(sampler)
    given = sorted((k, repr(v)) for k, v in options.items() if v is not None)
    if given:
        parts.append(hashlib.sha1(repr(given).encode()).hexdigest()[:6])
    return "_".join(parts)


def auto_output_path(
    info: PromptInfo, seed: int, variant: str = "", directory: str | Path = "generations"
) -> Path:
    """``generations/kick_<keywords>_s<seed>[_<variant>].wav`` (:func:`kick_file_name`)."""
    return Path(directory) / kick_file_name(info.matched, seed, variant)
