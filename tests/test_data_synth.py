"""The kick synthesizer, measured keywords and augmentations: checked by measurement."""

import numpy as np
import pytest

from kickgen.audio import AudioError
from kickgen.data import augment, synth
from kickgen.data.clips import declip, finish_clip
from kickgen.descriptors import describe, measured_keywords


def test_synth_is_deterministic_and_every_family_makes_a_clean_kick():
    a, fam_a, params_a = synth.synth_kick(7)
    b, fam_b, params_b = synth.synth_kick(7)
    assert fam_a == fam_b and params_a == params_b and np.array_equal(a, b)
    assert not np.array_equal(a, synth.synth_kick(8)[0])
    for family in synth.FAMILIES:
        wave, fam, _ = synth.synth_kick(3, family)
        clip, d = finish_clip(wave)  # raises if silent, clipped or late
        assert fam == family and clip.shape == (88200,)
        assert d["onset"] <= 0.005 and 30.0 < d["body_pitch"] < 130.0, family


def test_params_shape_the_sound_as_named():
    base = synth.KickParams(f_start=150, f_end=50, decay=0.3, click_level=0.0)
    low = describe(synth.render(base))
    high = describe(
        synth.render(synth.KickParams(**{**base.__dict__, "f_end": 90, "f_start": 200}))
    )
    assert low["body_pitch"] == pytest.approx(50, rel=0.05)
    assert high["body_pitch"] == pytest.approx(90, rel=0.05)
    long = describe(synth.render(synth.KickParams(**{**base.__dict__, "decay": 0.9})))
    assert long["decay_40"] == pytest.approx(0.9, rel=0.15)  # decay is the -40 dB time
    assert low["decay_40"] == pytest.approx(0.3, rel=0.15)
    clicky = describe(synth.render(synth.KickParams(**{**base.__dict__, "click_level": 0.8})))
    assert clicky["click_db"] > low["click_db"] + 10
    driven = synth.render(synth.KickParams(**{**base.__dict__, "drive_db": 24}))
    assert describe(0.9 * driven / np.abs(driven).max())["harmonic_db"] > low["harmonic_db"] + 20


def test_saturate_is_strictly_increasing():
    x = np.linspace(-3, 3, 10001)
    y = synth.saturate(x, 30.0, bias=0.3)
    assert np.all(np.diff(y) > 0)
    assert synth.saturate(np.zeros(3), 20.0, bias=0.4) == pytest.approx(np.zeros(3))


def test_measured_keywords_agree_with_measurements():
    """Over a batch of synthesized kicks, keywords sort the kicks the way their names say."""
    rows = []
    for seed in range(60):
        _, d = finish_clip(synth.synth_kick(seed)[0])
        rows.append((d, set(measured_keywords(d))))

    def values(keyword, key, has=True):
        return [d[key] for d, kws in rows if (keyword in kws) == has]

    assert max(values("deep", "body_pitch")) < min(values("high", "body_pitch"))
    assert max(values("short", "decay_40")) < min(values("long", "decay_40"))
    assert min(values("distorted", "harmonic_db")) > np.median(
        values("distorted", "harmonic_db", False)
    )
    assert min(values("clicky", "click_db")) > max(values("soft", "click_db"))
    for keyword in ("deep", "high", "short", "long", "distorted", "clicky", "punchy", "sub"):
        assert values(keyword, "body_pitch"), f"no synthesized kick is {keyword}"
    for _, kws in rows:
        assert not {"deep", "high"} <= kws and not {"short", "long"} <= kws
        assert not {"soft", "clicky"} <= kws and not {"distorted", "clean"} <= kws


def test_augmentations_change_what_they_say():
    wave, _ = finish_clip(
        synth.render(synth.KickParams(f_start=120, f_end=50, decay=0.6, click_level=0.3))
    )
    base = describe(wave)
    up = describe(augment.pitch_shift(wave, 12.0))
    assert up["body_pitch"] == pytest.approx(2 * base["body_pitch"], rel=0.05)
    assert augment.pitch_shift(wave, 12.0).size == pytest.approx(wave.size / 2, abs=2)
    short = describe(augment.shorten_decay(wave, 0.15, onset=44))
    assert short["decay_40"] < 0.2 < base["decay_40"]
    assert "short" in measured_keywords(short) and "short" not in measured_keywords(base)
    bright = describe(augment.eq_tilt(wave, 3.0))
    assert bright["centroid"] > base["centroid"]
    punch = augment.transient(wave, 2.0, onset=44)
    assert np.abs(punch[:441]).max() == pytest.approx(2 * np.abs(wave[:441]).max(), rel=1e-6)
    v1, text1 = augment.random_augment(wave, np.random.default_rng(5))
    v2, text2 = augment.random_augment(wave, np.random.default_rng(5))
    assert text1 == text2 and np.array_equal(v1, v2) and len(text1.split()) in (2, 3)


def test_declip_removes_flat_tops_and_keeps_the_rest():
    t = np.arange(22050) / 44100
    clean = np.sin(2 * np.pi * 60 * t) * np.exp(-t / 0.2)
    clipped = np.clip(1.8 * clean, -1.0, 1.0)
    assert describe(clipped)["clipped"] == 1.0
    repaired, n = declip(clipped)
    assert n > 100
    d = describe(0.9 * repaired / np.abs(repaired).max())
    assert d["clipped"] == 0.0
    untouched = np.abs(clipped) < 0.99
    np.testing.assert_array_equal(repaired[untouched], clipped[untouched])
    assert np.abs(repaired).max() <= 1.25 + 1e-9


def _kick_file(tmp_path, decay, swell=0.0):
    """A 50 Hz body with the given decay (s), rising over ``swell`` s first, as a WAV source."""
    from kickgen.audio import write_wav

    t = np.arange(88200) / 44100.0
    rise = 1.0 - np.exp(-t / swell) if swell else 1.0
    wave = (np.sin(2 * np.pi * 50.0 * t) * np.exp(-t / decay) * rise).astype(np.float32)
    path = tmp_path / f"kick_{decay}_{swell}.wav"
    write_wav(path, wave)
    return path


def _made(tmp_path, kind, path, task_id, min_lead_db=0.0):
    from kickgen.data.clips import make_clip
    from kickgen.data.collect import SourceClip
    from kickgen.data.plan import Task

    src = SourceClip(str(path), "user", "", "lib", "", "kick", "kick", "g", kind)
    task = Task(task_id, kind, 3, src, variant=1 if kind == "augmented" else 0)
    task.min_lead_db = min_lead_db
    return make_clip(task, tmp_path)


def test_a_build_can_ask_made_kicks_to_lead_with_their_hit(tmp_path):
    """A 50 Hz body decaying over 0.3 s leads the cycles after its first 30 ms by 0.9 dB: a
    render of it is kept by default and dropped when the build asks a 3 dB lead
    (``--min-lead-db 3``); one decaying over 0.05 s leads by 5 dB and is kept."""
    from kickgen.evaluation import metrics

    slow, fast = _kick_file(tmp_path, 0.3), _kick_file(tmp_path, 0.05)
    kept = _made(tmp_path, "kicker", slow, "slow")
    assert not kept.error and 0.5 < metrics.peak_lead_db(kept.wave[None])[0] < 2.0
    dropped = _made(tmp_path, "kicker", slow, "slow-3", min_lead_db=3.0)
    assert dropped.wave is None and dropped.error.startswith("its hit leads its body by 0.9 dB")
    lead = _made(tmp_path, "kicker", fast, "fast-3", min_lead_db=3.0)
    assert not lead.error and metrics.peak_lead_db(lead.wave[None])[0] > 4.0


@pytest.mark.parametrize("kind", ["real", "kicker", "augmented"])
def test_made_clips_must_pass_the_sanity_checks_finish_clip_leaves_out(tmp_path, kind):
    """A render still ringing at 0.9 s, or loudest 60 ms after its onset, is dropped with the
    reason; a recording that does either is kept as it is; an augmentation is drawn again until
    it passes (or dropped). Whatever made clip is kept passes."""
    from kickgen.data.clips import check_made_kick
    from kickgen.evaluation import metrics

    for path, reason in (
        (_kick_file(tmp_path, 1.5), "rings at"),  # -6 dB by 0.9 s: rings on
        (_kick_file(tmp_path, 0.3, swell=0.06), "loudest"),  # peaks about 0.1 s in
    ):
        result = _made(tmp_path, kind, path, f"x-{reason[:4]}")
        if kind == "real":
            assert not result.error and result.wave is not None
            with pytest.raises(AudioError, match=reason):
                check_made_kick(result.wave.astype(np.float32), result.descriptors)
        elif kind == "kicker":
            assert result.wave is None and result.error.startswith(reason)
        elif not result.error:  # an augmentation (shorten_decay, transient) may save it
            check_made_kick(result.wave.astype(np.float32), result.descriptors)
    result = _made(tmp_path, kind, _kick_file(tmp_path, 0.15), "y")
    assert not result.error
    assert metrics.tail_db(result.wave[None].astype(np.float64))[0] <= metrics.TAIL_MAX_DB
    assert result.descriptors["attack"] <= metrics.ATTACK_MAX_S
