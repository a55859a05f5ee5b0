"""Analysis by synthesis: the kick model recovers a known kick; draws around fits; the realism
measure and the acceptance model on tiny sets."""

import json
import math

import numpy as np
import pytest
import torch

from kickgen.data import fit, realism
from kickgen.descriptors import pitch_envelope
from kickgen.evaluation import metrics

KNOTS = np.array(fit.KNOTS)


def known_fit() -> fit.KickFit:
    """A kick with every layer at a known setting: 55 Hz body gliding from 165 Hz."""
    body = -4.6 * 20 / math.log(10) * KNOTS / 0.35  # -40 dB at 0.35 s
    noise = np.full((fit.NOISE_BANDS, KNOTS.size), -75.0)
    noise[:, :3] = -40.0  # a short noise burst on the attack
    return fit.KickFit(
        f_end=55.0, a1=1.6, tau1=0.012, a2=0.4, tau2=0.06, body_db=body.tolist(),
        harmonic_db=[-26.0, -32.0, -38.0, -44.0, -50.0, -56.0, -62.0], harmonic_power=1.5,
        click_level=-20.0, click_hz=3000.0, noise_db=noise.tolist(),
    )  # fmt: skip


@pytest.fixture(scope="module")
def recovered():
    truth = known_fit()
    onset = 44
    wave = fit.render_fit(truth, onset=onset, seed=3)
    wave = wave / np.abs(wave).max() * 0.89
    torch.manual_seed(0)
    result = fit.fit_recording(wave, fit.FitConfig(steps=90, full_steps=15, seed=1))
    return truth, wave, result


def test_fit_recovers_a_known_kick(recovered):
    truth, wave, result = recovered
    got = result.fit
    assert abs(got.f_end / truth.f_end - 1.0) < 0.05
    # the pitch envelope where it is heard: within 5 % from 5 to 150 ms
    t = torch.tensor([0.005, 0.01, 0.025, 0.05, 0.1, 0.15])
    m = torch.from_numpy(fit._interp_matrix(t.numpy(), KNOTS)).float()
    f_true = fit.frequency(fit._tensors(truth), t, m)
    f_got = fit.frequency(fit._tensors(got), t, m)
    assert torch.all((f_got / f_true - 1.0).abs() < 0.05), (f_true, f_got)
    # the body's decay: the envelope at 0.2 s (peak-normalised) within 3 dB
    gain = 20 * math.log10(0.89 / np.abs(fit.render_fit(truth, onset=44, seed=3)).max())
    at = np.interp(0.2, KNOTS, got.body_db) - np.interp(0.2, KNOTS, truth.body_db) - gain
    assert abs(at) < 3.0
    assert got.harmonic_db[0] - truth.harmonic_db[0] == pytest.approx(gain, abs=6.0)
    assert result.log_mel_db < 2.0
    rec, fitted = result.f0_25ms
    assert abs(fitted / rec - 1.0) < 0.05


def test_fit_starts_from_the_pitch_track():
    t = np.linspace(0.008, 0.5, 60)
    f = 50.0 * (1 + 2.0 * np.exp(-t / 0.015) + 0.3 * np.exp(-t / 0.1))
    f_end, a1, tau1, a2, tau2 = fit.pitch_curve(t, f)
    got = f_end * (1 + a1 * np.exp(-t / tau1) + a2 * np.exp(-t / tau2))
    assert np.max(np.abs(got / f - 1.0)) < 0.01 and abs(f_end / 50.0 - 1.0) < 0.03


def test_render_fit_is_deterministic_and_starts_at_the_onset():
    a = fit.render_fit(known_fit(), onset=44, seed=5)
    b = fit.render_fit(known_fit(), onset=44, seed=5)
    c = fit.render_fit(known_fit(), onset=44, seed=6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.all(a[:44] == 0.0) and np.abs(a[44:500]).max() > 0.1
    f25 = pitch_envelope(a, np.array([0.025]))[0, 0]
    assert abs(f25 / float(fit.frequency(fit._tensors(known_fit()), torch.tensor([0.025]), torch.from_numpy(fit._interp_matrix(np.array([0.025]), KNOTS)).float())[0]) - 1) < 0.05  # fmt: skip


def test_draws_stay_near_the_fits_and_mix_within_a_style():
    base = known_fit()
    low = fit.KickFit.from_dict({**base.to_dict(), "f_end": 40.0})
    high = fit.KickFit.from_dict({**base.to_dict(), "f_end": 90.0})
    fits, styles = [base, low, high], ["a", "a", "b"]
    spread = fit.spreads(fits)
    rng = np.random.default_rng(0)
    notes = []
    for _ in range(60):
        drawn, note = fit.draw_around(fits, styles, spread, rng)
        notes.append(note)
        assert 25.0 < drawn.f_end < 140.0
        if "+" in note:  # a mix: both fits of one style, never "2" (style b) with another
            assert "2" not in note.split("@")[0]
    assert any("+" in n for n in notes) and any("+" not in n for n in notes)
    again = fit.draw_around(fits, styles, spread, np.random.default_rng(0))
    first = fit.draw_around(fits, styles, spread, np.random.default_rng(0))
    assert again[0] == first[0]


def test_fit_key_changes_with_the_clip_and_settings():
    x = np.zeros(100, np.float32)
    y = x.copy()
    y[3] = 0.1
    cfg = fit.FitConfig()
    assert fit.fit_key(x, cfg) == fit.fit_key(x.copy(), fit.FitConfig())
    assert fit.fit_key(x, cfg) != fit.fit_key(y, cfg)
    assert fit.fit_key(x, cfg) != fit.fit_key(x, fit.FitConfig(steps=cfg.steps + 1))


# --------------------------------------------------------------------------- realism


def fake_rows(rng, n, kind, split="train", shift=0.0, kit="k"):
    """Metadata rows whose FEATURES columns are drawn around a typical kick (``shift``: in units
    of each descriptor's spread)."""
    centre = {"body_pitch": 60.0, "pitch_glide": 6.0, "decay_6": 0.05, "decay_20": 0.2,
              "decay_40": 0.4, "click_db": -30.0, "centroid": 100.0, "sub_ratio": 0.3,
              "crest_db": 12.0, "punch": 0.7, "harmonic_db": -18.0, "f0_10ms": 110.0,
              "f0_25ms": 80.0, "f0_50ms": 65.0, "f0_100ms": 60.0, "sweep_time": 0.05}  # fmt: skip
    rows = []
    for _ in range(n):
        row = {"kind": kind, "split": split, "kit": kit}
        for name, value in centre.items():
            z = rng.normal() + shift
            row[name] = str(value * math.exp(0.2 * z) if value > 0 else value + 3.0 * z)
        rows.append(row)
    return rows


def test_realism_table_tells_shifted_kicks_from_real_ones():
    rng = np.random.default_rng(0)
    rows = fake_rows(rng, 40, "real") + fake_rows(rng, 20, "real", split="val")
    rows += fake_rows(rng, 120, "synth", kit="fitted")  # like the real ones
    rows += fake_rows(rng, 120, "synth", kit="808", shift=1.5)  # not at all
    table = {r["set"]: r for r in realism.realism_table(rows, per_kind=100)}
    assert table["synth: drawn around the fits"]["auc_real"] < 0.62
    assert table["synth: style families"]["auc_real"] > 0.9
    assert 0.62 < table["synth"]["auc_real"] < table["synth: style families"]["auc_real"]
    assert table["synth"]["n"] == 100 and table["real: training recordings"]["auc_real"] is None
    assert table["real: training recordings"]["auc_val_real"] < 0.7


def test_acceptance_model_moves_kicks_toward_the_real_ones():
    rng = np.random.default_rng(1)
    real = realism.features_of_rows(fake_rows(rng, 80, "real"))
    pilot = realism.features_of_rows(fake_rows(rng, 300, "synth", shift=0.3))
    model = realism.acceptance_model(real, pilot)
    pool = fake_rows(rng, 2000, "synth", shift=0.3)
    kept = []
    for row in pool:
        desc = {name: float(row[name]) for name, _ in metrics.FEATURES}
        ok, _ = realism.accept(model, desc, float(rng.uniform()))
        if ok:
            kept.append(row)
    before = metrics.classifier_auc(realism.features_of_rows(pool[:300]), real)["auc"]
    after = metrics.classifier_auc(realism.features_of_rows(kept[:300]), real)["auc"]
    assert 100 < len(kept) < 1500 and before > 0.7 and after < before - 0.15, (
        len(kept),
        before,
        after,
    )


def test_procedural_kicks_from_fits_are_one_shots(tmp_path):
    from kickgen.audio import AudioError
    from kickgen.data.clips import _procedural_kick
    from kickgen.data.collect import count_hits
    from kickgen.data.plan import Task

    good = known_fit()
    entry = {"id": "real-00001", "style": "k", "keywords": ["808"], "fit": good.to_dict()}
    path = tmp_path / "fits.json"
    path.write_text(json.dumps({"fits": [entry]}))
    clip, desc, kick, tries = _procedural_kick(Task("synth-00000", "synth", 7, fits=str(path)))
    assert kick.family == "fitted" and kick.keywords == ("808",) and tries == 1
    assert count_hits(clip) == 1 and desc["onset"] <= 0.005 and not desc["clipped"]
    # an envelope that dies away and swells again is two hits: drawn again, here in vain
    twice = np.array(good.body_db)
    twice[(KNOTS > 0.05) & (KNOTS < 0.25)] = -90.0
    twice[(KNOTS >= 0.25) & (KNOTS <= 0.55)] = 0.0
    swell = fit.KickFit.from_dict({**good.to_dict(), "body_db": twice.tolist()})
    path2 = tmp_path / "fits2.json"
    path2.write_text(json.dumps({"fits": [{**entry, "fit": swell.to_dict()}]}))
    with pytest.raises(AudioError, match="no draw"):
        _procedural_kick(Task("synth-00001", "synth", 7, fits=str(path2)))
