"""Checkpoint round trips, safe loading, error messages, and the guide's second snippet."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from kickgen.checkpoints import (
    DIFFUSION_FILENAME,
    VAE_FILENAME,
    VOCODER_FILENAME,
    CheckpointError,
    atomic_save,
    load_diffusion,
    load_vae,
    load_vocoder,
    save_vocoder,
    write_random_checkpoints,
)
from kickgen.errors import KickgenError
from kickgen.models import DiffusionConfig, HiFiGANGenerator, VocoderConfig

TINY = DiffusionConfig(base_channels=16)


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("ckpt")
    write_random_checkpoints(directory, seed=3, diffusion_config=TINY)
    return directory


def test_random_checkpoints_are_seeded(ckpt_dir, tmp_path):
    again = write_random_checkpoints(tmp_path, seed=3, diffusion_config=TINY)
    for name in (VAE_FILENAME, DIFFUSION_FILENAME, VOCODER_FILENAME):
        a = torch.load(ckpt_dir / name, weights_only=True)
        b = torch.load(tmp_path / name, weights_only=True)
        key = {"vae": "model_state_dict", "diffusion": "ema_state_dict", "vocoder": "generator"}[
            a["kind"]
        ]
        assert a["format_version"] == 1
        for k in a[key]:
            torch.testing.assert_close(a[key][k], b[key][k])
    assert set(again) == {"vae", "diffusion", "vocoder"}


def test_loaders_round_trip(ckpt_dir):
    model, text_enc, sched, vocab, cfg = load_diffusion(ckpt_dir / DIFFUSION_FILENAME)
    assert cfg == TINY and "808" in vocab and not model.training
    raw = torch.load(ckpt_dir / DIFFUSION_FILENAME, weights_only=True)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, raw["ema_state_dict"][k])
    assert sched.alpha_bars.shape == (cfg.timesteps,)
    cond = text_enc([[vocab.index("808")]], "cpu")
    z = torch.randn(1, cfg.latent_dim, 8, 11)
    with torch.no_grad():
        assert model(z, torch.tensor([500]), cond).shape == z.shape
        vae = load_vae(ckpt_dir / VAE_FILENAME)
        mel = vae.decode(z)
        assert mel.shape == (1, 1, 128, 173)
        voc = load_vocoder(ckpt_dir / VOCODER_FILENAME)
        assert not any("parametrizations" in k for k in voc.state_dict())
        assert voc(mel.squeeze(0)).shape == (1, 1, 173 * 512)


def test_weights_only_loads_with_dataclass_config(ckpt_dir):
    ckpt = torch.load(ckpt_dir / DIFFUSION_FILENAME, weights_only=True)
    assert isinstance(ckpt["config"], DiffusionConfig) and ckpt["kind"] == "diffusion"
    assert isinstance(ckpt["vocab"], list)


def test_save_vocoder_refuses_folded_weights(tmp_path):
    gen = HiFiGANGenerator()
    gen.remove_weight_norm()
    with pytest.raises(ValueError, match="weight-normed"):
        save_vocoder(tmp_path / "v.pt", gen, VocoderConfig())


def test_atomic_save_leaves_no_temp_files(tmp_path):
    atomic_save({"a": torch.ones(2)}, tmp_path / "sub" / "x.pt")
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["x.pt"]


def test_error_messages(ckpt_dir, tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(
        CheckpointError, match=r"nope\.pt: file not found; expected a kickgen vae checkpoint"
    ):
        load_vae(missing)
    data = (ckpt_dir / VAE_FILENAME).read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.pt: not a readable checkpoint"):
        load_vae(truncated)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match=r"corrupt\.pt: not a readable checkpoint"):
        load_vocoder(corrupt)
    with pytest.raises(
        CheckpointError, match=r"is a kickgen vae checkpoint; expected a kickgen vocoder"
    ):
        load_vocoder(ckpt_dir / VAE_FILENAME)
    with pytest.raises(CheckpointError, match="is a directory"):
        load_diffusion(tmp_path)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"kind": "vae", "x": Path("/")}, unsafe)
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_vae(unsafe)
    bad_shape = tmp_path / "bad_shape.pt"
    ckpt = torch.load(ckpt_dir / DIFFUSION_FILENAME, weights_only=True)
    ckpt["config"] = dataclasses.replace(ckpt["config"], base_channels=32)
    torch.save(ckpt, bad_shape)
    with pytest.raises(CheckpointError, match="weights do not fit the diffusion U-Net"):
        load_diffusion(bad_shape)
    assert issubclass(CheckpointError, KickgenError)
    # every message is one line
    try:
        load_vae(truncated)
    except CheckpointError as exc:
        assert "\n" not in str(exc)


def test_guide_second_snippet_structure(ckpt_dir):
    """The guide's 'waveform tensor' snippet, verbatim but for paths and the sampler call."""
    from models.autoencoder import KickVAE
    from models.diffusion import LatentUNet, NoiseScheduler
    from models.text_encoder import KeywordEncoder
    from models.vocoder import HiFiGANGenerator

    device = torch.device("cpu")
    diff_ckpt = torch.load(ckpt_dir / DIFFUSION_FILENAME, weights_only=False, map_location=device)
    vocab = diff_ckpt["vocab"]
    cfg = diff_ckpt["config"]
    model = LatentUNet(
        latent_dim=cfg.latent_dim, base_channels=cfg.base_channels, cond_dim=cfg.cond_dim
    ).to(device)
    model.load_state_dict(diff_ckpt["ema_state_dict"])
    model.eval()
    text_enc = KeywordEncoder(
        vocab_size=len(vocab), embed_dim=cfg.text_embed_dim, cond_dim=cfg.cond_dim
    ).to(device)
    text_enc.load_state_dict(diff_ckpt["text_enc_state_dict"])
    text_enc.eval()
    scheduler = NoiseScheduler(cfg.timesteps, cfg.beta_start, cfg.beta_end).to(device)
    cond = text_enc([[vocab.index("808")]], device)
    uncond = text_enc([[]], device)
    assert cond.shape == uncond.shape == (1, cfg.cond_dim)
    # one DDIM-style step in place of the sampler (owned by the pipeline)
    t = torch.tensor([999])
    latent = torch.randn(1, cfg.latent_dim, 8, 11)
    with torch.no_grad():
        out = model(latent, t, cond)
        latent, _ = scheduler.split_prediction(out, latent, t, model.prediction_type)
    vae_ckpt = torch.load(ckpt_dir / VAE_FILENAME, weights_only=False, map_location=device)
    vae = KickVAE(latent_dim=cfg.latent_dim).to(device)
    vae.load_state_dict(vae_ckpt["model_state_dict"])
    vae.eval()
    with torch.no_grad():
        log_mel = vae.decode(latent).squeeze(0)  # (1, 128, 173)
    assert log_mel.shape == (1, 128, 173)
    vocoder = HiFiGANGenerator(in_channels=128).to(device)
    voc_ckpt = torch.load(ckpt_dir / VOCODER_FILENAME, weights_only=False, map_location=device)
    vocoder.load_state_dict(voc_ckpt["generator"])
    vocoder.eval()
    vocoder.remove_weight_norm()
    with torch.no_grad():
        waveform = vocoder(log_mel)
        waveform = waveform.squeeze()[:88200]
    assert waveform.shape == (88200,) and waveform.dtype == torch.float32
    assert torch.isfinite(waveform).all()


def test_file_saved_before_an_architecture_field_keeps_its_old_value(tmp_path, monkeypatch):
    """A VAE file whose config predates ``time_fold`` was built without folding: it loads as
    ``time_fold = 1`` whatever today's default, while inference settings missing from a vocoder
    file (``noise_phase_hz``) take today's defaults."""
    from kickgen.checkpoints import save_vae
    from kickgen.models import KickVAE, VAEConfig

    vae = KickVAE(latent_dim=8, channels=(8, 16, 32, 64), time_fold=1)
    path = save_vae(tmp_path / VAE_FILENAME, vae)
    ckpt = torch.load(path, weights_only=True)
    del ckpt["config"].__dict__["time_fold"]  # as in a file written before the field existed
    torch.save(ckpt, path)
    monkeypatch.setattr(VAEConfig, "time_fold", 4)  # a later default
    loaded = load_vae(path)
    assert loaded.time_fold == 1 and loaded.config.time_fold == 1

    voc_path = tmp_path / VOCODER_FILENAME
    write_random_checkpoints(tmp_path / "random", seed=0, diffusion_config=TINY)
    ckpt = torch.load(tmp_path / "random" / VOCODER_FILENAME, weights_only=True)
    del ckpt["config"].__dict__["noise_phase_hz"]
    torch.save(ckpt, voc_path)
    assert load_vocoder(voc_path).noise_phase_hz == VocoderConfig.noise_phase_hz

    diff_path = tmp_path / "random" / DIFFUSION_FILENAME  # a U-Net from before ``time_scale``
    ckpt = torch.load(diff_path, weights_only=True)
    del ckpt["config"].__dict__["time_scale"]
    torch.save(ckpt, diff_path)
    unet, *_, config = load_diffusion(diff_path)
    assert config.time_scale == 1.0 and unet.time_scale == 1.0
