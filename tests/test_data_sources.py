"""Source parsers and collectors on small fixtures written by the tests (offline)."""

import hashlib
import struct

import numpy as np
import pytest
import soundfile as sf

from kickgen.audio import SAMPLE_RATE
from kickgen.data import drumsynth, kicker
from kickgen.data.collect import collect_library, count_hits, group_key, load_source
from kickgen.data.open_sources import hydrogen_kit_kicks, licence_for, read_gus_patch
from kickgen.descriptors import describe

SR = SAMPLE_RATE


def kick_wave(freq=55.0, seconds=0.5, delay=0.0, tau=0.08) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    x = np.sin(2 * np.pi * freq * t) * np.exp(-t / tau)
    return np.concatenate([np.zeros(int(delay * SR)), 0.8 * x]).astype(np.float32)


# --------------------------------------------------------------------------- hydrogen


DRUMKIT_NEW = """<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">
 <name>Tiny Kit</name>
 <license>GPL</license>
 <instrumentList>
  <instrument><id>0</id><name>Kick Hard</name>
   <instrumentComponent>
    <layer><filename>kick_soft.wav</filename><min>0</min><max>0.5</max></layer>
    <layer><filename>kick_loud.wav</filename><min>0.5</min><max>1</max></layer>
   </instrumentComponent>
  </instrument>
  <instrument><id>1</id><name>Snare</name>
   <instrumentComponent><layer><filename>snare.wav</filename></layer></instrumentComponent>
  </instrument>
  <instrument><id>2</id><name>c3 - bass drum 1</name>
   <instrumentComponent><layer><filename>beats_06-38.flac</filename></layer></instrumentComponent>
  </instrument>
 </instrumentList>
</drumkit_info>
"""

DRUMKIT_OLD = """<drumkit_info><name>Old Kit</name><instrumentList>
 <instrument><name>BassDrum</name><filename>bd.wav</filename></instrument>
 <instrument><name>Hat</name><filename>hat.wav</filename></instrument>
</instrumentList></drumkit_info>"""


def test_hydrogen_drumkit_kicks_new_and_old_formats(tmp_path):
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "drumkit.xml").write_text(DRUMKIT_NEW)
    kit, kicks = hydrogen_kit_kicks(tmp_path / "new" / "drumkit.xml")
    assert kit == "Tiny Kit"
    assert [name for name, _ in kicks] == ["Kick Hard", "c3 - bass drum 1"]
    assert [p.name for p in kicks[0][1]] == ["kick_soft.wav", "kick_loud.wav"]  # every layer
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "drumkit.xml").write_text(DRUMKIT_OLD)
    kit, kicks = hydrogen_kit_kicks(tmp_path / "old" / "drumkit.xml")
    assert kit == "Old Kit" and [(n, [p.name for p in f]) for n, f in kicks] == [
        ("BassDrum", ["bd.wav"])
    ]


# --------------------------------------------------------------------------- licences

COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: someone
License: GPL-2+

Files:
 drumkits/The?Black?Pearl?1.0.h2drumkit
 drumkits/Other.h2drumkit
Copyright: Glen
License: CC0

Files: etc/samples/bd_808.flac
Copyright: 2013 EKVelika
License: CC-BY-4.0

Files: debian/*
Copyright: packager
License: GPL-3+
"""


def test_licence_from_dep5_copyright():
    assert licence_for(COPYRIGHT, ["drumkits/The Black Pearl 1.0.h2drumkit"]) == "CC0"
    assert licence_for(COPYRIGHT, ["usr/share/sonic-pi/samples/bd_808.flac"]) == "CC-BY-4.0"
    # "debian/*" must not capture every file name; the default paragraph applies
    assert licence_for(COPYRIGHT, ["drumkits/GMRockKit.h2drumkit", "Kick.wav"]) == "GPL-2+"
    gpl = "This is free software; under the GNU General Public License as published by the FSF; either version 2 of the License, or (at your option) any later version."
    assert licence_for(gpl, ["x.pat"]) == "GPL-2+"


# --------------------------------------------------------------------------- GUS patch


def write_gus_patch(path, samples: np.ndarray, rate: int) -> None:
    data = bytearray(b"GF1PATCH110\x00ID#000002\x00".ljust(129, b"\x00"))
    data += bytearray(63) + bytearray(47)
    header = bytearray(96)
    raw = samples.astype("<i2").tobytes()
    struct.pack_into("<I", header, 8, len(raw))
    struct.pack_into("<H", header, 20, rate)
    header[55] = 1  # 16-bit signed
    path.write_bytes(bytes(data + header) + raw)


def test_read_gus_patch(tmp_path):
    samples = (np.sin(np.arange(2205) / 10.0) * 20000).astype(np.int16)
    write_gus_patch(tmp_path / "035_Kick_1.pat", samples, 22050)
    wave, rate = read_gus_patch(tmp_path / "035_Kick_1.pat")
    assert rate == 22050 and wave.dtype == np.float32
    np.testing.assert_allclose(wave, samples / 32768.0, atol=1e-7)
    (tmp_path / "bad.pat").write_bytes(b"RIFF....")
    with pytest.raises(Exception, match="not a GUS patch"):
        read_gus_patch(tmp_path / "bad.pat")


# --------------------------------------------------------------------------- DrumSynth

DS_PATCH = """[General]
Version=DrumSynth v2.0
Tuning=0
Stretch=100
Level=0
Filter=0

[Tone]
On=1
Level=128
F1=200
F2=50
Droop=40
Phase=0
Envelope=0,100 2000,60 13230,0

[Noise]
On=1
Level=40
Slope=-50
Envelope=0,100 400,0

[Overtones]
On=0

[NoiseBand]
On=0

[Distortion]
On={dist}
Clipping=30
Bits=0
Rate=0
"""


def test_drumsynth_patch_renders_what_it_says(tmp_path):
    path = tmp_path / "test_kick.ds"
    path.write_text(DS_PATCH.format(dist=0))
    patch = drumsynth.read_patch(path)
    assert patch["tone"]["f2"] == "50"
    wave = drumsynth.render_patch(patch)
    assert wave.size == 13231  # the last envelope point, in samples
    d = describe(wave)
    assert d["body_pitch"] == pytest.approx(50.0, rel=0.05)  # the tone settles on F2
    assert d["start_pitch"] > 70.0  # and starts above it (a glide from F1)
    up = describe(drumsynth.render_patch(patch, tuning=12.0))
    assert up["body_pitch"] == pytest.approx(100.0, rel=0.05)  # Tuning in semitones
    assert drumsynth.render_patch(patch, stretch=2.0).size == pytest.approx(2 * 13230, abs=2)
    path.write_text(DS_PATCH.format(dist=1))
    driven = drumsynth.render_file(path)
    dist = describe(0.9 * driven / np.abs(driven).max())
    assert dist["harmonic_db"] > d["harmonic_db"] + 20.0 and dist["clipped"] == 0.0
    assert drumsynth.is_kick_patch("misc/lo-fi_bass_drum.ds") and not drumsynth.is_kick_patch(
        "Snare.ds"
    )
    (tmp_path / "bad.ds").write_text("not an ini file")
    with pytest.raises(drumsynth.PatchError, match="bad.ds"):
        drumsynth.render_file(tmp_path / "bad.ds")


# --------------------------------------------------------------------------- Kicker

XPF = """<?xml version="1.0"?><!DOCTYPE lmms-project>
<lmms-project version="1.0" type="instrumenttracksettings"><head/>
 <instrumenttracksettings name="{name}">
  <instrumenttrack basenote="{basenote}">
   <instrument name="kicker">
    <kicker decay="{decay}" startfreq="150" endfreq="40" startnote="{note}" endnote="{note}"
            slope="0.06" env="0.5" dist="0" distend="0" noise="0" click="0" gain="1"/>
   </instrument>
  </instrumenttrack>
 </instrumenttracksettings>
</lmms-project>"""


def test_kicker_preset(tmp_path):
    path = tmp_path / "Trap.xpf"
    path.write_text(XPF.format(name="Trap kick", basenote=93, decay=800, note=1))
    preset = kicker.read_preset(path)
    assert kicker.is_kick_preset(preset) and preset.startnote and preset.basenote == 93
    wave = kicker.render_preset(preset)
    assert wave.size == int(0.8 * SR)
    assert describe(wave)["body_pitch"] == pytest.approx(55.0, rel=0.03)  # A4 three octaves down
    path.write_text(XPF.format(name="Sweep kick", basenote=57, decay=400, note=0))
    sweep = describe(kicker.render_preset(kicker.read_preset(path)))
    assert sweep["start_pitch"] > sweep["body_pitch"]
    path.write_text(XPF.format(name="Clap", basenote=57, decay=100, note=0))
    assert not kicker.is_kick_preset(kicker.read_preset(path))


# --------------------------------------------------------------------------- library collection


def test_count_hits():
    one = kick_wave()
    loop = np.concatenate([one, one, one])
    assert count_hits(one) == 1
    assert count_hits(loop) == 3


def test_collect_library_skips_bad_files_and_never_modifies_sources(tmp_path):
    lib = tmp_path / "My Kicks"
    (lib / "808").mkdir(parents=True)
    sf.write(lib / "808" / "808_Kick_Soft.wav", kick_wave(45.0), SR, subtype="PCM_16")
    sf.write(
        lib / "808" / "808_Kick_Hard.wav", 1.2 * kick_wave(45.0, tau=0.1), SR, subtype="PCM_24"
    )
    sf.write(lib / "BD_acoustic 01.flac", kick_wave(70.0, delay=0.2), 48000)
    (lib / "zz").mkdir()
    sf.write(lib / "zz" / "kick_copy.wav", kick_wave(45.0), SR, subtype="PCM_16")  # a layer's bytes
    (lib / "Kicks").mkdir()
    sf.write(lib / "Kicks" / "Thump.wav", kick_wave(60.0), SR)  # a kick by its folder
    sf.write(lib / "Kicks" / "snare.wav", kick_wave(200.0), SR)  # not a kick, folder or not
    (lib / "kick04.ogg").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(6000))  # malformed
    sf.write(lib / "kick_silent.wav", np.zeros(SR // 2, np.float32), SR)
    sf.write(lib / "kick_loop_120bpm.wav", np.tile(kick_wave(), 4), SR)
    sf.write(lib / "kick_groove.wav", np.tile(kick_wave(), 4), SR)  # a loop without the word
    sf.write(lib / "snare.wav", kick_wave(200.0), SR)  # not a kick by name
    before = {p: hashlib.sha1(p.read_bytes()).hexdigest() for p in lib.rglob("*") if p.is_file()}

    clips, skipped = collect_library([lib])
    names = sorted(c.file.rsplit("/", 1)[-1] for c in clips)
    assert names == ["808_Kick_Hard.wav", "808_Kick_Soft.wav", "BD_acoustic 01.flac", "Thump.wav"]
    reasons = {path.rsplit("/", 1)[-1]: reason for path, reason in skipped}
    assert "cannot read audio" in reasons["kick04.ogg"]
    assert "silent" in reasons["kick_silent.wav"]
    assert "loop" in reasons["kick_loop_120bpm.wav"]
    assert "4 hits" in reasons["kick_groove.wav"]
    assert reasons["kick_copy.wav"].startswith("duplicate of")
    assert "snare.wav" not in reasons and not any("snare" in c.file for c in clips)
    layers = {c.group for c in clips if "808" in c.file}
    assert layers == {"user:My Kicks/808/808_kick"}  # velocity layers share a group
    acoustic = next(c for c in clips if "acoustic" in c.file)
    assert acoustic.keywords.split() == ["kick", "acoustic"] and acoustic.kind == "real"
    after = {p: hashlib.sha1(p.read_bytes()).hexdigest() for p in lib.rglob("*") if p.is_file()}
    assert after == before  # nothing written into the library


def test_load_source_resamples_and_mixes(tmp_path):
    stereo = np.stack([kick_wave(), kick_wave()], axis=1)
    sf.write(tmp_path / "kick.wav", stereo, 48000)
    wave = load_source(tmp_path / "kick.wav")
    assert wave.ndim == 1 and wave.size == pytest.approx(stereo.shape[0] * SR / 48000, abs=2)


def test_group_key(tmp_path):
    root = tmp_path
    assert group_key(root, root / "Kits" / "Kick-Softest.wav") == "Kits/kick"
    assert group_key(root, root / "Kits" / "Kick_hard_03.wav") == "Kits/kick"
    assert group_key(root, root / "bd_808.flac") == "bd_808"


def test_collect_command_writes_a_manifest(tmp_path, capsys):
    from kickgen.cli import main
    from kickgen.data.collect import read_sources

    lib = tmp_path / "lib"
    lib.mkdir()
    sf.write(lib / "kick_a.wav", kick_wave(50.0), SR)
    (lib / "kick_bad.wav").write_bytes(b"not audio" * 1000)
    assert main(["data", "collect", str(lib), "--out", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert "collect: 1 kicks" in out and "kick_bad.wav" in out
    assert [c.name for c in read_sources(tmp_path / "s.csv")] == ["kick_a"]
    assert (
        main(["data", "collect", str(tmp_path / "missing"), "--out", str(tmp_path / "t.csv")]) == 2
    )
    assert "not a folder" in capsys.readouterr().err and not (tmp_path / "t.csv").exists()
