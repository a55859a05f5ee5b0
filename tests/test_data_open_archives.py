"""The open sources outside Debian's sample packages (git mirrors, the FoxDot archive, STK's raw
wave), the copy finder and the split's acoustic/electronic strata, on fixtures built here."""

import functools
import io
import json
import shutil
import subprocess
import tarfile
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from kickgen.audio import SAMPLE_RATE, resample
from kickgen.data import fits, open_archives, open_sources
from kickgen.data.build import BuildConfig, build_corpus
from kickgen.data.card import render_card
from kickgen.data.collect import COPY_CORRELATION, find_copies, read_sources
from kickgen.data.split import hold_out_real

SR = SAMPLE_RATE
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

UNLICENSE = "This is free and unencumbered software released into the public domain.\n"
APACHE = "                                 Apache License\n                           Version 2.0, January 2004\n"  # fmt: skip


def kick(freq: float, tau: float = 0.12, sweep: float = 3.0, delay: float = 0.0) -> np.ndarray:
    """A pitched, swept, decaying sine: distinct (freq, tau, sweep) give distinct drums."""
    t = np.arange(int(0.5 * SR)) / SR
    x = np.sin(2 * np.pi * (freq * t + sweep * (1 - np.exp(-t / 0.01)))) * np.exp(-t / tau)
    return np.concatenate([np.zeros(int(delay * SR)), 0.8 * x]).astype(np.float32)


def write(path, wave, rate=SR, subtype="PCM_16"):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, rate, subtype=subtype)
    return path


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_mirror(tmp_path, repo: str, files: dict[str, object]) -> str:
    """A bare mirror of a one-commit repository at ``tmp/mirrors/OWNER+NAME/repo``; its commit."""
    work = tmp_path / "work" / repo.replace("/", "+")
    for rel, content in files.items():
        target = work / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content)
        else:
            write(target, content)
    git("init", "-q", cwd=work)
    git("add", ".", cwd=work)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "kicks", cwd=work)
    mirror = tmp_path / "mirrors" / repo.replace("/", "+") / "repo"
    mirror.parent.mkdir(parents=True)
    git("clone", "-q", "--mirror", str(work), str(mirror), cwd=tmp_path)
    head = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True)
    return head.stdout.decode().strip()


def uzu_files(licence=UNLICENSE):
    return {"bd/10_bd_switchangel.wav": kick(50, 0.15), "bd/11_bd_mot4i.wav": kick(70, 0.08, 6.0),
            "sd/snare.wav": kick(200, 0.05), "LICENSE": licence, "README.md": "uzu"}  # fmt: skip


def wav_bytes(wave, rate=SR, subtype="PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def make_foxdot_sdist(folder, files: dict[str, bytes], licence="cc-by-sa-4.0"):
    """``folder/foxdot-0.9.0.tar.gz`` holding PKG-INFO and ``files`` under FoxDot/snd/."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "foxdot-0.9.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        members = {"foxdot-0.9.0/PKG-INFO": f"Name: FoxDot\nLicense: {licence}\n".encode()}
        members.update({f"foxdot-0.9.0/FoxDot/snd/{k}": v for k, v in files.items()})
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


FOXDOT_FILES = {
    "x/lower/0_kick_drum.wav": wav_bytes(kick(45, 0.2, 1.0)),
    "v/upper/heavy 0.wav": wav_bytes(kick(40, 0.3, 8.0)),
    "v/upper/heavy 1.wav": wav_bytes(kick(42, 0.25, 10.0)),
    "w/upper/gb_kick 1.wav": wav_bytes(kick(110, 0.06, 2.0)),
    "w/upper/gb_snare 1.wav": wav_bytes(kick(300, 0.05)),  # not a kick: left out
    "s/lower/0_shaker.wav": wav_bytes(kick(300, 0.05)),  # another bank: left out
}


# --------------------------------------------------------------------------- copies


def test_find_copies_catches_reencoded_copies_but_not_layers_or_other_drums():
    a, b = kick(50, 0.15), kick(62, 0.1, 5.0)
    copy = resample(resample(0.5 * a, SR, 48000), 48000, SR)  # resampled, quieter
    late = np.concatenate([np.zeros(3000, np.float32), -a])  # later onset, inverted polarity
    layer = 0.3 * a  # a softer velocity layer of drum "a" (same group)
    waves = [a, b, copy, late, layer]
    copies = find_copies(waves, ["a", "b", "c", "d", "a"])
    assert set(copies) == {2, 3} and copies[2][0] == 0 and copies[3][0] == 0
    assert all(corr >= COPY_CORRELATION for _, corr in copies.values())
    assert find_copies([a, b], ["a", "b"]) == {}  # two drums


# --------------------------------------------------------------------------- repositories


@needs_git
def test_repositories_from_mirrors_and_from_the_cache(tmp_path):
    commit = make_mirror(tmp_path, "tidalcycles/uzu-drumkit", uzu_files())
    cache = tmp_path / "cache"
    clips, status = open_archives.collect_repositories(
        cache, (tmp_path / "mirrors",), ("uzu-drumkit", "web-audio-samples")
    )
    assert status["uzu-drumkit"].startswith("found: 2 kicks")
    assert status["web-audio-samples"].startswith("missing:")
    assert "--git-mirror" in status["web-audio-samples"]
    assert [c.name for c in clips] == ["10_bd_switchangel", "11_bd_mot4i"]
    for c in clips:
        assert c.source == "uzu-drumkit" and c.licence == "Unlicense" and c.kind == "real"
        assert c.package == f"github:tidalcycles/uzu-drumkit@{commit[:12]}"
        assert "switchangel" not in c.keywords and "mot4i" not in c.keywords  # contributors
    assert clips[1].keywords.split() == ["kick", "electro", "analog"]
    assert len({c.group for c in clips}) == 2  # two drums
    assert not (cache / "git" / "tidalcycles+uzu-drumkit" / "sd").exists()  # only bd/ taken
    # the unpacked tree serves a later run without the mirror
    again, status = open_archives.collect_repositories(cache, (), ("uzu-drumkit",))
    assert [c.file for c in again] == [c.file for c in clips]
    assert status["uzu-drumkit"].endswith("(Unlicense)") and commit[:12] in status["uzu-drumkit"]
    # the repository itself (not its parent folder) is accepted too
    direct = tmp_path / "mirrors" / "tidalcycles+uzu-drumkit" / "repo"
    assert open_archives.find_repository((direct,), open_archives.REPOSITORIES[0]) == direct


@needs_git
def test_a_repository_whose_licence_changed_is_left_out(tmp_path):
    make_mirror(tmp_path, "tidalcycles/uzu-drumkit", uzu_files(licence="All rights reserved.\n"))
    clips, status = open_archives.collect_repositories(
        tmp_path / "cache", (tmp_path / "mirrors",), ("uzu-drumkit",)
    )
    assert clips == [] and status["uzu-drumkit"].startswith("missing:")
    assert "licence" in status["uzu-drumkit"]


def test_web_audio_samples_unpacked_by_hand(tmp_path):
    root = tmp_path / "cache" / "git" / "GoogleChromeLabs+web-audio-samples"
    drums = root / "src/sounds/drum-samples"
    write(drums / "CR78" / "kick.wav", kick(60, 0.1), 44100)
    write(drums / "Techno" / "kick.wav", kick(48, 0.2, 8.0), 96000)
    write(drums / "Techno" / "snare.wav", kick(200, 0.05))
    (root / "LICENSE").write_text(APACHE)
    clips, status = open_archives.collect_repositories(
        tmp_path / "cache", (), ("web-audio-samples",)
    )
    assert status["web-audio-samples"].startswith("found: 2 kicks")
    by_kit = {c.group: c for c in clips}
    assert set(by_kit) == {"web-audio-samples:CR78", "web-audio-samples:Techno"}
    assert "analog" in by_kit["web-audio-samples:CR78"].keywords.split()
    assert "techno" in by_kit["web-audio-samples:Techno"].keywords.split()
    assert {c.licence for c in clips} == {"Apache-2.0"}
    assert {c.package for c in clips} == {"github:GoogleChromeLabs/web-audio-samples"}


# --------------------------------------------------------------------------- FoxDot, STK


def test_foxdot_archive(tmp_path):
    cache = tmp_path / "cache"
    make_foxdot_sdist(cache / "pypi", FOXDOT_FILES)  # present: nothing is downloaded
    clips, status = open_archives.fetch_foxdot(cache)
    assert status.startswith("found: 4 kicks from pypi:foxdot==0.9.0")
    names = [c.name for c in clips]
    assert names == [
        "x/lower/0_kick_drum",
        "v/upper/heavy 0",
        "v/upper/heavy 1",
        "w/upper/gb_kick 1",
    ]
    groups = Counter(c.group for c in clips)
    assert groups["foxdot:v/upper/heavy"] == 2  # numbered takes of one name: one drum
    assert {c.licence for c in clips} == {"CC-BY-SA-4.0"}
    assert "lofi" in clips[-1].keywords.split()
    assert not any("lower" in c.keywords or "upper" in c.keywords for c in clips)
    (cache / "pypi" / "foxdot-0.9.0.tar.gz").unlink()
    shutil.rmtree(cache / "extract")
    make_foxdot_sdist(cache / "pypi", FOXDOT_FILES, licence="GPL")
    with pytest.raises(open_archives.ArchiveError, match="expected CC-BY-SA-4.0"):
        open_archives.fetch_foxdot(cache)


STK_COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: 1995-2021, Perry R. Cook and Gary P. Scavone
License: other

Files: debian/*
Copyright: someone
License: GPL-2+

License: other
 Permission is hereby granted, free of charge, to any person obtaining a copy
"""


def test_stk_bassdrum_is_big_endian_raw(tmp_path):
    root = tmp_path / "stk"
    raw = root / "usr/share/stk/rawwaves/bassdrum.raw"
    raw.parent.mkdir(parents=True)
    wave = resample(kick(80, 0.05), SR, 22050)[:2144]
    raw.write_bytes((wave * 32767).astype(">i2").tobytes())
    doc = root / "usr/share/doc/stk"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(STK_COPYRIGHT)
    np.testing.assert_allclose(open_sources.read_raw_pcm(raw), wave, atol=1e-4)
    [clip] = open_sources.collect_stk(root, "stk", tmp_path / "rendered")
    assert clip.licence == "STK (MIT-style)" and clip.keywords.split() == ["kick", "acoustic"]
    converted, rate = sf.read(clip.file)
    assert rate == SR and converted.size == pytest.approx(2 * 2144, abs=2)


# --------------------------------------------------------------------------- fetch_open, build


@pytest.fixture
def archive_cache(tmp_path):
    """A cache whose web-audio-samples tree is unpacked by hand and whose FoxDot archive holds a
    copy (resampled, quieter) of the Techno kick and a byte-identical duplicate."""
    cache = tmp_path / "cache"
    root = cache / "git" / "GoogleChromeLabs+web-audio-samples"
    drums = root / "src/sounds/drum-samples"
    techno = kick(48, 0.2, 8.0)
    write(drums / "Techno" / "kick.wav", techno)
    write(drums / "CR78" / "kick.wav", kick(60, 0.1))
    write(drums / "acoustic-kit" / "kick.wav", kick(75, 0.09, 1.5))
    write(drums / "acoustic-kit-2" / "kick.wav", kick(85, 0.07, 0.5))
    (root / "LICENSE").write_text(APACHE)
    files = dict(FOXDOT_FILES)
    files["x/upper/0_kick_drum.wav"] = wav_bytes(0.5 * resample(techno, SR, 48000), 48000)
    files["x/upper/1_bass_drum.wav"] = files["x/lower/0_kick_drum.wav"]
    make_foxdot_sdist(cache / "pypi", files)
    return cache


SOURCES = ("uzu-drumkit", "web-audio-samples", "foxdot")


def test_fetch_open_reports_missing_sources_and_drops_copies(archive_cache, capsys):
    from kickgen.cli import main

    assert main(["data", "fetch-open", str(archive_cache), "--packages", *SOURCES]) == 0
    out = capsys.readouterr().out
    assert "uzu-drumkit" in out and "missing: no clone or mirror" in out
    report = json.loads((archive_cache / "fetch_report.json").read_text())
    assert report["origins"]["web-audio-samples"].startswith("found: 4 kicks")
    assert report["origins"]["uzu-drumkit"].startswith("missing")
    reasons = {s["file"].split("/foxdot/")[-1]: s["reason"] for s in report["skipped"]}
    assert (
        reasons["x/upper/0_kick_drum.wav"].startswith("copy of")
        and "Techno" in reasons["x/upper/0_kick_drum.wav"]
    )
    assert reasons["x/upper/1_bass_drum.wav"].startswith("duplicate of")
    kept = read_sources(archive_cache / "open_sources.csv")
    assert len(kept) == 4 + 4 and report["sources"] == 8
    with pytest.raises(open_sources.FetchError, match="unknown source"):
        open_sources.fetch_open(archive_cache, ("no-such-source",))


def test_build_with_archive_sources(archive_cache, tmp_path, monkeypatch):
    """A tiny build from the archive sources alone: origins and licences reach the manifest, the
    electronic drums reach validation, the card names the sources and what was missing."""
    monkeypatch.setattr(
        open_sources, "fetch_open", functools.partial(open_sources.fetch_open, sources=SOURCES)
    )
    monkeypatch.setattr(fits, "PILOT", 16)  # the acceptance models' pilot kicks: few, fast
    out = tmp_path / "corpus"
    config = BuildConfig(out=out, open_cache=archive_cache, synth=4, augment=1, val_real=2,
                         val_kits=1, val_real_fraction=0.3, min_count=1, fit_steps=10, workers=1)  # fmt: skip
    report = build_corpus(config, quiet=True)
    assert report["open_sources"]["uzu-drumkit"].startswith("missing")
    rows = [r for r in csv_rows(out) if r["kind"] == "real"]
    assert {r["source"] for r in rows} == {"web-audio-samples", "foxdot"}
    assert {r["licence"] for r in rows if r["source"] == "foxdot"} == {"CC-BY-SA-4.0"}
    val = [r for r in rows if r["split"] == "val"]
    assert any("acoustic" not in r["name_keywords"].split() for r in val)  # electronic held out
    assert any("acoustic" in r["name_keywords"].split() for r in val)  # acoustic too
    card = render_card(out, "x.png")
    assert "the samples carry no note of their own" in card and "FoxDot contributors" in card
    assert "**uzu-drumkit** missing" in card


def csv_rows(out):
    import csv

    with open(out / "metadata.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- split strata


def test_hold_out_keeps_electronic_drums_in_validation():
    """Multi-layer acoustic drums in many kits, single-recording electronic drums in a few: the
    strata give each kind its share of validation; without them the layers fill it."""
    groups = {f"ac{k}/drum": (f"ac{k}", 6) for k in range(8)}
    groups |= {f"el{k}/drum{d}": (f"el{k}", 1) for k in range(3) for d in range(14)}
    acoustic = {g for g in groups if g.startswith("ac")}
    plain = hold_out_real(groups, 0.15, seed=0, min_recordings=12, min_kits=4)
    strata = hold_out_real(groups, 0.15, seed=0, min_recordings=12, min_kits=4, acoustic=acoustic)
    assert strata == hold_out_real(groups, 0.15, 0, 12, 4, acoustic)  # deterministic
    n_el = sum(not g.startswith("ac") for g in strata)
    assert n_el >= round(0.15 * 42) and n_el > sum(not g.startswith("ac") for g in plain)
    assert 1 <= len(strata & acoustic) <= 4  # its share (of 8), never half
    assert sum(groups[g][1] for g in strata) >= 12 and len({groups[g][0] for g in strata}) >= 4
