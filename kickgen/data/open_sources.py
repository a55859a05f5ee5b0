"""The open kick sources: Debian packages fetched without installing them (``fetch-open``).

``apt-get download PKG`` puts the ``.deb`` in ``CACHE/debs`` and ``dpkg-deb -x`` unpacks it into
``CACHE/extract/PKG``; nothing is installed and the unpacked files are only read. Collectors then
find the kicks of each package:

| package | kicks |
| --- | --- |
| hydrogen-drumkits, hydrogen-drumkits-effects, hydrogen-data | ``drumkit.xml`` instruments named kick / bass drum / bd: every layer file |
| lmms-common | ``samples/drums`` and ``samples/beats`` files named kick or bassdrum (loops are skipped); ``samples/drumsynth/**`` kick patches rendered by :mod:`kickgen.data.drumsynth`; ``presets/Kicker`` kick presets rendered by :mod:`kickgen.data.kicker` |
| sonic-pi-samples | ``bd_*``, ``*kick*`` and ``drum_bass_*`` |
| exadrums | ``BD_*`` |
| freepats | ``Drum_000/*Kick*.pat`` (GUS patches, read by :func:`read_gus_patch`) |
| stk | ``rawwaves/bassdrum.raw`` (headerless big-endian 16-bit at 22,050 Hz, read by :func:`read_raw_pcm`) |

Every file's licence comes from the package's ``usr/share/doc/PKG/copyright`` (the DEP-5
paragraph whose ``Files:`` matches it; the last match wins). :func:`fetch_open` adds the kicks of
:mod:`kickgen.data.open_archives` (GitHub repositories, a PyPI archive). Identical files count
once, and a recording whose attack copies one of another drum is left out
(:func:`kickgen.data.collect.find_copies`). Rendered patches are written under
``CACHE/rendered-vN``: each patch at the tunings and stretches of ``RENDER_VARIANTS``
(DrumSynth's and Kicker's own controls), all in the patch's group.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kickgen.audio import SAMPLE_RATE, AudioError, resample, write_wav
from kickgen.data import drumsynth, kicker, open_archives
from kickgen.data.collect import (
    SourceClip,
    file_digest,
    find_copies,
    is_loop_path,
    load_source,
    named_clip,
    write_sources,
)
from kickgen.errors import KickgenError

PACKAGES: tuple[str, ...] = (
    "hydrogen-drumkits",
    "hydrogen-drumkits-effects",
    "hydrogen-data",
    "lmms-common",
    "sonic-pi-samples",
    "exadrums",
    "freepats",
    "stk",
)
SOURCES: tuple[str, ...] = (*PACKAGES, *open_archives.ARCHIVE_SOURCES)  # what fetch-open takes

RENDER_VERSION = 1  # bump when a renderer changes: cached renders are then redone

# (tuning in semitones, stretch factor) of each rendered variant of a DrumSynth/Kicker patch
RENDER_VARIANTS: tuple[tuple[float, float], ...] = tuple(
    (tune, stretch) for tune in (-2.0, 0.0, 2.0) for stretch in (0.8, 1.0, 1.25)
)

# Curated keywords of kits and folders whose names mean nothing to a listener by themselves.
KIT_KEYWORDS: dict[str, str] = {
    "GMRockKit": "acoustic rock",
    "The Black Pearl 1.0": "acoustic",
    "ForzeeStereo": "acoustic",
    "BJA_Pacific": "acoustic",
    "ColomboAcousticDrumkit": "acoustic",
    "Millo-Drums_v.1": "acoustic",  # the drumkit.xml: "recording my ludwig set"
    "Millo_MultiLayered2": "acoustic",
    "Millo_MultiLayered3": "acoustic",
    "TR808EmulationKit": "808 analog",
    "ElectricEmpireKit": "electro",
    "HardElectro1": "electro house",
    "VariBreaks": "breaks",
}
DRUMSYNTH_FOLDER_KEYWORDS: dict[str, str] = {
    "tr808": "808 analog",
    "tr909": "909 analog",
    "tr606": "606 analog",
    "tr77": "analog",
    "cr78": "analog",
    "cr8000": "analog",
    "farfisa": "analog",
    "acoustic": "acoustic",
    "electro": "electro",
    "misc_electro": "electro",
}
SOURCE_KEYWORDS: dict[str, str] = {  # what every kick of a source is
    "exadrums": "acoustic",
    "freepats": "acoustic",  # General MIDI notes 35/36: (acoustic) bass drum
    "stk": "acoustic",  # the bass drum of STK's Drummer instrument
}
STK_RAW_RATE = 22050  # Hz of STK's rawwaves
# the copyright file's "License: other": the MIT licence's words plus a non-binding request
STK_LICENCE = "STK (MIT-style)"

Log = Callable[[str], None]  # reports a skipped patch or a step


class FetchError(KickgenError):
    """A Debian package could not be downloaded or unpacked."""


# --------------------------------------------------------------------------- download, unpack


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise FetchError(
            f"`{cmd[0]}` not found: fetch-open needs apt-get and dpkg-deb (Debian/Ubuntu)"
        ) from exc
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise FetchError(
            f"`{' '.join(cmd)}` failed ({last}); run `apt-get update` and check the network"
        )


def download(package: str, debs: Path) -> Path:
    """The package's ``.deb`` in ``debs``, downloaded with ``apt-get download`` unless present."""
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        _run(["apt-get", "download", package], cwd=debs)
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            raise FetchError(f"apt-get download {package} wrote no .deb into {debs}")
    return found[-1]


def extract(deb: Path, dest: Path) -> Path:
    """Unpack ``deb`` into ``dest`` with ``dpkg-deb -x`` (once; a marker file records it)."""
    marker = dest / ".kickgen-extracted"
    if marker.is_file() and marker.read_text() == deb.name:
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _run(["dpkg-deb", "-x", str(deb), str(tmp)])
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    marker.write_text(deb.name)
    return dest


# --------------------------------------------------------------------------- licences


def parse_copyright(text: str) -> list[tuple[list[str], str]]:
    """DEP-5 ``copyright`` text → ``[(file patterns, licence short name)]`` in file order."""
    stanzas: list[tuple[list[str], str]] = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "files" in fields and "license" in fields:
            patterns = fields["files"].split()
            licence = fields["license"].splitlines()[0].strip()
            stanzas.append((patterns, licence))
    return stanzas


def _pattern_matches(pattern: str, key: str) -> bool:
    """A DEP-5 ``Files:`` pattern against a key. Installed paths differ from the upstream tree,
    so a pattern that names one exact file also matches that file name anywhere."""
    if fnmatch.fnmatchcase(key, pattern):
        return True
    base = pattern.rsplit("/", 1)[-1]
    exact = not any(ch in base for ch in "*?[")
    return ("/" not in pattern or exact) and fnmatch.fnmatchcase(key.rsplit("/", 1)[-1], base)


def licence_for(copyright_text: str, keys: list[str]) -> str:
    """Licence of a file: the last DEP-5 stanza with a pattern matching any of ``keys`` (paths
    as the upstream tree names them, e.g. ``drumkits/GMRockKit.h2drumkit`` or a file name).
    Copyright files that are not DEP-5 are read for the GPL's wording."""
    stanzas = parse_copyright(copyright_text)
    licence = ""
    for patterns, name in stanzas:
        if any(_pattern_matches(pattern, k) for pattern in patterns for k in keys):
            licence = name
    if licence or stanzas:
        return licence or stanzas[0][1]
    text = " ".join(copyright_text.split())
    if "GNU General Public License" in text:
        version = re.search(r"version (\d)", text)
        later = "any later version" in text
        name = f"GPL-{version.group(1) if version else '2'}{'+' if later else ''}"
        return name + (" with exception" if "special exception" in text else "")
    return "see copyright file"


def _copyright(root: Path, package: str) -> str:
    path = root / "usr/share/doc" / package / "copyright"
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


# --------------------------------------------------------------------------- file formats


def _strip_namespaces(root: ET.Element) -> ET.Element:
    for el in root.iter():
        if isinstance(el.tag, str) and "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


_KICK_INSTRUMENT = re.compile(r"kick|bass\s*drum|bassdrum|(?<![a-z])bd(?![a-z])", re.IGNORECASE)


def hydrogen_kit_kicks(drumkit_xml: Path) -> tuple[str, list[tuple[str, list[Path]]]]:
    """Kit name and ``[(instrument name, layer files)]`` of the kick instruments of a
    ``drumkit.xml`` (old and new formats: layers directly under the instrument or inside an
    ``instrumentComponent``)."""
    try:
        root = _strip_namespaces(ET.parse(drumkit_xml).getroot())
    except (OSError, ET.ParseError) as exc:
        raise AudioError(f"{drumkit_xml}: unreadable drumkit.xml ({exc})") from exc
    kit = (root.findtext("name") or drumkit_xml.parent.name).strip()
    kicks = []
    for inst in root.iter("instrument"):
        name = (inst.findtext("name") or "").strip()
        if not _KICK_INSTRUMENT.search(name):
            continue
        files = [layer.findtext("filename") for layer in inst.iter("layer")]
        if not any(files) and inst.findtext("filename"):
            files = [inst.findtext("filename")]
        paths = [drumkit_xml.parent / f.strip() for f in files if f and f.strip()]
        if paths:
            kicks.append((name, paths))
    return kit, kicks


def read_gus_patch(path: str | Path) -> tuple[np.ndarray, int]:
    """First sample of a Gravis UltraSound ``.pat`` patch: float32 ``(L,)`` and its sample rate.

    Layout: 129-byte file header (``GF1PATCH110``), 63-byte instrument header, 47-byte layer
    header, then per sample a 96-byte header (wave size at 8, sample rate at 20, modes at 55:
    bit 0 16-bit, bit 1 unsigned) followed by the wave data.
    """
    path = Path(path)
    data = path.read_bytes()
    if not data.startswith(b"GF1PATCH1") or len(data) < 335:
        raise AudioError(f"{path}: not a GUS patch (no GF1PATCH header)")
    offset = 129 + 63 + 47
    size = struct.unpack_from("<I", data, offset + 8)[0]
    rate = struct.unpack_from("<H", data, offset + 20)[0]
    modes = data[offset + 55]
    start = offset + 96
    raw = data[start : start + size]
    if len(raw) < size or size == 0 or rate == 0:
        raise AudioError(f"{path}: truncated GUS patch")
    sixteen, unsigned = modes & 1, modes & 2
    if sixteen:
        wave = np.frombuffer(raw[: size // 2 * 2], dtype="<u2" if unsigned else "<i2").astype(
            np.float32
        )
        wave = (wave - 32768.0 if unsigned else wave) / 32768.0
    else:
        wave = np.frombuffer(raw, dtype=np.uint8 if unsigned else np.int8).astype(np.float32)
        wave = (wave - 128.0 if unsigned else wave) / 128.0
    return wave.astype(np.float32), int(rate)


def read_raw_pcm(path: str | Path, dtype: str = ">i2") -> np.ndarray:
    """A headerless 16-bit PCM file (STK's rawwaves: big-endian) as float32 ``(L,)``."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < 4:
        raise AudioError(f"{path}: empty raw wave")
    return (np.frombuffer(data[: len(data) // 2 * 2], dtype=dtype) / 32768.0).astype(np.float32)


def _camel_words(text: str) -> str:
    """``KickPower`` → ``Kick Power`` (preset names glue words together)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", text)


# --------------------------------------------------------------------------- collectors


def _package_clip(path: Path, source: str, package: str, kit: str, licence: str) -> SourceClip:
    """A recording as a package ships it: named after its file, a group of its own, its keywords
    from the name plus what every kick of the source is (:data:`SOURCE_KEYWORDS`)."""
    words = f"{path.stem} {SOURCE_KEYWORDS.get(source, '')}"
    return named_clip(
        path, source, package, kit, licence, path.stem, words, f"{source}:{path.stem}"
    )


def collect_hydrogen(root: Path, package: str) -> list[SourceClip]:
    text = _copyright(root, package)
    clips = []
    for xml in sorted((root / "usr/share/hydrogen/data/drumkits").glob("*/drumkit.xml")):
        kit_dir = xml.parent.name
        kit, kicks = hydrogen_kit_kicks(xml)
        licence = licence_for(text, [f"drumkits/{kit_dir}.h2drumkit", kit_dir])
        for inst, files in kicks:
            for f in files:
                clips.append(
                    named_clip(f, "hydrogen", package, kit, licence, f"{inst} {f.stem}",
                               f"{inst} {f.stem} {KIT_KEYWORDS.get(kit_dir, '')}",
                               f"hydrogen:{kit_dir}:{inst}")
                )  # fmt: skip
    return clips


def collect_lmms(
    root: Path, package: str, rendered: Path, report: Log | None = None
) -> list[SourceClip]:
    text = _copyright(root, package)
    base = root / "usr/share/lmms"
    clips = []
    for folder in ("samples/drums", "samples/beats"):
        for f in sorted((base / folder).glob("*")):
            stem = f.stem.lower()
            if f.suffix.lower() in (".ogg", ".wav", ".flac") and (
                "kick" in stem or "bassdrum" in stem
            ):
                licence = licence_for(text, [f"data/{folder}/{f.name}", f.name])
                clips.append(_package_clip(f, "lmms", package, folder.split("/")[-1], licence))
    for patch in sorted((base / "samples/drumsynth").rglob("*.ds")):
        if not drumsynth.is_kick_patch(patch):
            continue
        folder = patch.parent.name
        licence = licence_for(text, [f"data/samples/drumsynth/{folder}/{patch.name}", patch.name])
        clips += _render_variants(
            patch, "drumsynth", package, folder, licence, f"{folder} {patch.stem}",
            DRUMSYNTH_FOLDER_KEYWORDS.get(folder, ""), rendered / "drumsynth" / folder,
            lambda p, tune, stretch, seed: drumsynth.render_file(p, tuning=tune, stretch=stretch, seed=seed),
            report,
        )  # fmt: skip
    for preset_path in sorted((base / "presets/Kicker").glob("*.xpf")):
        try:
            preset = kicker.read_preset(preset_path)
        except kicker.PresetError as exc:
            if report:
                report(f"skip {exc}")
            continue
        if not kicker.is_kick_preset(preset):
            continue
        licence = licence_for(text, [f"data/presets/Kicker/{preset_path.name}", preset_path.name])
        clips += _render_variants(
            preset_path, "kicker", package, "Kicker", licence, _camel_words(preset_path.stem), "",
            rendered / "kicker",
            lambda p, tune, stretch, seed: kicker.render_preset(kicker.read_preset(p), tuning=tune, stretch=stretch, seed=seed),
            report,
        )  # fmt: skip
    return clips


def _render_variants(
    patch: Path, kind: str, package: str, kit: str, licence: str, name: str, extra: str,
    out_dir: Path, render: Callable[[Path, float, float, int], np.ndarray], report: Log | None,
) -> list[SourceClip]:  # fmt: skip
    """Render a patch at every RENDER_VARIANTS setting into ``out_dir``; one group per patch."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = []
    slug = re.sub(r"[^a-z0-9]+", "_", patch.stem.lower()).strip("_")
    for i, (tune, stretch) in enumerate(RENDER_VARIANTS):
        target = out_dir / f"{slug}_t{tune:+.0f}_s{stretch:.2f}.wav"
        if not target.is_file():
            try:
                wave = render(patch, tune, stretch, i)
            except KickgenError as exc:
                if report:
                    report(f"skip {exc}")
                return []
            peak = float(np.abs(wave).max())
            write_wav(target, (wave / max(peak, 1e-12) * 0.9).astype(np.float32))
        params = f"patch={patch} tuning={tune:+g} stretch={stretch:g}"
        clips.append(named_clip(target, kind, package, kit, licence, name, f"{name} {extra}",
                                f"{kind}:{kit}/{patch.stem}", kind, params))  # fmt: skip
    return clips


def collect_sonic_pi(root: Path, package: str) -> list[SourceClip]:
    text = _copyright(root, package)
    clips = []
    for f in sorted((root / "usr/share/sonic-pi/samples").glob("*.flac")):
        stem = f.stem.lower()
        if stem.startswith("bd_") or "kick" in stem or stem.startswith("drum_bass_"):
            licence = licence_for(text, [f"etc/samples/{f.name}", f.name])
            clips.append(_package_clip(f, "sonic-pi", package, "samples", licence))
    return clips


def collect_exadrums(root: Path, package: str) -> list[SourceClip]:
    text = _copyright(root, package)
    clips = []
    for f in sorted((root / "usr/share/exadrums").glob("*.wav")):
        if f.stem.lower().startswith("bd"):
            licence = licence_for(text, [f.name])
            clips.append(_package_clip(f, "exadrums", package, "exadrums", licence))
    return clips


def collect_freepats(root: Path, package: str, rendered: Path) -> list[SourceClip]:
    """GUS kick patches, converted to WAV under ``rendered/freepats`` (the sample as recorded)."""
    text = _copyright(root, package)
    clips = []
    out_dir = rendered / "freepats"
    out_dir.mkdir(parents=True, exist_ok=True)
    for pat in sorted((root / "usr/share/midi/freepats").glob("Drum_*/*.pat")):
        if "kick" not in pat.stem.lower():
            continue
        wave, rate = read_gus_patch(pat)
        target = out_dir / f"{pat.stem}.wav"
        if not target.is_file():
            write_wav(target, resample(wave, rate, SAMPLE_RATE))
        licence = licence_for(text, [pat.name])
        note = pat.with_suffix(".txt")
        if note.is_file() and "GNU Free Documentation License" in " ".join(
            note.read_text(errors="replace").split()
        ):
            licence = "GFDL-1.2+"  # the recording's own licence, stated in the patch's notes
        clips.append(_package_clip(target, "freepats", package, pat.parent.name, licence))
    return clips


def collect_stk(root: Path, package: str, rendered: Path) -> list[SourceClip]:
    """STK's bass drum, converted to WAV under ``rendered/stk`` (the samples as they are)."""
    text = _copyright(root, package)
    raw = root / "usr/share/stk/rawwaves/bassdrum.raw"
    if not raw.is_file():
        return []
    target = rendered / "stk" / "bassdrum.wav"
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        write_wav(target, resample(read_raw_pcm(raw), STK_RAW_RATE, SAMPLE_RATE))
    licence = licence_for(text, ["rawwaves/bassdrum.raw", raw.name])
    if licence == "other" and "permission is hereby granted, free of charge" in text.lower():
        licence = STK_LICENCE
    return [_package_clip(target, "stk", package, "rawwaves", licence)]


COLLECTORS = {
    "hydrogen-drumkits": "hydrogen",
    "hydrogen-drumkits-effects": "hydrogen",
    "hydrogen-data": "hydrogen",
    "lmms-common": "lmms",
    "sonic-pi-samples": "sonic-pi",
    "exadrums": "exadrums",
    "freepats": "freepats",
    "stk": "stk",
}


def fetch_open(
    cache: str | Path,
    sources: tuple[str, ...] = SOURCES,
    *,
    git_mirrors: tuple[str | Path, ...] = (),
    progress: Callable[[str], None] | None = None,
) -> tuple[list[SourceClip], list[tuple[str, str]], dict[str, str]]:
    """Download, unpack and collect the open kicks of ``sources`` (Debian packages and the
    names of :data:`kickgen.data.open_archives.ARCHIVE_SOURCES`) into ``cache``; the GitHub
    repositories come from ``git_mirrors`` or ``cache/git`` (see :mod:`~kickgen.data.open_archives`).

    Returns the usable kicks, ``(file, reason)`` for each skipped one (unreadable, silent, a loop,
    a duplicate, a copy of another drum) and a status line per source (``found: ...`` or
    ``missing: ...``). Writes ``cache/open_sources.csv`` and ``cache/fetch_report.json``.
    """
    cache = Path(cache).expanduser().resolve()
    rendered = cache / f"rendered-v{RENDER_VERSION}"  # a renderer change renders afresh
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise FetchError(f"unknown source {unknown[0]!r}; choose from {', '.join(SOURCES)}")
    found: list[SourceClip] = []
    status: dict[str, str] = {}
    for package in (p for p in PACKAGES if p in sources):
        if progress:
            progress(f"{package}: download and unpack")
        root = extract(download(package, cache / "debs"), cache / "extract" / package)
        kind = COLLECTORS[package]
        before = len(found)
        if kind == "hydrogen":
            found += collect_hydrogen(root, package)
        elif kind == "lmms":
            found += collect_lmms(root, package, rendered, progress)
        elif kind == "sonic-pi":
            found += collect_sonic_pi(root, package)
        elif kind == "exadrums":
            found += collect_exadrums(root, package)
        elif kind == "stk":
            found += collect_stk(root, package, rendered)
        else:
            found += collect_freepats(root, package, rendered)
        status[package] = f"found: {len(found) - before} kicks and patches from Debian {package}"
    mirrors = tuple(Path(m) for m in git_mirrors)
    clips, repo_status = open_archives.collect_repositories(cache, mirrors, sources, progress)
    found += clips
    status.update(repo_status)
    if "foxdot" in sources:
        if progress:
            progress("foxdot: download and unpack")
        clips, status["foxdot"] = open_archives.fetch_foxdot(cache, progress)
        found += clips
    clips, skipped = _usable(found)
    write_sources(cache / "open_sources.csv", clips)
    report = {"sources": len(clips), "origins": status,
              "skipped": [{"file": f, "reason": r} for f, r in skipped]}  # fmt: skip
    (cache / "fetch_report.json").write_text(json.dumps(report, indent=1))
    return clips, skipped, status


def _usable(found: list[SourceClip]) -> tuple[list[SourceClip], list[tuple[str, str]]]:
    """The kicks of ``found`` that load as one-shots, without identical files or recordings that
    copy a recording of another drum (:func:`find_copies`); the others with their reasons."""
    clips, skipped, waves = [], [], []
    seen: dict[str, str] = {}
    for clip in found:
        path = Path(clip.file)
        if clip.kind == "real" and is_loop_path(path):
            skipped.append((clip.file, "loop name"))
            continue
        try:
            wave = load_source(path)
        except AudioError as exc:
            skipped.append((clip.file, str(exc).removeprefix(f"{path}: ")))
            continue
        digest = file_digest(path)
        if digest in seen:
            skipped.append((clip.file, f"duplicate of {seen[digest]}"))
            continue
        seen[digest] = clip.file
        clips.append(clip)
        waves.append(wave if clip.kind == "real" else None)
    real = [i for i, w in enumerate(waves) if w is not None]
    copies = find_copies([waves[i] for i in real], [clips[i].group for i in real])
    for k, (original, corr) in copies.items():
        reason = f"copy of {clips[real[original]].file} (attack correlation {corr:.3f})"
        skipped.append((clips[real[k]].file, reason))
    dropped = {real[k] for k in copies}
    return [c for i, c in enumerate(clips) if i not in dropped], skipped
