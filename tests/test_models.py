"""Shape contracts, determinism and invariants of the four networks."""

from __future__ import annotations

import math

import pytest
import torch

from kickgen.audio import LOG_MEL_MIN, log_mel
from kickgen.models import (
    DiffusionConfig,
    HiFiGANGenerator,
    KeywordEncoder,
    KickVAE,
    LatentUNet,
    NoiseScheduler,
    VAEConfig,
    VocoderConfig,
)
from kickgen.models.discriminators import (
    MultiDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adv_loss,
)
from kickgen.models.vocoder import BodyPitch, body_source


@torch.no_grad()
def test_vae_shapes_and_scaled_latent():
    torch.manual_seed(0)
    vae = KickVAE(latent_dim=4).eval()
    x = torch.randn(2, 1, 128, 173) * 3 - 4
    z = vae.encode(x)
    assert z.shape == (2, 4, 8, 11)
    mel = vae.decode(z)
    assert mel.shape == (2, 1, 128, 173)
    assert mel.min() >= LOG_MEL_MIN - 1e-6
    recon, mu, logvar = vae(x)
    assert recon.shape == (2, 1, 128, 173) and mu.shape == logvar.shape == (2, 4, 8, 11)
    # the latent scale/shift live in the state dict and are undone by decode
    mu_raw, _ = vae.encode_dist(x)
    vae.set_latent_stats(mu_raw)
    assert {"latent_shift", "latent_scale"} <= set(vae.state_dict())
    z_scaled = vae.encode(x)
    assert abs(float(z_scaled.mean())) < 1e-4 and abs(float(z_scaled.std()) - 1.0) < 1e-3
    torch.testing.assert_close(vae.decode(z_scaled), vae.decode_raw(mu_raw).clamp(min=LOG_MEL_MIN))


@pytest.mark.parametrize("time_fold", [2, 4])
def test_vae_time_fold_keeps_the_guide_latent_shape_and_finer_time(time_fold):
    """A folded VAE still speaks (latent_dim, 8, 11); inside, fine column f·j + k is channel block
    k of column j, so a change in one fine column changes the decoded mel near its own frames."""
    torch.manual_seed(0)
    vae = KickVAE(latent_dim=16, time_fold=time_fold).eval()
    x = log_mel(torch.randn(2, 88200) * torch.exp(-torch.arange(88200) / 4000.0)).unsqueeze(1)
    mu, logvar = vae.encode_dist(x)
    assert mu.shape == logvar.shape == (2, 16, 8, 11)
    assert vae.decode(vae.encode(x)).shape == (2, 1, 128, 173)
    fine = torch.randn(1, 16 // time_fold, 8, 11 * time_fold)
    assert torch.equal(vae.unfold(vae.fold(fine)), fine)
    folded = vae.fold(fine)
    j, k = 5, time_fold - 1
    assert torch.equal(
        folded[0, k * (16 // time_fold) : (k + 1) * (16 // time_fold), :, j],
        fine[0, :, :, time_fold * j + k],
    )
    # locality: nudge fine column 0, the decoded mel moves most in the first frames (GroupNorm
    # spreads a little of any change over the whole map)
    with torch.no_grad():
        base = vae.decode_raw(folded)
        nudged = fine.clone()
        nudged[..., 0] += 3.0
        diff = (vae.decode_raw(vae.fold(nudged)) - base).abs().mean(dim=(0, 1, 2))  # (173,)
    assert diff[:8].mean() > 2 * diff[-60:].mean() and int(diff.argmax()) < 16
    with pytest.raises(ValueError, match="time_fold"):
        KickVAE(latent_dim=6, time_fold=4)


def test_default_sizes_are_the_shipped_recipe():
    assert KickVAE().latent_dim == VAEConfig().latent_dim == DiffusionConfig().latent_dim
    unet = LatentUNet(latent_dim=8, base_channels=64, cond_dim=256)
    assert unet.prediction_type == DiffusionConfig().prediction_type == "v"
    n = sum(p.numel() for p in unet.parameters())
    assert 1e6 < n < 6e6


def test_unet_shape_determinism_and_prediction_type_travels():
    torch.manual_seed(0)
    unet = LatentUNet(latent_dim=4, base_channels=16, cond_dim=32).eval()
    torch.nn.init.normal_(unet.conv_out.weight, std=0.1)
    x, t, c = torch.randn(3, 4, 8, 11), torch.tensor([0, 500, 999]), torch.randn(3, 32)
    out = unet(x, t, c)
    assert out.shape == (3, 4, 8, 11)
    torch.testing.assert_close(unet(x, t, c), out)  # eval mode is deterministic
    # batch independence: sample i does not depend on the rest of the batch
    torch.testing.assert_close(unet(x[1:2], t[1:2], c[1:2]), out[1:2], atol=1e-5, rtol=1e-4)
    eps_model = LatentUNet(latent_dim=4, base_channels=16, cond_dim=32, prediction_type="epsilon")
    assert eps_model.prediction_type == "epsilon"
    eps_model.load_state_dict(unet.state_dict())  # a v checkpoint makes any instance a v model
    assert eps_model.prediction_type == "v"
    with pytest.raises(ValueError, match="prediction_type"):
        LatentUNet(4, 16, 32, prediction_type="x0")


@pytest.mark.parametrize("t0", [100, 500, 900])
def test_time_scale_keeps_the_unet_smooth_in_t(t0):
    """A solver steps 10-50 timesteps at a time, so the U-Net must be a smooth function of t.
    With the DDPM embedding (``time_scale=1``) its fastest feature turns every 6.3 steps and the
    output wiggles at that scale already at initialisation; at 32 the second difference over one
    step is the h² share of the one over ten that a smooth function has."""
    x, c = torch.randn(2, 4, 8, 11), torch.randn(2, 32)

    def roughness(time_scale: float) -> float:
        torch.manual_seed(0)
        unet = LatentUNet(4, 16, 32, time_scale=time_scale).eval()
        torch.nn.init.normal_(unet.conv_out.weight, std=0.1)
        with torch.no_grad():
            o = {k: unet(x, torch.full((2,), t0 + k), c) for k in (-10, -1, 0, 1, 10)}
        one = (o[1] - 2 * o[0] + o[-1]).norm()
        ten = (o[10] - 2 * o[0] + o[-10]).norm()
        return float(one / (ten / 100))  # 1 for a smooth function

    assert DiffusionConfig().time_scale == 32.0
    assert roughness(32.0) < 1.2
    assert roughness(1.0) > 5.0


def test_scheduler_schedule_and_prediction_algebra():
    sched = NoiseScheduler(1000, 1e-4, 0.02)
    assert sched.alpha_bars.shape == (1000,)
    assert abs(float(sched.alpha_bars[0]) - (1 - 1e-4)) < 1e-7
    # ᾱ_T of the linear schedule: ∏(1 - β) ≈ 4.0e-5
    assert 3e-5 < float(sched.alpha_bars[-1]) < 5e-5
    assert torch.all(sched.alpha_bars[1:] < sched.alpha_bars[:-1])
    assert sched.to("cpu") is sched
    torch.manual_seed(1)
    x0, noise = torch.randn(4, 2, 8, 11), torch.randn(4, 2, 8, 11)
    t = torch.tensor([0, 10, 500, 999])
    xt = sched.add_noise(x0, noise, t)
    for kind, target in (("v", sched.velocity(x0, noise, t)), ("epsilon", noise)):
        x0_hat, eps_hat = sched.split_prediction(target, xt, t, kind)
        torch.testing.assert_close(eps_hat, noise, atol=2e-3, rtol=1e-3)
        torch.testing.assert_close(x0_hat[:3], x0[:3], atol=2e-3, rtol=1e-3)


def test_keyword_encoder_null_mean_and_errors():
    torch.manual_seed(0)
    enc = KeywordEncoder(vocab_size=5, embed_dim=8, cond_dim=16)
    out = enc([[0, 1], [], [1, 0], [2]], "cpu")
    assert out.shape == (4, 16)
    torch.testing.assert_close(out[0], out[2])  # order-free mean
    torch.testing.assert_close(enc([[]], "cpu")[0], out[1])  # learned null vector
    assert not torch.allclose(out[1], out[3])
    assert enc([], "cpu").shape == (0, 16)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        enc([[7]], "cpu")


@pytest.mark.parametrize(
    "arch",
    [
        {},  # shipped: body source + noise source + iSTFT head
        {"noise_source": False},  # without the noise source
        {
            "istft_n_fft": 0,
            "source_harmonics": 0,
            "upsample_rates": (8, 8, 8),
            "upsample_kernel_sizes": (16, 16, 16),
        },  # HiFi-GAN V1 waveform head
    ],  # fmt: skip
)
def test_vocoder_shape_weight_norm_removal_is_exact(arch):
    torch.manual_seed(0)
    gen = HiFiGANGenerator(in_channels=128, **arch).eval()
    for conv in [*gen.source_convs, *gen.noise_convs]:  # zero at init; give them work to do
        torch.nn.init.normal_(conv.weight, std=0.1)
    mel = torch.randn(2, 128, 12) * 2 - 5
    with torch.no_grad():
        y = gen(mel)
        assert y.shape == (2, 1, 12 * 512)
        assert torch.isfinite(y).all()
        torch.testing.assert_close(gen(mel[1:]), y[1:], atol=1e-5, rtol=1e-4)  # batch-independent
        gen.remove_weight_norm()
        gen.remove_weight_norm()  # idempotent
        torch.testing.assert_close(gen(mel), y, atol=1e-5, rtol=1e-4)
    assert not any("parametrizations" in k for k in gen.state_dict())


def _clicky_kick(seed: int = 0) -> torch.Tensor:
    """A sine sweep with a 5 ms noise click: content from the body to the top octave, (1, 88200)."""
    t = torch.arange(88_200) / 44_100
    freq = 55.0 + 125.0 * torch.exp(-t / 0.03)
    body = torch.sin(2 * math.pi * torch.cumsum(freq, 0) / 44_100) * torch.exp(-t / 0.3)
    g = torch.Generator().manual_seed(seed)
    click = torch.randn(88_200, generator=g) * torch.exp(-t / 0.005) * 0.5
    return (body + click).unsqueeze(0)


@pytest.mark.parametrize(
    ("batch", "samples", "length"), [(1, 30_000, 30_000), (3, 88_200, 88_200), (2, 5_000, 4_900)]
)
def test_fast_istft_is_torch_istft_to_the_bit(batch, samples, length):
    from kickgen.griffin_lim import _istft, _stft

    window = torch.hann_window(2048, periodic=True)
    spec = _stft(torch.randn(batch, samples, generator=torch.Generator().manual_seed(0)), window)
    expected = torch.istft(spec, 2048, 512, 2048, window, center=True, length=length)
    assert torch.equal(_istft(spec, window, length), expected)


def test_refine_to_mel_moves_band_energies_onto_the_target():
    from kickgen.evaluation.metrics import wave_log_mel_distance_db
    from kickgen.griffin_lim import refine_to_mel

    kick = _clicky_kick()
    target = log_mel(kick)
    dull = torch.nn.functional.avg_pool1d(kick.unsqueeze(1), 9, 1, 4).squeeze(1)  # dulls the highs
    dull = torch.nn.functional.pad(dull, (0, 173 * 512 - 88_200))  # the vocoder's T·512 length
    refined = refine_to_mel(dull, target, 4)
    assert refined.shape == dull.shape and torch.isfinite(refined).all()
    before = float(wave_log_mel_distance_db(dull[:, :88_200], kick))
    after = float(wave_log_mel_distance_db(refined[:, :88_200], kick))
    assert before > 2.0 and after < before / 5, (before, after)  # measured 2.6 → 0.08 dB
    assert refine_to_mel(dull, target, 0) is dull


@torch.no_grad()
def test_vocoder_refines_in_eval_mode_only():
    from kickgen.griffin_lim import refine_to_mel

    torch.manual_seed(0)
    gen = HiFiGANGenerator(refine_iters=2)
    mel = log_mel(_clicky_kick())[..., :12]
    gen.train()
    raw = gen(mel)
    gen.eval()
    refined = refine_to_mel(raw[:, 0], mel, 2, noise_phase_hz=gen.noise_phase_hz)
    torch.testing.assert_close(gen(mel), refined.unsqueeze(1))
    gen.refine_iters = 0
    torch.testing.assert_close(gen(mel), raw)


@torch.no_grad()
def test_noise_source_starts_silent_and_breaks_the_frame_comb():
    """Zero-initialised noise convs leave a vocoder's output as it was (a trained vocoder can
    start a noise-source run); once they carry noise, a steady mel no longer gives a high band
    that repeats every 512 samples; the default noise is one fixed sequence."""
    from kickgen.evaluation.metrics import frame_comb
    from kickgen.models.vocoder import fixed_noise

    torch.manual_seed(0)
    plain = HiFiGANGenerator(refine_iters=0, noise_source=False).eval()
    noisy = HiFiGANGenerator(refine_iters=0, noise_source=True).eval()
    noisy.load_state_dict(plain.state_dict(), strict=False)
    mel = torch.full((1, 128, 24), -4.0)  # a steady noise bed
    torch.testing.assert_close(noisy(mel), plain(mel))
    for conv in noisy.noise_convs:
        torch.nn.init.normal_(conv.weight, std=0.3)
    steady = plain(mel)[0, 0, 2048:-2048].numpy()
    broken = noisy(mel)[0, 0, 2048:-2048].numpy()
    assert frame_comb(steady[None])[0] > 0.9
    assert frame_comb(broken[None])[0] < 0.5 * frame_comb(steady[None])[0]
    torch.testing.assert_close(noisy(mel), noisy(mel, fixed_noise(24 * 512)))


def test_vocoder_config_checks():
    with pytest.raises(ValueError, match="multiply to the hop length"):
        HiFiGANGenerator(upsample_rates=(8, 8, 4), upsample_kernel_sizes=(16, 16, 8))
    with pytest.raises(ValueError, match="multiply to the hop length"):
        HiFiGANGenerator(upsample_rates=(8, 8), istft_n_fft=0)
    with pytest.raises(ValueError, match="source_harmonics=0"):
        HiFiGANGenerator(in_channels=80)
    assert VocoderConfig().mel_loss_weight == 45.0


def _sine_kick(f_start: float, f_body: float, decay_s: float) -> torch.Tensor:
    """A kick with an exponential pitch glide to ``f_body`` Hz, (88200,)."""
    t = torch.arange(88_200, dtype=torch.float64) / 44_100
    freq = f_body + (f_start - f_body) * torch.exp(-t / 0.02)
    phase = 2 * math.pi * torch.cumsum(freq, 0) / 44_100
    return (torch.sin(phase) * torch.exp(-t / decay_s)).float()


@pytest.mark.parametrize("f_body", [42.0, 55.0, 71.0, 96.0])
def test_body_pitch_reads_the_body_from_the_mel(f_body):
    """The matched filter finds the body pitch between the 20 Hz-wide low mel bands, the glide
    above it, and holds the last pitch once the body has died away."""
    mel = log_mel(_sine_kick(180.0, f_body, 0.3)).unsqueeze(0)
    f0, amplitude = BodyPitch()(mel)
    body = f0[0, 15:40]  # 0.17–0.46 s: glide over, body still loud
    assert (body - f_body).abs().max() < 1.5
    assert f0[0, 1] > f_body + 30  # early frames follow the glide
    assert amplitude[0, 20] < amplitude[0, 3]  # decaying
    torch.testing.assert_close(f0[0, -20:], f0[0, -20:].flip(0))  # held in the silent tail


def test_body_source_integrates_the_pitch():
    """A constant 50 Hz pitch gives sin(2π·50·t) on the sample grid, phase 0 on sample 0."""
    f0 = torch.full((1, 8), 50.0)
    src = body_source(f0, torch.full((1, 8), 0.5), harmonics=2)
    assert src.shape == (1, 3, 8 * 512)
    t = torch.arange(8 * 512) / 44_100
    torch.testing.assert_close(src[0, 0], torch.sin(2 * math.pi * 50 * t), atol=1e-4, rtol=0)
    torch.testing.assert_close(src[0, 1], torch.sin(4 * math.pi * 50 * t), atol=1e-4, rtol=0)
    torch.testing.assert_close(src[0, 2], 0.5 * src[0, 0])


@torch.no_grad()
def test_discriminators_and_gan_losses():
    torch.manual_seed(0)
    disc = MultiDiscriminator()
    real, fake = torch.randn(2, 1, 2048) * 0.1, torch.randn(2, 1, 2048) * 0.1
    rl, rf = disc(real)
    fl, ff = disc(fake)
    assert len(rl) == 5 + 3 and all(r.shape[0] == 2 for r in rl)
    assert float(discriminator_loss(rl, fl)) > 0
    assert float(generator_adv_loss(fl)) > 0
    assert float(feature_matching_loss(rf, rf)) == 0.0
    assert float(feature_matching_loss(rf, ff)) > 0


@torch.no_grad()
def test_noise_phase_high_band_breaks_the_frame_comb_and_keeps_the_click():
    """A high band that repeats every 512 samples (the vocoder's comb) loses its period; the click
    (the first CLICK_KEEP_S after the onset) and the band below the cutoff stay; a clip gives the
    same samples alone and in a batch."""
    from kickgen.descriptors import onset_index
    from kickgen.evaluation.metrics import frame_comb, stft_db
    from kickgen.griffin_lim import CLICK_KEEP_S, noise_phase_high_band

    gen = torch.Generator().manual_seed(0)
    t = torch.arange(88_200) / 44_100
    body = torch.sin(2 * math.pi * 55.0 * t) * torch.exp(-t * 8.0)
    grain = torch.randn(512, generator=gen)
    buzz = grain.repeat(88_200 // 512 + 1)[:88_200] * torch.exp(-t * 20.0) * 0.3  # the comb
    wave = (body + buzz).unsqueeze(0)
    wave[0, 40:60] += 0.8  # a click at the onset
    out = noise_phase_high_band(wave, 1000.0)
    assert frame_comb(wave)[0] > 0.9 and abs(frame_comb(out)[0]) < 0.05
    keep = int(onset_index(wave)[0]) + int(CLICK_KEEP_S * 44_100)
    torch.testing.assert_close(out[:, :keep], wave[:, :keep])
    low_in, low_out = (stft_db(x, 2048)[:, :40] for x in (wave, out))  # bins below 860 Hz
    assert (low_in - low_out).abs()[low_in > low_in.max() - 40].median() < 0.5
    other = torch.randn(1, 88_200, generator=gen) * 0.1
    torch.testing.assert_close(noise_phase_high_band(torch.cat([wave, other]), 1000.0)[:1], out)


def test_fit_latent_brings_each_decoding_nearer_its_mel_on_its_own():
    from kickgen.models.autoencoder import fit_latent

    torch.manual_seed(0)
    vae = KickVAE(latent_dim=8, channels=(8, 16, 32, 64)).eval()
    mels = log_mel(torch.cat([_clicky_kick(0), 0.5 * _clicky_kick(1)])).unsqueeze(1)

    def distance(z: torch.Tensor) -> torch.Tensor:  # per clip, floored as fit_latent floors
        floor = mels.amax(dim=(1, 2, 3), keepdim=True) - 8 * math.log(10.0)
        diff = torch.maximum(vae.decode(z), floor) - torch.maximum(mels, floor)
        return diff.abs().mean(dim=(1, 2, 3))

    with torch.inference_mode():  # as the pipeline calls it
        fitted = fit_latent(vae, mels)
        start = vae.encode(mels)
    assert not fitted.requires_grad and fitted.shape == start.shape
    with torch.no_grad():
        assert bool((distance(fitted) < distance(start) - 0.01).all())  # an untrained VAE
    assert torch.equal(fit_latent(vae, mels[1:]), fitted[1:])  # whatever else is in the batch
    assert all(p.grad is None for p in vae.parameters())
