"""Open kicks outside Debian's sample packages: two GitHub repositories and a PyPI source archive.

``fetch-open`` (and ``build --open``) collects them beside the Debian kicks of
:mod:`kickgen.data.open_sources`; each file's licence and origin go into the source manifest:

| source | origin | what is taken | licence |
| --- | --- | --- | --- |
| uzu-drumkit | github:tidalcycles/uzu-drumkit | ``bd/*.wav`` | The Unlicense |
| web-audio-samples | github:GoogleChromeLabs/web-audio-samples | ``src/sounds/drum-samples/*/kick.wav`` | Apache-2.0 |
| foxdot | pypi:foxdot==0.9.0 (source archive) | ``FoxDot/snd/`` banks x, v, a and ``w/upper/gb_kick*`` | CC-BY-SA-4.0 |

The corpus build cannot reach GitHub, so the repositories come from a clone or mirror the user
passes (``--git-mirror DIR``: the repository itself, bare or not, or a folder that holds it as
``OWNER+NAME``, ``NAME`` or ``OWNER/NAME``, each optionally with the git directory in ``repo/``).
``git archive HEAD PATHS | tar -x`` unpacks what is taken into ``CACHE/git/OWNER+NAME``; a folder
unpacked there by hand (the same command) is used as well. A repository found nowhere is reported
missing and the build goes on without it. The repository's licence file travels with the files
and must still say what :data:`REPOSITORIES` expects; the PyPI archive is downloaded with
``pip download`` into ``CACHE/pypi`` (a failure stops the build, as a failed ``apt-get`` does).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kickgen.data.collect import SourceClip, group_key, named_clip
from kickgen.errors import KickgenError

Log = Callable[[str], None]


class ArchiveError(KickgenError):
    """A PyPI source archive could not be downloaded or read."""


@dataclass(frozen=True)
class Repository:
    """One allowed GitHub repository and what is taken from it."""

    source: str  # name in the manifest's source column
    repo: str  # OWNER/NAME on GitHub
    paths: tuple[str, ...]  # what `git archive HEAD` takes (the licence file among them)
    licence: str  # licence recorded for every kick
    licence_file: str  # the repository's licence text ...
    licence_phrase: str  # ... must hold this phrase (whitespace-insensitive)
    note: str  # for the dataset card

    @property
    def folder(self) -> str:
        return self.repo.replace("/", "+")


REPOSITORIES: tuple[Repository, ...] = (
    Repository(
        "uzu-drumkit", "tidalcycles/uzu-drumkit", ("bd", "LICENSE"), "Unlicense", "LICENSE",
        "released into the public domain",
        "the repository's LICENSE (The Unlicense) covers the samples; its README names the "
        "contributors Mot4i and Switch Angel",
    ),
    Repository(
        "web-audio-samples", "GoogleChromeLabs/web-audio-samples",
        ("src/sounds/drum-samples", "LICENSE"), "Apache-2.0", "LICENSE", "Apache License Version 2.0",
        "Apache-2.0 is the repository's licence; the samples carry no note of their own",
    ),
)  # fmt: skip

FOXDOT = "foxdot==0.9.0"
FOXDOT_LICENCE = "CC-BY-SA-4.0"  # PKG-INFO's License field; attribute "FoxDot contributors"
FOXDOT_NOTE = (
    "the package's licence (PKG-INFO: cc-by-sa-4.0), attributed to the FoxDot contributors; "
    "its README says many samples are CC0 from Freesound"
)
FOXDOT_FOLDERS: tuple[str, ...] = ("x/lower", "x/upper", "v/lower", "v/upper", "a/upper", "w/upper")
# the other samples of these banks are not kicks
FOXDOT_ONLY: dict[str, str] = {"w/upper": "gb_kick*"}

ARCHIVE_SOURCES: tuple[str, ...] = (*(r.source for r in REPOSITORIES), "foxdot")

# Curated keywords (the vocabulary's words) of kits and folders whose names say little.
UZU_CONTRIBUTOR_KEYWORDS: dict[str, str] = {  # README: an electronic kit
    "mot4i": "electro analog",  # "analog processed samples"
    "switchangel": "electro",  # "synthesized drum sounds processed with a la76 style ... compressor"
}
WEB_AUDIO_KIT_KEYWORDS: dict[str, str] = {
    "4OP-FM": "electro",  # a four-operator FM synthesizer
    "CR78": "analog",  # Roland CR-78
    "KPR77": "analog",  # Korg KPR-77
    "Techno": "techno",
    "acoustic-kit": "acoustic",
    "breakbeat8": "breaks",
    "breakbeat9": "breaks",
    "breakbeat13": "breaks",
}
FOXDOT_FOLDER_KEYWORDS: dict[str, str] = {
    "w/upper": "lofi",  # the Game Boy drum kit (gb_kick)
}


# --------------------------------------------------------------------------- git repositories


def _git(args: list[str], stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], stdout=stdout, stderr=subprocess.PIPE, check=False)


def _is_repo_with(path: Path, repo: Repository) -> bool:
    """``path`` is a git repository (bare or not) whose HEAD holds the first of ``repo.paths``,
    and whose origin, when it has one, names the repository (a fork or a local clone will do)."""
    if not path.is_dir():
        return False
    if _git(["-C", str(path), "cat-file", "-e", f"HEAD:{repo.paths[0]}"]).returncode != 0:
        return False
    url = _git(["-C", str(path), "config", "--get", "remote.origin.url"]).stdout.decode().strip()
    return not url or repo.repo.split("/")[1].lower() in url.lower()


def find_repository(mirrors: tuple[Path, ...], repo: Repository) -> Path | None:
    """The first clone or mirror of ``repo`` among ``mirrors`` (see the module docstring)."""
    owner, name = repo.repo.split("/")
    for base in mirrors:
        base = Path(base).expanduser()
        for candidate in (base, base / repo.folder, base / name, base / owner / name):
            for path in (candidate, candidate / "repo"):
                if _is_repo_with(path, repo):
                    return path.resolve()
    return None


def unpack_repository(git_dir: Path, repo: Repository, dest: Path) -> str:
    """``git archive HEAD`` of ``repo.paths`` unpacked into ``dest`` (once per commit; a marker
    file records it). Returns the commit."""
    head = _git(["-C", str(git_dir), "rev-parse", "HEAD"])
    commit = head.stdout.decode().strip()
    marker = dest / ".kickgen-archived"
    if marker.is_file() and marker.read_text() == commit:
        return commit
    archive = _git(["-C", str(git_dir), "archive", "--format=tar", "HEAD", *repo.paths])
    if head.returncode != 0 or archive.returncode != 0:
        message = (archive.stderr or head.stderr).decode(errors="replace").strip().splitlines()
        raise ArchiveError(
            f"{git_dir}: `git archive HEAD {' '.join(repo.paths)}` failed "
            f"({message[-1] if message else 'no message'}); pass a complete clone or mirror"
        )
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        _extract_files(tar, tmp, _plain_member)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    marker.write_text(commit)
    return commit


def _plain_member(name: str) -> str | None:
    """A ``git archive`` member's path as it is, unless it could leave the folder."""
    parts = Path(name).parts
    return None if not parts or Path(name).is_absolute() or ".." in parts else name


def _extract_files(tar: tarfile.TarFile, dest: Path, select: Callable[[str], str | None]) -> None:
    """Write the regular files of ``tar`` that ``select`` maps to a relative path under ``dest``
    (links and other members are left out)."""
    dest.mkdir(parents=True, exist_ok=True)
    for member in tar.getmembers():
        rel = select(member.name)
        if rel is None or not member.isfile():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(tar.extractfile(member).read())


def _licence_holds(path: Path, phrase: str) -> bool:
    if not path.is_file():
        return False
    text = " ".join(path.read_text(encoding="utf-8", errors="replace").split()).lower()
    return " ".join(phrase.split()).lower() in text


def collect_repository(root: Path, repo: Repository, origin: str) -> list[SourceClip]:
    """The kicks of an unpacked ``repo`` tree at ``root``; ``origin`` goes in the package column."""
    clips = []
    if repo.source == "uzu-drumkit":
        for f in sorted((root / "bd").glob("*.wav")):
            author = f.stem.rsplit("_", 1)[-1].lower()  # "10_bd_switchangel"
            words = f"bd {UZU_CONTRIBUTOR_KEYWORDS.get(author, 'electro')}"
            clips.append(named_clip(f, repo.source, origin, "bd", repo.licence, f.stem, words,
                                    f"{repo.source}:{f.stem}"))  # fmt: skip
    elif repo.source == "web-audio-samples":
        for f in sorted((root / "src/sounds/drum-samples").glob("*/kick.wav")):
            kit = f.parent.name
            words = f"{kit} kick {WEB_AUDIO_KIT_KEYWORDS.get(kit, '')}"
            clips.append(named_clip(f, repo.source, origin, "drum-samples", repo.licence,
                                    f"{kit}/kick", words, f"{repo.source}:{kit}"))  # fmt: skip
    return clips


def collect_repositories(
    cache: Path, mirrors: tuple[Path, ...], names: tuple[str, ...], log: Log | None = None
) -> tuple[list[SourceClip], dict[str, str]]:
    """The kicks of every repository in ``names`` found unpacked in ``CACHE/git`` or among
    ``mirrors``, and one status line per repository: ``found: ...`` or ``missing: ...``."""
    clips: list[SourceClip] = []
    status: dict[str, str] = {}
    for repo in REPOSITORIES:
        if repo.source not in names:
            continue
        dest = cache / "git" / repo.folder
        try:
            git_dir = find_repository(mirrors, repo) if mirrors else None
        except FileNotFoundError:  # no git on this machine
            git_dir = None
        if git_dir is not None:
            commit = unpack_repository(git_dir, repo, dest)
            origin = f"github:{repo.repo}@{commit[:12]}"
        elif (dest / repo.paths[0]).is_dir():
            marker = dest / ".kickgen-archived"
            commit = marker.read_text().strip() if marker.is_file() else ""
            origin = f"github:{repo.repo}" + (f"@{commit[:12]}" if commit else "")
        else:
            status[repo.source] = (
                f"missing: no clone or mirror of github.com/{repo.repo} (pass --git-mirror DIR, "
                f"or unpack `git archive HEAD {' '.join(repo.paths)}` into {dest})"
            )
            continue
        if not _licence_holds(dest / repo.licence_file, repo.licence_phrase):
            status[repo.source] = (
                f"missing: {dest / repo.licence_file} does not say {repo.licence_phrase!r}; "
                "check the repository's licence before using it"
            )
            continue
        found = collect_repository(dest, repo, origin)
        clips += found
        status[repo.source] = f"found: {len(found)} kicks from {origin} ({repo.licence})"
        if log:
            log(f"{repo.source}: {status[repo.source]}")
    return clips, status


# --------------------------------------------------------------------------- PyPI: FoxDot


def download_sdist(requirement: str, dest: Path) -> Path:
    """The source archive of ``requirement`` (``NAME==VERSION``) in ``dest``, downloaded with
    ``pip download --no-deps --no-binary :all:`` unless present."""
    name, version = requirement.split("==")
    wanted = f"{name}-{version}".lower()

    def present() -> list[Path]:
        return sorted(p for p in dest.glob("*.tar.gz") if p.name.lower() == f"{wanted}.tar.gz")

    dest.mkdir(parents=True, exist_ok=True)
    if not present():
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               requirement, "-d", str(dest)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not present():
            last = (proc.stderr.strip().splitlines() or ["no archive written"])[-1]
            raise ArchiveError(
                f"`pip download {requirement}` failed ({last}); check the network, or put "
                f"{wanted}.tar.gz into {dest}"
            )
    return present()[0]


def _foxdot_member(name: str) -> str | None:
    """``foxdot-0.9.0/FoxDot/snd/x/lower/0_kick_drum.wav`` → ``x/lower/0_kick_drum.wav`` when it
    is a kick we take; ``PKG-INFO`` of the archive's top folder → ``PKG-INFO``; else None."""
    parts = name.split("/")
    if len(parts) == 2 and parts[1] == "PKG-INFO":
        return "PKG-INFO"
    if len(parts) != 6 or parts[1:3] != ["FoxDot", "snd"] or not parts[5].lower().endswith(".wav"):
        return None
    folder = "/".join(parts[3:5])
    if folder not in FOXDOT_FOLDERS:
        return None
    only = FOXDOT_ONLY.get(folder)
    if only and not Path(parts[5]).match(only):
        return None
    return "/".join(parts[3:])


def extract_foxdot(archive: Path, dest: Path) -> Path:
    """The kick banks and PKG-INFO of the FoxDot source archive, written under ``dest`` (once;
    a marker file records the archive)."""
    marker = dest / ".kickgen-extracted"
    if marker.is_file() and marker.read_text() == archive.name:
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            _extract_files(tar, tmp, _foxdot_member)
    except (OSError, tarfile.TarError) as exc:
        raise ArchiveError(f"{archive}: unreadable source archive ({exc}); delete it") from exc
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    marker.write_text(archive.name)
    return dest


def collect_foxdot(root: Path, origin: str = f"pypi:{FOXDOT}") -> list[SourceClip]:
    """The kicks of an extracted FoxDot tree (``root/x/lower/...``). Numbered takes of one name
    in one folder ("heavy 0" … "heavy 6", "gb_kick 1" …) share a group (:func:`group_key`)."""
    pkg_info = root / "PKG-INFO"
    licence_line = re.search(r"^License:\s*(\S+)", pkg_info.read_text(errors="replace"), re.M)
    if not licence_line or licence_line.group(1).lower() != FOXDOT_LICENCE.lower():
        found = licence_line.group(1) if licence_line else "none"
        raise ArchiveError(
            f"{pkg_info}: licence {found!r}, expected {FOXDOT_LICENCE}; check it before using it"
        )
    clips = []
    for folder in FOXDOT_FOLDERS:
        for f in sorted((root / folder).glob("*.wav")):
            words = f"{f.stem} {FOXDOT_FOLDER_KEYWORDS.get(folder, '')}"
            clips.append(named_clip(f, "foxdot", origin, "snd", FOXDOT_LICENCE, f"{folder}/{f.stem}",
                                    words, f"foxdot:{group_key(root, f)}"))  # fmt: skip
    return clips


def fetch_foxdot(cache: Path, log: Log | None = None) -> tuple[list[SourceClip], str]:
    """Download and extract the FoxDot source archive; its kicks and a status line."""
    archive = download_sdist(FOXDOT, cache / "pypi")
    root = extract_foxdot(archive, cache / "extract" / "foxdot")
    clips = collect_foxdot(root)
    status = f"found: {len(clips)} kicks from pypi:{FOXDOT} ({FOXDOT_LICENCE})"
    if log:
        log(f"foxdot: {status}")
    return clips, status
