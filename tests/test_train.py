"""Training: one step of each model on a tiny corpus, exact resume, configs, signals, CLI errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kickgen.checkpoints import load_diffusion, load_vae, load_vocoder
from kickgen.errors import CommandError
from kickgen.models import DiffusionConfig, VAEConfig, VocoderConfig
from kickgen.train import diffusion as train_diffusion
from kickgen.train import vae as train_vae
from kickgen.train import vocoder as train_vocoder
from kickgen.train.config import build_configs, read_toml
from kickgen.train.data import load_split_data, write_synth_corpus
from kickgen.train.runtime import STATE_FILENAME, Runtime, StopFlag, batch_indices

ROOT = Path(__file__).resolve().parents[1]
CPU = Runtime(torch.device("cpu"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_synth_corpus(tmp_path_factory.mktemp("corpus"), n_train=6, n_val=3)


@pytest.fixture(scope="module")
def vae_ckpt(corpus, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("vae_run")
    cfg = train_vae.VAETrainConfig(
        corpus=str(corpus), run_dir=str(run), max_steps=1, batch_size=4, val_clips=3
    )
    assert train_vae.train(cfg, VAEConfig(channels=(8, 8, 16, 16)), CPU, resume=False) == 1
    return run / "export" / "vae_epoch_100.pt"


def test_vae_one_step_exports_scaled_vae(vae_ckpt, corpus):
    vae = load_vae(vae_ckpt)
    data = torch.load(corpus / "cache" / "train.pt", weights_only=True)
    with torch.no_grad():
        z = vae.encode(data["log_mels"].float().unsqueeze(1))
    assert z.shape == (6, 32, 8, 11)
    # the exported latent scale makes the training latents unit-variance, zero-mean per channel
    assert abs(float(z.std()) - 1.0) < 1e-3
    assert float(z.mean(dim=(0, 2, 3)).abs().max()) < 1e-4
    ckpt = torch.load(vae_ckpt, weights_only=True)
    assert ckpt["step"] == 1 and set(ckpt["metrics"]) == {"val/l1", "val/mse"}
    log = [
        json.loads(line) for line in (vae_ckpt.parents[1] / "log.jsonl").read_text().splitlines()
    ]
    assert any("val/l1" in row for row in log)


@pytest.mark.slow
def test_diffusion_one_step(vae_ckpt, corpus, tmp_path):
    cfg = train_diffusion.DiffusionTrainConfig(
        vae=str(vae_ckpt), corpus=str(corpus), run_dir=str(tmp_path), max_steps=1, batch_size=4
    )
    assert train_diffusion.train(cfg, DiffusionConfig(base_channels=16), CPU, resume=False) == 1
    model, text_enc, sched, vocab, mcfg = load_diffusion(
        tmp_path / "export" / "diffusion_step_100000.pt"
    )
    assert vocab == json.loads((corpus / "vocab.json").read_text())["vocab"] and "synth" in vocab
    assert mcfg.base_channels == 16 and model.prediction_type == "v"
    assert list(tmp_path.glob("preview_*.png"))


def test_diffusion_onset_weight_weighs_the_first_latent_column():
    target = torch.zeros(2, 4, 8, 11)
    pred = target.clone()
    pred[0, :, :, 0] = 1.0  # an error in the first column only
    pred[1, :, :, 5] = 1.0  # as large an error in a later column
    plain = train_diffusion.onset_weighted_error(pred, target, 0.0)
    assert torch.allclose(plain, (pred - target).square().mean(dim=(1, 2, 3)))
    weighted = train_diffusion.onset_weighted_error(pred, target, 3.0)
    assert weighted[0] == pytest.approx(4.0 / 14.0)  # column 0 counts 4 of the 14 weights
    assert weighted[1] == pytest.approx(1.0 / 14.0)
    ones = train_diffusion.onset_weighted_error(pred + 1.0, target + 1.0, 3.0)
    assert torch.allclose(ones, train_diffusion.onset_weighted_error(pred, target, 3.0))


def test_keyword_dropout_drops_single_words_and_whole_prompts():
    cfg = DiffusionConfig(prompt_dropout=0.3, keyword_dropout=0.3)
    gen = torch.Generator().manual_seed(0)
    out = train_diffusion.drop_keywords([[1, 2, 3]] * 1000, cfg, gen)
    lengths = torch.tensor([len(o) for o in out]).float()
    assert 0.27 < float((lengths == 0).float().mean()) < 0.37  # expected 0.3 + 0.7·0.3³ ≈ 0.319
    assert float((lengths == 2).float().mean()) > 0.2  # partial prompts occur
    assert all(set(o) <= {1, 2, 3} for o in out)


def test_vocoder_crops_start_at_the_onset_as_often_as_asked():
    """Crops are aligned mel/wave pairs; onset_crop_prob of them start on the clip's first sample."""
    frames, clips = 4, 64
    waves = torch.arange(clips * 173 * 512, dtype=torch.float32).reshape(clips, 173 * 512)
    mels = torch.arange(173, dtype=torch.float32).expand(clips, 128, 173)  # frame index per frame
    cfg = train_vocoder.VocoderTrainConfig(onset_crop_prob=0.5, attack_crop_prob=0.0)
    mel, wave = train_vocoder.sample_crops(
        waves, mels, torch.arange(clips), frames, cfg, torch.Generator().manual_seed(0)
    )
    assert mel.shape == (clips, 128, frames) and wave.shape == (clips, frames * 512)
    starts = mel[:, 0, 0].long()
    torch.testing.assert_close(wave[:, 0], waves[torch.arange(clips), starts * 512])  # aligned
    assert 0.35 < float((starts == 0).float().mean()) < 0.65
    assert int(starts.max()) > 24  # the rest spread over the whole clip


def test_vocoder_init_from_copies_what_fits(tmp_path):
    """--init-from copies same-named, same-shaped tensors and leaves the rest freshly initialised."""
    from kickgen.checkpoints import build_vocoder, save_vocoder

    small = dict(
        upsample_initial_channel=32, resblock_kernel_sizes=(3,), resblock_dilations=((1, 3),)
    )
    torch.manual_seed(0)
    trained_cfg = VocoderConfig(**small)
    trained = build_vocoder(trained_cfg)
    path = save_vocoder(tmp_path / "v.pt", trained, trained_cfg)
    torch.manual_seed(1)
    grown = build_vocoder(VocoderConfig(**small, source_harmonics=4))  # source convs change shape
    fresh = train_vocoder.init_generator(grown, str(path))
    assert fresh and all(name.startswith("source_convs.") for name in fresh)
    own, src = grown.state_dict(), trained.state_dict()
    for name, value in own.items():
        if name not in fresh:
            torch.testing.assert_close(value, src[name], rtol=0, atol=0)


def test_resume_refuses_a_changed_noise_schedule_that_would_load(tmp_path):
    """Weights of a diffusion run load under another time scale or prediction type, and would
    silently mean something else: resuming with one of the tied flags changed is refused."""
    import dataclasses

    from kickgen.train.runtime import TrainingError, restore

    part = torch.nn.Linear(2, 2)
    run_cfg = DiffusionConfig(base_channels=16)
    state = {"config": {"DiffusionConfig": dataclasses.asdict(run_cfg)}, "model": part.state_dict()}
    tied = train_diffusion.ARCHITECTURE_FIELDS
    now = DiffusionConfig(base_channels=16, time_scale=1.0, prediction_type="eps")
    with pytest.raises(TrainingError, match="cannot resume") as err:
        restore(state, {"model": torch.nn.Linear(2, 2)}, now, tmp_path, tied)
    assert "--prediction-type (run: v, now: eps)" in str(err.value)
    assert "--time-scale (run: 32.0, now: 1.0)" in str(err.value)
    fresh = torch.nn.Linear(2, 2)
    restore(state, {"model": fresh}, DiffusionConfig(base_channels=16, dropout=0.2), tmp_path, tied)
    torch.testing.assert_close(fresh.weight, part.weight, rtol=0, atol=0)  # a recipe flag may move


def test_diffusion_init_from_finds_each_keyword_by_its_word(tmp_path):
    """A fine-tune's vocabulary may reorder, drop and add words: shared words keep their rows,
    a new word starts fresh, the U-Net is copied whole; other sizes or noise are refused."""
    from kickgen.checkpoints import build_unet, save_diffusion
    from kickgen.models.text_encoder import KeywordEncoder
    from kickgen.train.runtime import TrainingError

    cfg = DiffusionConfig(base_channels=16)
    torch.manual_seed(0)
    unet, text_enc = build_unet(cfg), KeywordEncoder(3, cfg.text_embed_dim, cfg.cond_dim)
    path = save_diffusion(tmp_path / "d.pt", unet, text_enc, ["808", "deep", "soft"], cfg)
    torch.manual_seed(1)
    vocab = ["soft", "808", "trap"]
    core = train_diffusion.Denoiser(build_unet(cfg), KeywordEncoder(3, 64, 256))
    fresh_row = core.text_enc.embedding.weight[2].detach().clone()
    assert train_diffusion.init_denoiser(core, str(path), cfg, vocab) == []
    rows, old_rows = core.text_enc.embedding.weight, text_enc.embedding.weight
    torch.testing.assert_close(rows[0], old_rows[2], rtol=0, atol=0)  # soft
    torch.testing.assert_close(rows[1], old_rows[0], rtol=0, atol=0)  # 808
    torch.testing.assert_close(rows[2], fresh_row, rtol=0, atol=0)  # trap: new
    for name, value in unet.state_dict().items():
        torch.testing.assert_close(core.unet.state_dict()[name], value, rtol=0, atol=0)
    with pytest.raises(TrainingError, match="time_scale 32.0 \\(run: 1.0\\)"):
        train_diffusion.init_denoiser(
            core, str(path), DiffusionConfig(base_channels=16, time_scale=1.0), vocab
        )


@pytest.mark.slow
def test_vocoder_one_step_each_phase(vae_ckpt, corpus, tmp_path):
    cfg = train_vocoder.VocoderTrainConfig(
        corpus=str(corpus),
        run_dir=str(tmp_path),
        vae=str(vae_ckpt),
        max_steps=3,
        adv_start_step=1,
        finetune_steps=1,
        batch_size=2,
        val_every=3,
        val_clips=2,
        log_every=1,
    )
    small = VocoderConfig(
        upsample_initial_channel=32, resblock_kernel_sizes=(3,), resblock_dilations=((1, 3),)
    )
    assert train_vocoder.train(cfg, small, CPU, resume=False) == 3
    gen = load_vocoder(
        tmp_path / "export" / "vocoder_epoch_50.pt"
    )  # rebuilt from the stored config
    assert gen(torch.zeros(1, 128, 4) - 11.5).shape == (1, 1, 2048)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert "train/disc" not in log[0] and "train/disc" in log[1]  # warm-up, then adversarial
    assert "val/log_stft_distance" in log[-1]
    state = torch.load(tmp_path / STATE_FILENAME, weights_only=True)
    assert state["step"] == 3 and "discriminator" in state and "opt_d" in state
    val = load_split_data(corpus, "val")
    report = train_vocoder.compare_with_griffin_lim(gen, val, n_clips=1)
    assert report["vocoder"] > 0 and report["griffin_lim"] > 0
    assert report["vocoder_over_griffin_lim"] == pytest.approx(
        report["vocoder"] / report["griffin_lim"]
    )


@pytest.mark.slow
def test_resume_continues_exactly(corpus, tmp_path):
    def cfg(run: str) -> train_vae.VAETrainConfig:
        return train_vae.VAETrainConfig(
            corpus=str(corpus),
            run_dir=str(tmp_path / run),
            max_steps=4,
            batch_size=4,
            val_every=100,
        )

    small = VAEConfig(channels=(8, 8, 16, 16))
    assert train_vae.train(cfg("straight"), small, CPU, resume=False) == 4
    assert train_vae.train(cfg("split"), small, CPU, resume=False, stop_at=2) == 2
    assert torch.load(tmp_path / "split" / STATE_FILENAME, weights_only=True)["step"] == 2
    assert train_vae.train(cfg("split"), small, CPU, resume=True) == 4
    a = torch.load(tmp_path / "straight" / STATE_FILENAME, weights_only=True)
    b = torch.load(tmp_path / "split" / STATE_FILENAME, weights_only=True)
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert a["sched"]["last_epoch"] == b["sched"]["last_epoch"] == 4


def test_decoder_fine_tuning_keeps_the_encoder(corpus, tmp_path):
    small = VAEConfig(channels=(8, 8, 16, 16))
    cfg = train_vae.VAETrainConfig(
        corpus=str(corpus), run_dir=str(tmp_path), max_steps=2, batch_size=4, val_every=100
    )
    train_vae.train(cfg, small, CPU, resume=False, stop_at=1)
    before = torch.load(tmp_path / STATE_FILENAME, weights_only=True)["model"]
    frozen = train_vae.VAETrainConfig(**{**cfg.__dict__, "train_encoder": False})
    assert train_vae.train(frozen, small, CPU, resume=True) == 2
    after = torch.load(tmp_path / STATE_FILENAME, weights_only=True)["model"]
    assert all(
        torch.equal(before[k], after[k])
        for k in before
        if k.startswith(("enc_in", "encoder", "enc_out"))
    )
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("decoder"))


def test_batches_are_deterministic_and_shard_across_ranks():
    one = batch_indices(10, 6, step=3, seed=1, rt=CPU)
    r0 = batch_indices(10, 6, step=3, seed=1, rt=Runtime(torch.device("cpu"), 0, 2))
    r1 = batch_indices(10, 6, step=3, seed=1, rt=Runtime(torch.device("cpu"), 1, 2))
    assert torch.equal(one[0::2], r0) and torch.equal(one[1::2], r1)
    # consecutive steps of one epoch visit distinct clips
    epoch = torch.cat([batch_indices(12, 4, s, 1, CPU) for s in range(3)])
    assert sorted(epoch.tolist()) == list(range(12))


def test_stop_flag_catches_sigterm():
    with StopFlag() as stop:
        assert not stop.should_stop(CPU)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.should_stop(CPU)
    assert signal.getsignal(signal.SIGTERM) is not stop._handle


def test_config_precedence_toml_then_flags(tmp_path):
    toml = tmp_path / "recipe.toml"
    toml.write_text("[train]\nbatch_size = 8\nlr = 1\n[model]\nchannels = [8, 8, 16, 16]\n")
    assert read_toml(toml)["channels"] == [8, 8, 16, 16]

    class Args:
        batch_size = 2
        lr = None
        channels = None

    t, m = build_configs((train_vae.VAETrainConfig, VAEConfig), toml, Args())
    assert t.batch_size == 2 and t.lr == 1.0 and m.channels == (8, 8, 16, 16)
    toml.write_text("batch_sise = 3\n")
    with pytest.raises(CommandError, match="unknown config keys batch_sise"):
        build_configs((train_vae.VAETrainConfig, VAEConfig), toml, None)


def test_cli_resume_without_state_is_one_line_error(corpus, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kickgen",
            "train",
            "vae",
            "--corpus",
            str(corpus),
            "--run-dir",
            str(tmp_path),
            "--resume",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"kickgen: error: {tmp_path / STATE_FILENAME}: no training state to resume; start without --resume"
    ]


@pytest.mark.slow
def test_torchrun_two_cpu_processes_keep_replicas_identical(corpus, tmp_path):
    import socket

    with socket.socket() as sock:  # a free port for the rendezvous (a fixed one may be taken)
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            port,
            "-m",
            "kickgen",
            "train",
            "vae",
            "--corpus",
            str(corpus),
            "--run-dir",
            str(tmp_path),
            "--max-steps",
            "3",
            "--batch-size",
            "4",
            "--channels",
            "8,8,16,16",
            "--val-every",
            "100",
            "--device",
            "cpu",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[-1]["replicas_identical"] == 1.0 and log[-1]["step"] == 3


def test_vae_onset_and_low_band_losses_weigh_the_sweep():
    """The extra terms score the first ONSET_FRAMES and the bins below 400 Hz on their own, so an
    error there costs more than the same error in the tail."""
    from kickgen.models.autoencoder import KickVAE

    torch.manual_seed(0)
    model = KickVAE()
    x = torch.randn(2, 1, 128, 173)
    plain = train_vae.VAETrainConfig(onset_weight=0.0, low_band_weight=0.0, pitch_weight=0.0)
    weighted = train_vae.VAETrainConfig(onset_weight=1.0, low_band_weight=0.5, pitch_weight=0.0)
    torch.manual_seed(1)
    loss_plain, parts_plain = train_vae.vae_loss(model, x, plain, step=0)
    torch.manual_seed(1)
    loss_weighted, parts = train_vae.vae_loss(model, x, weighted, step=0)
    assert "onset_l1" not in parts_plain and parts["onset_l1"] > 0 and parts["low_l1"] > 0
    expected = loss_plain.item() + parts["onset_l1"] + 0.5 * parts["low_l1"]
    assert loss_weighted.item() == pytest.approx(expected, rel=1e-5)
    assert train_vae._low_bins() == 16  # mel bins centred below 400 Hz (HTK, 0 Hz–Nyquist)


def _sweep_log_mel(f_start: float, f_end: float) -> torch.Tensor:
    """Log-mel (1, 1, 128, 173) of a 2 s kick-like sine whose pitch falls exponentially from
    ``f_start`` to ``f_end`` Hz (time constant 30 ms) under a 0.4 s decay."""
    import math

    from kickgen.audio import NUM_SAMPLES, SAMPLE_RATE, log_mel

    t = torch.arange(NUM_SAMPLES, dtype=torch.float64) / SAMPLE_RATE
    f = f_end + (f_start - f_end) * torch.exp(-t / 0.03)
    phase = 2 * math.pi * torch.cumsum(f, 0) / SAMPLE_RATE
    wave = (torch.sin(phase) * torch.exp(-t / 0.4)).float()
    return log_mel(wave.unsqueeze(0)).unsqueeze(1)


def test_vae_pitch_loss_reads_the_vocoders_body_pitch():
    """The soft pitch follows BodyPitch's hard pick; the loss is zero for the same mel, grows with
    the pitch error (in octaves), and a flattened sweep costs more than a faithful one."""
    from kickgen.models.vocoder import BodyPitch

    body_pitch = BodyPitch()
    sweep = _sweep_log_mel(160.0, 55.0)
    hard, _ = body_pitch(sweep[:, 0])
    soft, _ = train_vae.soft_log2_f0(body_pitch, sweep)
    assert torch.allclose(2.0 ** soft[0, :20], hard[0, :20], rtol=0.02)
    assert train_vae.pitch_loss(body_pitch, sweep, sweep).item() == pytest.approx(0.0, abs=1e-6)
    flat = _sweep_log_mel(55.0, 55.0)  # the same kick without its sweep
    octave_up = _sweep_log_mel(320.0 * 0.5, 110.0)  # a steady kick one octave higher at the end
    assert 0.05 < train_vae.pitch_loss(body_pitch, flat, sweep).item() < 0.5
    assert train_vae.pitch_loss(body_pitch, octave_up, sweep).item() > 0.5
    recon = flat.clone().requires_grad_(True)
    train_vae.pitch_loss(body_pitch, recon, sweep).backward()
    assert recon.grad[0, 0, :14].abs().sum() > 0 and recon.grad[0, 0, 20:].abs().sum() == 0


def test_vae_pitch_weight_adds_the_pitch_loss():
    from kickgen.models.autoencoder import KickVAE

    torch.manual_seed(0)
    model = KickVAE()
    x = _sweep_log_mel(150.0, 50.0).expand(2, -1, -1, -1).contiguous()
    torch.manual_seed(1)
    plain = train_vae.VAETrainConfig(pitch_weight=0.0)
    loss_plain, parts_plain = train_vae.vae_loss(model, x, plain, step=0)
    torch.manual_seed(1)
    cfg = train_vae.VAETrainConfig(pitch_weight=2.0)
    loss_pitch, parts = train_vae.vae_loss(model, x, cfg, step=0)
    assert "pitch" not in parts_plain and parts["pitch"] > 0
    assert loss_pitch.item() == pytest.approx(loss_plain.item() + 2.0 * parts["pitch"], rel=1e-5)


def test_refit_time_embedding_smooths_the_unet_and_keeps_its_body():
    from kickgen.models import LatentUNet

    torch.manual_seed(0)
    unet = LatentUNet(4, 16, 32, time_scale=1.0).eval()
    torch.nn.init.normal_(unet.conv_out.weight, std=0.1)
    smooth = train_diffusion.refit_time_embedding(unet, 1000, steps=300)
    assert smooth.time_scale == 32.0 and unet.time_scale == 1.0
    for (name, a), b in zip(unet.state_dict().items(), smooth.state_dict().values(), strict=True):
        assert name.startswith("time_mlp.") or torch.equal(a, b), name
    x, c = torch.randn(2, 4, 8, 11), torch.randn(2, 32)

    def out(model, t):
        with torch.no_grad():
            return model(x, torch.full((2,), t), c)

    def roughness(model, t0=500):  # 1 for a function smooth in t (see test_models.py)
        o = {k: out(model, t0 + k) for k in (-10, -1, 0, 1, 10)}
        return float((o[1] - 2 * o[0] + o[-1]).norm() / ((o[10] - 2 * o[0] + o[-10]).norm() / 100))

    assert roughness(unet) > 5.0 and roughness(smooth) < 1.5
    # the same model otherwise: its output stays near the original's over a window of steps
    window = torch.stack([out(unet, t) for t in range(480, 521)]).mean(0)
    assert ((out(smooth, 500) - window).norm() / window.norm()) < 0.1


def test_cli_smooth_time_writes_a_smoothed_checkpoint(tmp_path, capsys):
    from kickgen.checkpoints import load_checkpoint, write_random_checkpoints
    from kickgen.cli import main

    paths = write_random_checkpoints(
        tmp_path / "in", seed=0, diffusion_config=DiffusionConfig(base_channels=16, time_scale=1.0)
    )
    out = tmp_path / "smooth.pt"
    argv = ["train", "smooth-time", "--diffusion", str(paths["diffusion"]), "--out", str(out)]
    assert main([*argv, "--steps", "20"]) == 0
    unet, _, _, vocab, cfg = load_diffusion(out)
    assert cfg.time_scale == 32.0 and unet.time_scale == 32.0
    assert load_checkpoint(out, "diffusion")["time_refit"]["from_time_scale"] == 1.0
    assert main([*argv, "--sigma", "0"]) == 2
    assert "--sigma must be above 0" in capsys.readouterr().err


def test_a_resumed_bar_counts_its_rate_from_the_resume():
    import io

    from kickgen.progress import Progress

    out = io.StringIO()
    with Progress(1000, "train", stream=out, initial=900) as bar:
        bar.start -= 10.0  # ten seconds into the resumed run
        bar.update(10)
    line = out.getvalue().strip().splitlines()[-1]
    assert "910/1000" in line and "1.00/s" in line and "eta 90s" in line
