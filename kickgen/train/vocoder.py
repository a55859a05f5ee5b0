"""``kickgen train vocoder``: HiFi-GAN generator with MPD + MSD discriminators.

Phases, by step:
1. ``step < adv_start_step``: reconstruction only (L1 log-mel + multi-resolution STFT), fast on CPU.
2. adversarial: least-squares GAN + feature matching on top, weights named in VocoderConfig.
3. the last ``finetune_steps`` (when ``--vae`` is given): inputs are the VAE's reconstructions of
   the mels (decode(encode(mel))), targets the real waveforms, so the chain VAE → vocoder sounds right.
Training examples are 8,192-sample crops (16 frames) of real and synthesised corpus kicks, biased
towards the attack where kicks hold their energy. A share of them starts at the clip's first
sample: corpus kicks are onset-aligned, so the click sits at the very edge of the signal, where
the convolutions see their padding; crops drawn only from the first 24 frames put it there once in
24 draws and the vocoder rendered clicks 8 dB too weak and smeared over 20 ms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from kickgen.audio import HOP_LENGTH, NUM_SAMPLES, SAMPLE_RATE, log_mel
from kickgen.checkpoints import (
    VOCODER_FILENAME,
    build_vocoder,
    load_checkpoint,
    load_vae,
    save_vocoder,
)
from kickgen.models.discriminators import (
    DiscriminatorConfig,
    MultiDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adv_loss,
)
from kickgen.models.vocoder import HiFiGANGenerator, VocoderConfig
from kickgen.train.config import config_dict
from kickgen.train.data import SplitData, start_run
from kickgen.train.runtime import (
    RunLoop,
    Runtime,
    copy_matching,
    unwrap,
    wrap_ddp,
)

STFT_RESOLUTIONS = ((256, 64), (512, 128), (1024, 256), (2048, 512), (4096, 1024))  # (n_fft, hop)


@dataclass
class VocoderTrainConfig:
    corpus: str = "corpus"  # corpus directory (kickgen data build)
    run_dir: str = "runs/vocoder"  # training state, logs, exported checkpoint
    vae: str = ""  # trained VAE checkpoint; enables the fine-tune phase on VAE-decoded mels
    init_from: str = ""  # vocoder checkpoint whose same-shaped weights start a new run
    max_steps: int = 14100  # optimiser steps of the generator, all phases
    adv_start_step: int = 13000  # reconstruction-only warm-up before the discriminators join
    finetune_steps: int = 3100  # last steps on VAE-decoded mels (needs --vae)
    batch_size: int = 16  # global batch of crops, split across torchrun processes
    lr: float = 2e-4  # AdamW learning rate of generator and discriminators
    lr_decay: float = 0.99995  # per-step exponential LR decay
    adam_beta1: float = 0.8  # HiFi-GAN's AdamW betas
    adam_beta2: float = 0.99
    disc_width: int = 16  # discriminator first-layer channels (see DiscriminatorConfig)
    stft_loss_weight: float = 15.0  # multi-resolution STFT loss (convergence + log-magnitude)
    body_loss_weight: float = (
        20.0  # spectral convergence below 300 Hz at n_fft 4096 (kick body pitch)
    )
    dc_loss_weight: float = 10.0  # L1 of crop means: log spectra barely see a DC offset in silence
    onset_crop_prob: float = 0.3  # share of crops that start at the clip's first sample (the onset)
    attack_crop_prob: float = 0.5  # share of the other crops that start within the first 24 frames
    val_every: int = 500  # steps between validations and exports
    val_clips: int = 32  # validation clips vocoded in full
    save_every_s: float = 180.0  # seconds between training-state saves
    log_every: int = 25  # steps between logged scalars
    seed: int = 0  # data order and crops
    threads: int = 0  # torch CPU threads (0 = torch's default)
    device: str = "auto"  # auto (CUDA if present), cpu, cuda


def stft_magnitude(wave: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """(B, L) → |STFT| (B, n_fft/2+1, frames), Hann window, centre padding."""
    window = torch.hann_window(n_fft, device=wave.device)
    spec = torch.stft(wave, n_fft, hop, n_fft, window, center=True, return_complex=True)
    return spec.abs()


def multi_resolution_stft_loss(
    fake: torch.Tensor, real: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, L) waveforms → (spectral convergence, L1 log-magnitude), each averaged over resolutions.

    Spectral convergence is taken over the whole batch (silent crops cannot blow it up); log
    magnitudes are floored at 1e-5.
    """
    sc = lm = 0.0
    for n_fft, hop in STFT_RESOLUTIONS:
        f, r = stft_magnitude(fake, n_fft, hop), stft_magnitude(real, n_fft, hop)
        sc = sc + torch.linalg.norm(r - f) / torch.linalg.norm(r).clamp(min=1e-3)
        lm = lm + F.l1_loss(f.clamp(min=1e-5).log(), r.clamp(min=1e-5).log())
    k = len(STFT_RESOLUTIONS)
    return sc / k, lm / k


@torch.no_grad()
def log_stft_distance(fake: torch.Tensor, real: torch.Tensor) -> float:
    """Multi-resolution STFT log-magnitude distance (mean |log|X̂| - log|X||), floors at 1e-5."""
    d = 0.0
    for n_fft, hop in STFT_RESOLUTIONS:
        f = stft_magnitude(fake, n_fft, hop).clamp(min=1e-5).log()
        r = stft_magnitude(real, n_fft, hop).clamp(min=1e-5).log()
        d += (f - r).abs().mean().item()
    return d / len(STFT_RESOLUTIONS)


def sample_crops(
    waves: torch.Tensor,
    mels: torch.Tensor,
    idx: torch.Tensor,
    frames: int,
    cfg: VocoderTrainConfig,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops of clips ``idx``: mels (B, 128, frames) and aligned waves (B, frames·512)."""
    max_start = mels.shape[-1] - frames
    seg = frames * HOP_LENGTH
    mel_out, wave_out = [], []
    for i in idx.tolist():
        if torch.rand((), generator=gen) < cfg.onset_crop_prob:
            start = 0  # every kick's onset and click sit here, at the left edge as at inference
        elif torch.rand((), generator=gen) < cfg.attack_crop_prob:
            start = int(torch.randint(0, min(24, max_start + 1), (), generator=gen))
        else:
            start = int(torch.randint(0, max_start + 1, (), generator=gen))
        mel_out.append(mels[i, :, start : start + frames].float())
        w = waves[i, start * HOP_LENGTH : start * HOP_LENGTH + seg].float()
        wave_out.append(F.pad(w, (0, seg - w.shape[-1])))
    return torch.stack(mel_out), torch.stack(wave_out)


def generator_losses(
    fake: torch.Tensor, real: torch.Tensor, model_cfg: VocoderConfig, cfg: VocoderTrainConfig
) -> tuple[torch.Tensor, dict[str, float]]:
    """Reconstruction losses of (B, L) generated vs real waveforms."""
    mel_l1 = F.l1_loss(log_mel(fake), log_mel(real))
    sc, lm = multi_resolution_stft_loss(fake, real)
    dc = (fake.mean(dim=-1) - real.mean(dim=-1)).abs().mean()
    body = body_spectral_convergence(fake, real)
    loss = (
        model_cfg.mel_loss_weight * mel_l1
        + cfg.stft_loss_weight * (sc + lm)
        + cfg.body_loss_weight * body
        + cfg.dc_loss_weight * dc
    )
    parts = {
        "mel_l1": mel_l1.item(),
        "stft_sc": sc.item(),
        "stft_logmag": lm.item(),
        "body_sc": body.item(),
    }
    return loss, {**parts, "dc": dc.item()}


def body_spectral_convergence(
    fake: torch.Tensor, real: torch.Tensor, max_hz: float = 300.0
) -> torch.Tensor:
    """Spectral convergence of the kick body: |STFT| with n_fft 4096 (10.8 Hz bins), bins below
    ``max_hz``. Log-mel and log-STFT losses weigh the 2–3 body bands like any other band; without
    this term the generator put every body at the frame rate, 44100 / 512 ≈ 86 Hz."""
    bins = int(max_hz / (SAMPLE_RATE / 4096)) + 1
    f = stft_magnitude(fake, 4096, 1024)[:, :bins]
    r = stft_magnitude(real, 4096, 1024)[:, :bins]
    return torch.linalg.norm(r - f) / torch.linalg.norm(r).clamp(min=1e-3)


@torch.no_grad()
def vocode(gen: HiFiGANGenerator, mels: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """Full clips: (N, 128, 173) → (N, 88200)."""
    out = [gen(mels[i : i + batch])[:, 0, :NUM_SAMPLES] for i in range(0, mels.shape[0], batch)]
    return torch.cat(out)


@torch.no_grad()
def validate(
    gen: HiFiGANGenerator, val: SplitData, cfg: VocoderTrainConfig, device
) -> tuple[dict, torch.Tensor]:
    gen.eval()
    n = min(cfg.val_clips, len(val))
    real = val.waves[:n].float().to(device)
    fake = vocode(gen, val.log_mels[:n].float().to(device))
    gen.train()
    metrics = {
        "val/log_stft_distance": log_stft_distance(fake, real),
        "val/tail_dc": fake[:, -SAMPLE_RATE // 4 :].mean(dim=-1).abs().mean().item(),  # last 0.25 s
        "val/mel_l1": F.l1_loss(log_mel(fake), val.log_mels[:n].float().to(device)).item(),
    }
    return metrics, fake


@torch.no_grad()
def compare_with_griffin_lim(
    gen: HiFiGANGenerator, val: SplitData, n_clips: int = 32, device: str | torch.device = "cpu"
) -> dict[str, float]:
    """Multi-resolution STFT log-magnitude distance to the real validation waveforms, for the
    vocoder and for kickgen's Griffin-Lim (NNLS + fast GL) and the reference's (pinv + 64 plain)
    on the same mels. Lower is better; the acceptance asks vocoder ≤ 0.6 × Griffin-Lim."""
    from kickgen.griffin_lim import log_mel_to_audio, reference_log_mel_to_audio

    n = min(n_clips, len(val))
    mels = val.log_mels[:n].float().to(device)
    real = val.waves[:n].float().to(device)
    gen.eval()
    g = torch.Generator().manual_seed(0)
    result = {
        "vocoder": log_stft_distance(vocode(gen, mels), real),
        "griffin_lim": log_stft_distance(
            log_mel_to_audio(mels, generator=g)[:, :NUM_SAMPLES], real
        ),
        "griffin_lim_reference": log_stft_distance(
            reference_log_mel_to_audio(mels, generator=g)[:, :NUM_SAMPLES], real
        ),
    }
    result["vocoder_over_griffin_lim"] = result["vocoder"] / result["griffin_lim"]
    return result


@torch.no_grad()
def vae_reconstructions(vae_path: str, data: SplitData, device) -> torch.Tensor:
    """decode(encode(mel)) of every clip: (N, 128, 173) float16."""
    vae = load_vae(vae_path, device)
    out = []
    for i in range(0, len(data), 32):
        x = data.log_mels[i : i + 32].float().unsqueeze(1).to(device)
        out.append(vae.decode(vae.encode(x))[:, 0].half().cpu())
    return torch.cat(out)


def init_generator(gen: HiFiGANGenerator, path: str) -> list[str]:
    """Copy the weights of vocoder checkpoint ``path`` whose names and shapes match ``gen``;
    returns the names that kept their fresh initialisation (:func:`copy_matching`)."""
    return copy_matching(gen, load_checkpoint(path, "vocoder")["generator"], path)


def train(
    cfg: VocoderTrainConfig, model_cfg: VocoderConfig, rt: Runtime, resume: bool, stop_at: int = 0
) -> int:
    """Train (or resume) a vocoder run to ``cfg.max_steps`` (or ``stop_at``, see
    :class:`RunLoop`); returns the step reached."""
    run = start_run(cfg, "vocoder", resume)
    train_data, val_data = run.train, run.val
    waves = F.pad(train_data.waves, (0, HOP_LENGTH * train_data.log_mels.shape[-1] - NUM_SAMPLES))
    gen_core = build_vocoder(model_cfg).to(rt.device)
    disc_core = MultiDiscriminator(DiscriminatorConfig(width=cfg.disc_width)).to(rt.device)
    gen_model, disc_model = wrap_ddp(gen_core, rt), wrap_ddp(disc_core, rt)
    betas = (cfg.adam_beta1, cfg.adam_beta2)
    opt_g = torch.optim.AdamW(gen_core.parameters(), lr=cfg.lr, betas=betas)
    opt_d = torch.optim.AdamW(disc_core.parameters(), lr=cfg.lr, betas=betas)
    sched_g = torch.optim.lr_scheduler.ExponentialLR(opt_g, cfg.lr_decay)
    sched_d = torch.optim.lr_scheduler.ExponentialLR(opt_d, cfg.lr_decay)
    state_parts = {"generator": gen_core, "discriminator": disc_core,
                   "opt_g": opt_g, "opt_d": opt_d, "sched_g": sched_g, "sched_d": sched_d}  # fmt: skip
    step = run.resume(state_parts, model_cfg)
    if run.state is None and cfg.init_from:
        init_generator(gen_core, cfg.init_from)

    configs = {"VocoderTrainConfig": config_dict(cfg), "VocoderConfig": config_dict(model_cfg)}

    def snapshot() -> dict:
        return run.snapshot(step, state_parts, config=configs)

    finetune_from = cfg.max_steps - cfg.finetune_steps if cfg.vae else cfg.max_steps
    vae_mels: torch.Tensor | None = None
    frames = model_cfg.segment_samples // HOP_LENGTH
    with RunLoop(cfg, rt, run.run_dir, "train vocoder", step, stop_at) as loop:
        while step < cfg.max_steps:
            if step >= finetune_from and vae_mels is None:
                vae_mels = vae_reconstructions(cfg.vae, train_data, rt.device)
            mels = (
                vae_mels if vae_mels is not None and step >= finetune_from else train_data.log_mels
            )
            g = torch.Generator().manual_seed(loop.step_seed(step))
            idx = loop.batch(len(train_data), step)
            mel, real = sample_crops(waves, mels, idx, frames, cfg, g)
            mel, real = mel.to(rt.device), real.to(rt.device)
            adversarial = step >= cfg.adv_start_step
            noise = None
            if model_cfg.noise_source:  # fresh noise per crop (inference uses one fixed sequence)
                noise = torch.randn(real.shape[0], 1, real.shape[-1], generator=g).to(rt.device)
            fake = gen_model(mel, noise)[:, 0]  # (B, L)
            parts: dict[str, float] = {}
            if adversarial:  # discriminator step on detached fakes
                logits, _ = disc_model(torch.cat([real, fake.detach()]).unsqueeze(1))
                real_logits = [lg[: real.shape[0]] for lg in logits]
                fake_logits = [lg[real.shape[0] :] for lg in logits]
                loss_d = discriminator_loss(real_logits, fake_logits)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                sched_d.step()
                parts["disc"] = loss_d.item()
            loss_g, rec = generator_losses(fake, real, model_cfg, cfg)
            parts.update(rec)
            if adversarial:
                logits, feats = disc_model(torch.cat([real, fake]).unsqueeze(1))
                b = real.shape[0]
                real_feats = [[f[:b] for f in fs] for fs in feats]
                fake_feats = [[f[b:] for f in fs] for fs in feats]
                adv = generator_adv_loss([lg[b:] for lg in logits])
                fm = feature_matching_loss(real_feats, fake_feats)
                loss_g = (
                    loss_g + model_cfg.adv_loss_weight * adv + model_cfg.feature_loss_weight * fm
                )
                parts.update(adv=adv.item(), fm=fm.item())
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            sched_g.step()
            step += 1
            parts["gen"] = loss_g.item()
            loop.bar.update(1, loss=parts["gen"], mel=parts["mel_l1"])
            if step % cfg.log_every == 0:
                others = {f"train/{k}": v for k, v in parts.items() if k != "gen"}
                others["train/lr"] = sched_g.get_last_lr()[0]
                loop.log_train(step, "gen", parts["gen"], others)
            if rt.is_main and (step % cfg.val_every == 0 or step == cfg.max_steps):
                metrics, fake_val = validate(gen_core, val_data, cfg, rt.device)
                loop.log.scalars(step, metrics)
                loop.log.spectrograms(
                    step,
                    "val/real_vs_vocoded",
                    torch.cat([val_data.log_mels[:3].float(), log_mel(fake_val[:3].cpu())]),
                )
                loop.log.audio(step, "val/vocoded", fake_val[:3], SAMPLE_RATE)
                save_vocoder(
                    run.run_dir / "export" / VOCODER_FILENAME,
                    unwrap(gen_model),
                    model_cfg,
                    step=step,
                    train_config=config_dict(cfg),
                    metrics=metrics,
                )
            if loop.after_step(step, snapshot):
                break
    return loop.finish(step, gen_model, disc_model)
