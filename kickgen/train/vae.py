"""``kickgen train vae``: the KickVAE on corpus log-mels.

Loss: L1 + MSE on log-mels (log units) + a KL term whose weight ramps from ``kl_weight_start`` to
``kl_weight`` over ``kl_anneal_steps``; extra L1 on the onset frames and on the low band, and a
body-pitch loss (:func:`pitch_loss`) on the track the vocoder's body source follows. After
training (and at every export) the latent shift and scale are computed from the training set's
means and stored in the VAE, so ``encode`` hands diffusion unit-variance latents.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kickgen.checkpoints import VAE_FILENAME, build_vae, save_vae
from kickgen.models.autoencoder import KickVAE, VAEConfig
from kickgen.models.vocoder import BodyPitch
from kickgen.train.config import config_dict
from kickgen.train.data import SplitData, start_run
from kickgen.train.runtime import (
    RunLoop,
    Runtime,
    lr_lambda,
    wrap_ddp,
)


@dataclass
class VAETrainConfig:
    corpus: str = "corpus"  # corpus directory (kickgen data build)
    run_dir: str = "runs/vae"  # training state, logs, exported checkpoint
    max_steps: int = 8000  # optimiser steps (global batches)
    batch_size: int = 16  # global batch, split across torchrun processes
    lr: float = 1e-3  # AdamW peak learning rate
    warmup_steps: int = 100  # linear LR warm-up
    final_lr_fraction: float = 0.05  # cosine decay ends at this fraction of lr
    weight_decay: float = 0.01  # AdamW weight decay
    grad_clip: float = 1.0  # max gradient norm
    mse_weight: float = 0.5  # MSE beside L1 (log-mel units)
    onset_weight: float = 1.0  # extra L1 on the first ONSET_FRAMES (the sweep, the click), 0 = off
    low_band_weight: float = (
        0.5  # extra L1 on the mel bins below LOW_BAND_HZ (where the body lives)
    )
    pitch_weight: float = 1.0  # body-pitch track loss (octaves, see pitch_loss), 0 = off
    kl_weight: float = 1e-4  # final KL weight (mean KL per latent element)
    kl_weight_start: float = 1e-6  # KL weight at step 0 (annealed geometrically)
    kl_anneal_steps: int = 1000  # steps to reach kl_weight
    val_every: int = 500  # steps between validations (and exports)
    val_clips: int = 256  # validation clips evaluated (first N of the val split)
    save_every_s: float = 180.0  # seconds between training-state saves
    log_every: int = 25  # steps between logged scalars
    train_encoder: bool = (
        True  # False freezes the encoder (and so the latents diffusion sees): decoder fine-tuning
    )
    seed: int = 0  # data order, sampling noise
    threads: int = 0  # torch CPU threads (0 = torch's default)
    device: str = "auto"  # auto (CUDA if present), cpu, cuda


ONSET_FRAMES = 9  # mel frames (hop 512) from the clip start: 104 ms, the onset is at 1 ms
LOW_BAND_HZ = 400.0
PITCH_TEMPERATURE = 0.01  # softmax temperature over the matched filter's cosine similarities
PITCH_FLOOR_DB = 30.0  # pitch loss on frames whose low band is within this of the loudest frame


def _low_bins() -> int:
    """Mel bins whose centre lies below ``LOW_BAND_HZ``."""
    from kickgen.audio import N_MELS, SAMPLE_RATE, hz_to_mel, mel_to_hz

    edges = mel_to_hz(
        np.linspace(0.0, hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2)
    )  # the contract's 0 Hz–Nyquist
    return int((np.asarray(edges[1:-1]) < LOW_BAND_HZ).sum())


def soft_log2_f0(body_pitch: BodyPitch, log_mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1, 128, T) log-mel → (soft body pitch in log2 Hz (B, T), low-band power norm (B, T)).

    The vocoder reads a kick's body pitch from the mel with :class:`BodyPitch`'s matched filter
    (the arg-max over sines); this is its soft arg-max (softmax over the cosine similarities at
    ``PITCH_TEMPERATURE``), so a loss on it has a gradient.
    """
    score, norm = body_pitch.scores(log_mel[:, 0])
    cosine = score / norm.unsqueeze(1).clamp(min=1e-12)
    weights = torch.softmax(cosine / PITCH_TEMPERATURE, dim=1)  # (B, F, T)
    return torch.einsum("bft,f->bt", weights, body_pitch.freqs.log2()), norm


def pitch_loss(body_pitch: BodyPitch, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean absolute body-pitch error (octaves) of ``recon`` against ``x``, both (B, 1, 128, T),
    over the frames whose low-band power is within ``PITCH_FLOOR_DB`` of the clip's loudest.

    This is the track the vocoder's body source follows, frame by frame: an L1 on log-mels barely
    notices a sweep that moves energy between two adjacent 20 Hz-wide bands, this loss does.
    """
    with torch.no_grad():
        target, norm = soft_log2_f0(body_pitch, x)
        loud = norm >= norm.amax(dim=1, keepdim=True) * 10.0 ** (-PITCH_FLOOR_DB / 10.0)
    pitch, _ = soft_log2_f0(body_pitch, recon)
    return ((pitch - target).abs() * loud).sum() / loud.sum().clamp(min=1)


def kl_weight_at(cfg: VAETrainConfig, step: int) -> float:
    frac = min(1.0, step / max(1, cfg.kl_anneal_steps))
    return cfg.kl_weight_start * (cfg.kl_weight / cfg.kl_weight_start) ** frac


def vae_loss(
    model: torch.nn.Module, x: torch.Tensor, cfg: VAETrainConfig, step: int
) -> tuple[torch.Tensor, dict[str, float]]:
    """x (B, 1, 128, 173) log-mel → total loss and its parts."""
    recon, mu, logvar = model(x)
    l1 = F.l1_loss(recon, x)
    mse = F.mse_loss(recon, x)
    kl = 0.5 * torch.mean(mu.square() + logvar.exp() - 1.0 - logvar)
    loss = l1 + cfg.mse_weight * mse + kl_weight_at(cfg, step) * kl
    parts = {"l1": l1.item(), "mse": mse.item(), "kl": kl.item()}
    if cfg.onset_weight:
        onset = F.l1_loss(recon[..., :ONSET_FRAMES], x[..., :ONSET_FRAMES])
        loss = loss + cfg.onset_weight * onset
        parts["onset_l1"] = onset.item()
    if cfg.low_band_weight:
        low = _low_bins()
        low_l1 = F.l1_loss(recon[..., :low, :], x[..., :low, :])
        loss = loss + cfg.low_band_weight * low_l1
        parts["low_l1"] = low_l1.item()
    if cfg.pitch_weight:
        pitch = pitch_loss(_body_pitch(x.device), recon, x)
        loss = loss + cfg.pitch_weight * pitch
        parts["pitch"] = pitch.item()
    return loss, {"loss": loss.item(), **parts}


@functools.cache
def _body_pitch(device: torch.device) -> BodyPitch:
    return BodyPitch().to(device)


def train_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    x: torch.Tensor,
    cfg: VAETrainConfig,
    step: int,
) -> dict[str, float]:
    model.train()
    loss, parts = vae_loss(model, x, cfg, step)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    parts["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
    opt.step()
    sched.step()
    return parts


@torch.no_grad()
def validate(
    vae: KickVAE, val: SplitData, cfg: VAETrainConfig, device: torch.device
) -> dict[str, float]:
    """Reconstruction through the means (as inference decodes): L1 and MSE in log-mel units."""
    vae.eval()
    n = min(cfg.val_clips, len(val))
    l1 = mse = 0.0
    for i in range(0, n, 32):
        x = val.log_mels[i : min(n, i + 32)].float().unsqueeze(1).to(device)
        mu, _ = vae.encode_dist(x)
        recon = vae.decode_raw(mu).clamp(min=x.min())
        l1 += F.l1_loss(recon, x, reduction="sum").item()
        mse += F.mse_loss(recon, x, reduction="sum").item()
    count = n * x[0].numel()
    return {"val/l1": l1 / count, "val/mse": mse / count}


@torch.no_grad()
def fit_latent_scale(
    vae: KickVAE, train: SplitData, device: torch.device, max_clips: int = 4096
) -> None:
    """Set the VAE's latent shift/scale from the means of (up to ``max_clips``) training clips."""
    vae.eval()
    mus = []
    for i in range(0, min(len(train), max_clips), 64):
        x = train.log_mels[i : i + 64].float().unsqueeze(1).to(device)
        mus.append(vae.encode_dist(x)[0])
    vae.set_latent_stats(torch.cat(mus))


def export(
    vae: KickVAE, train: SplitData, cfg: VAETrainConfig, step: int, metrics: dict, device
) -> Path:
    """Fit the latent scale on a copy and write ``run_dir/export/vae_epoch_100.pt``."""
    import copy

    out = copy.deepcopy(vae).to(device)
    fit_latent_scale(out, train, device)
    return save_vae(
        Path(cfg.run_dir) / "export" / VAE_FILENAME,
        out.cpu(),
        step=step,
        train_config=config_dict(cfg),
        metrics=metrics,
    )


def train(
    cfg: VAETrainConfig, model_cfg: VAEConfig, rt: Runtime, resume: bool, stop_at: int = 0
) -> int:
    """Train (or resume) a VAE run to ``cfg.max_steps`` (or ``stop_at``, see :class:`RunLoop`);
    returns the step reached."""
    run = start_run(cfg, "vae", resume)
    train_data, val_data = run.train, run.val
    vae = build_vae(model_cfg).to(rt.device)
    if not cfg.train_encoder:  # frozen parameters get no gradient, so AdamW leaves them as they are
        for module in (vae.enc_in, vae.encoder, vae.enc_out):
            module.requires_grad_(False)
    model = wrap_ddp(vae, rt)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(cfg.warmup_steps, cfg.max_steps, cfg.final_lr_fraction)
    )
    state_parts = {"model": vae, "opt": opt, "sched": sched}
    step = run.resume(state_parts, model_cfg)
    configs = {"VAETrainConfig": config_dict(cfg), "VAEConfig": config_dict(model_cfg)}

    def snapshot() -> dict:
        return run.snapshot(step, state_parts, config=configs)

    metrics: dict[str, float] = {}
    with RunLoop(cfg, rt, run.run_dir, "train vae", step, stop_at) as loop:
        while step < cfg.max_steps:
            idx = loop.batch(len(train_data), step)
            x = train_data.log_mels[idx].float().unsqueeze(1).to(rt.device)  # (B, 1, 128, 173)
            torch.manual_seed(loop.step_seed(step))
            parts = train_step(model, opt, sched, x, cfg, step)
            step += 1
            loop.bar.update(1, loss=parts["loss"])
            if step % cfg.log_every == 0:
                lr = sched.get_last_lr()[0]
                others = {"train/l1": parts["l1"], "train/kl": parts["kl"], "train/lr": lr}
                loop.log_train(step, "loss", parts["loss"], others)
            if step % cfg.val_every == 0 or step == cfg.max_steps:
                if rt.is_main:
                    metrics = validate(vae, val_data, cfg, rt.device)
                    loop.log.scalars(step, metrics)
                    with torch.no_grad():
                        x_val = val_data.log_mels[:4].float().unsqueeze(1).to(rt.device)
                        recon = vae.decode_raw(vae.encode_dist(x_val)[0])
                        loop.log.spectrograms(step, "val/recon", torch.cat([x_val, recon])[:, 0])
                    export(vae, train_data, cfg, step, metrics, rt.device)
            if loop.after_step(step, snapshot):
                break
    return loop.finish(step, model)


def describe_model(cfg: VAEConfig) -> str:
    n = sum(p.numel() for p in KickVAE(**dataclasses.asdict(cfg)).parameters())
    return f"KickVAE {n / 1e6:.2f} M parameters, latent ({cfg.latent_dim}, 8, 11)"
