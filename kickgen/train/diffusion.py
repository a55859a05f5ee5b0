"""``kickgen train diffusion``: the latent U-Net and keyword encoder on a trained VAE's latents.

Each step: a posterior sample of each clip's latent (scaled by the VAE's stored shift/scale), a
uniform timestep, and the clip's keywords with classifier-free dropout (the whole prompt with
``prompt_dropout``, each single keyword with ``keyword_dropout``, so partial prompts are in the
training distribution). Target: velocity ("v") or noise ("epsilon"), loss weighted by min-SNR-γ.
EMA weights of U-Net and text encoder are what ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from kickgen.checkpoints import (
    DIFFUSION_FILENAME,
    build_unet,
    load_checkpoint,
    load_vae,
    save_diffusion,
)
from kickgen.models.autoencoder import KickVAE
from kickgen.models.diffusion import (
    DiffusionConfig,
    LatentUNet,
    NoiseScheduler,
    timestep_embedding,
)
from kickgen.models.text_encoder import KeywordEncoder
from kickgen.train.config import config_dict
from kickgen.train.data import SplitData, load_vocab_list, start_run
from kickgen.train.runtime import (
    EMA,
    RunLoop,
    Runtime,
    TrainingError,
    copy_matching,
    lr_lambda,
    wrap_ddp,
)


@dataclass
class DiffusionTrainConfig:
    vae: str = (
        "runs/vae/export/vae_epoch_100.pt"  # trained VAE checkpoint (its encoder makes the latents)
    )
    corpus: str = "corpus"  # corpus directory (kickgen data build)
    run_dir: str = "runs/diffusion"  # training state, logs, exported checkpoint
    init_from: str = ""  # diffusion checkpoint whose weights start a new run (a fine-tune)
    max_steps: int = 20000  # optimiser steps (global batches)
    batch_size: int = 64  # global batch, split across torchrun processes
    lr: float = 4e-4  # AdamW peak learning rate
    warmup_steps: int = 200  # linear LR warm-up
    final_lr_fraction: float = 0.1  # cosine decay ends at this fraction of lr
    weight_decay: float = 0.0  # AdamW weight decay
    grad_clip: float = 1.0  # max gradient norm
    val_every: int = 1000  # steps between validations, previews and exports
    preview_prompts: str = ",808,deep,short"  # comma-separated prompts previewed at validation
    save_every_s: float = 180.0  # seconds between training-state saves
    log_every: int = 50  # steps between logged scalars
    seed: int = 0  # data order, noise, dropout
    threads: int = 0  # torch CPU threads (0 = torch's default)
    device: str = "auto"  # auto (CUDA if present), cpu, cuda


class Denoiser(nn.Module):
    """U-Net and keyword encoder as one module (one DDP wrapper, one EMA)."""

    def __init__(self, unet: LatentUNet, text_enc: KeywordEncoder):
        super().__init__()
        self.unet = unet
        self.text_enc = text_enc

    def forward(self, x: torch.Tensor, t: torch.Tensor, token_ids: list[list[int]]) -> torch.Tensor:
        return self.unet(x, t, self.text_enc(token_ids, x.device))


@dataclass
class LatentSet:
    """Unscaled posterior means/stds (N, C, 8, 11) and keyword ids of a split."""

    mu: torch.Tensor
    std: torch.Tensor
    token_ids: list[list[int]]


@torch.no_grad()
def encode_split(
    vae: KickVAE, data: SplitData, vocab: list[str], device: torch.device
) -> LatentSet:
    index = {w: i for i, w in enumerate(vocab)}
    mus, stds = [], []
    for i in range(0, len(data), 64):
        x = data.log_mels[i : i + 64].float().unsqueeze(1).to(device)
        mu, logvar = vae.encode_dist(x)
        mus.append(mu.cpu())
        stds.append(torch.exp(0.5 * logvar).cpu())
    ids = [[index[w] for w in kws if w in index] for kws in data.keywords]
    return LatentSet(torch.cat(mus), torch.cat(stds), ids)


def drop_keywords(
    token_ids: list[list[int]], cfg: DiffusionConfig, gen: torch.Generator
) -> list[list[int]]:
    """Classifier-free dropout: whole prompts with prompt_dropout, single keywords with keyword_dropout."""
    out = []
    for ids in token_ids:
        if torch.rand((), generator=gen) < cfg.prompt_dropout:
            out.append([])
        else:
            out.append([i for i in ids if torch.rand((), generator=gen) >= cfg.keyword_dropout])
    return out


def onset_weighted_error(
    pred: torch.Tensor, target: torch.Tensor, onset_weight: float
) -> torch.Tensor:
    """Squared error (B, C, 8, W) → (B,), the first latent column weighted ``1 + onset_weight``
    times the others, normalised so that equal errors everywhere give their plain mean."""
    per_column = (pred - target).square().mean(dim=(1, 2))  # (B, W)
    weights = torch.ones(per_column.shape[1], device=per_column.device)
    weights[0] += onset_weight
    return (per_column * weights).sum(dim=1) / weights.sum()


def diffusion_loss(
    model: nn.Module,
    sched: NoiseScheduler,
    z0: torch.Tensor,
    token_ids: list[list[int]],
    cfg: DiffusionConfig,
    gen: torch.Generator,
) -> torch.Tensor:
    """z0 (B, C, 8, 11) scaled latents → min-SNR-weighted MSE of the prediction target."""
    b = z0.shape[0]
    t = torch.randint(0, sched.timesteps, (b,), generator=gen).to(z0.device)
    noise = torch.randn(z0.shape, generator=gen).to(z0.device)
    xt = sched.add_noise(z0, noise, t)
    pred = model(xt, t, token_ids)
    target = sched.velocity(z0, noise, t) if cfg.prediction_type == "v" else noise
    if cfg.onset_weight > 0:
        per_sample = onset_weighted_error(pred, target, cfg.onset_weight)  # (B,)
    else:
        per_sample = (pred - target).square().mean(dim=(1, 2, 3))  # (B,)
    if cfg.min_snr_gamma > 0:
        snr = sched.snr(t)
        clipped = snr.clamp(max=cfg.min_snr_gamma)
        weight = clipped / (snr + 1) if cfg.prediction_type == "v" else clipped / snr
        per_sample = per_sample * weight
    return per_sample.mean()


def scaled_latents(
    vae: KickVAE, latents: LatentSet, idx: torch.Tensor, gen: torch.Generator | None
) -> torch.Tensor:
    """Posterior samples (or means when gen is None) of clips ``idx``, in the VAE's scaled space."""
    mu, std = latents.mu[idx], latents.std[idx]
    z = mu if gen is None else mu + std * torch.randn(mu.shape, generator=gen)
    return (z - vae.latent_shift.cpu()) / vae.latent_scale.cpu()


@torch.no_grad()
def validate(
    ema_model: Denoiser,
    sched: NoiseScheduler,
    vae: KickVAE,
    val: LatentSet,
    cfg: DiffusionConfig,
    device,
) -> dict[str, float]:
    """EMA loss on validation latents at fixed timesteps and fixed noise (comparable across steps)."""
    gen = torch.Generator().manual_seed(1234)
    n = min(256, val.mu.shape[0])
    z0 = scaled_latents(vae, val, torch.arange(n), None).to(device)
    total = 0.0
    ts = torch.linspace(0, sched.timesteps - 1, 8).long()
    for t_val in ts:
        t = torch.full((n,), int(t_val), device=device)
        noise = torch.randn(z0.shape, generator=gen).to(device)
        xt = sched.add_noise(z0, noise, t)
        pred = ema_model(xt, t, val.token_ids[:n])
        target = sched.velocity(z0, noise, t) if cfg.prediction_type == "v" else noise
        total += (pred - target).square().mean().item()
    return {"val/loss": total / len(ts)}


@torch.no_grad()
def ddim_preview(
    model: Denoiser,
    sched: NoiseScheduler,
    token_ids: list[list[int]],
    shape: tuple[int, ...],
    steps: int = 50,
    cfg_scale: float = 3.0,
    seed: int = 0,
) -> torch.Tensor:
    """Deterministic DDIM (eta 0) with batched classifier-free guidance, for training previews only
    (the shipped sampler is kickgen's pipeline). Returns scaled latents (B, C, 8, 11)."""
    device = sched.alpha_bars.device
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed)).to(device)
    b = shape[0]
    cond_ids = list(token_ids) + [[] for _ in range(b)]
    ts = torch.linspace(sched.timesteps - 1, 0, steps).round().long().tolist()
    for i, t_now in enumerate(ts):
        t = torch.full((2 * b,), t_now, device=device)
        out = model(torch.cat([x, x]), t, cond_ids)
        cond, uncond = out.chunk(2)
        guided = uncond + cfg_scale * (cond - uncond)
        x0, eps = sched.split_prediction(guided, x, t[:b], model.unet.prediction_type)
        ab_prev = (
            sched.alpha_bars[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, device=device)
        )
        x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
    return x


def export(
    ema_model: Denoiser,
    vocab: list[str],
    cfg: DiffusionTrainConfig,
    model_cfg: DiffusionConfig,
    step: int,
    metrics: dict,
) -> Path:
    """Write the EMA weights to ``run_dir/export/diffusion_step_100000.pt``."""
    return save_diffusion(
        Path(cfg.run_dir) / "export" / DIFFUSION_FILENAME,
        ema_model.unet,
        ema_model.text_enc,
        vocab,
        model_cfg,
        step=step,
        train_config=config_dict(cfg),
        metrics=metrics,
    )


# the sizes and the noise process a file's weights are tied to (the others only steer training)
ARCHITECTURE_FIELDS = ("latent_dim", "base_channels", "channel_mult", "cond_dim", "text_embed_dim",
                       "timesteps", "beta_start", "beta_end", "prediction_type", "time_scale")  # fmt: skip


def init_denoiser(
    core: Denoiser, path: str, model_cfg: DiffusionConfig, vocab: list[str]
) -> list[str]:
    """Start ``core`` from the EMA weights of diffusion checkpoint ``path`` (a fine-tune, on a
    rebuilt corpus or a producer's own library): U-Net and keyword encoder, each keyword's
    embedding found by its word, so a vocabulary that gained, lost or reordered words keeps the
    ones it shares. Returns the names left freshly initialised (a new word's row is not a name:
    it stays fresh inside the copied table)."""
    ckpt = load_checkpoint(path, "diffusion")
    differ = [f"{name} {getattr(ckpt['config'], name)!r} (run: {getattr(model_cfg, name)!r})"
              for name in ARCHITECTURE_FIELDS
              if getattr(ckpt["config"], name) != getattr(model_cfg, name)]  # fmt: skip
    if differ:
        raise TrainingError(
            f"{path}: its weights do not fit this run ({', '.join(differ)}); "
            "pass the file's sizes and noise schedule, or start without --init-from"
        )
    text = dict(ckpt["text_enc_state_dict"])
    rows = core.text_enc.embedding.weight.detach().clone()  # (V, E), fresh rows for new words
    old = {str(w): i for i, w in enumerate(ckpt["vocab"])}
    shared = [(i, old[w]) for i, w in enumerate(vocab) if w in old]
    for i, j in shared:
        rows[i] = text["embedding.weight"][j]
    text["embedding.weight"] = rows
    state = {f"unet.{k}": v for k, v in ckpt["ema_state_dict"].items()}
    state.update({f"text_enc.{k}": v for k, v in text.items()})
    print(f"init from {path}: {len(shared)} of {len(vocab)} keywords known")
    return copy_matching(core, state, path)


def train(
    cfg: DiffusionTrainConfig,
    model_cfg: DiffusionConfig,
    rt: Runtime,
    resume: bool,
    stop_at: int = 0,
) -> int:
    """Train (or resume) a diffusion run to ``cfg.max_steps`` (or ``stop_at``, see
    :class:`RunLoop`); returns the step reached."""
    vae = load_vae(cfg.vae, rt.device)
    if vae.latent_dim != model_cfg.latent_dim:
        raise TrainingError(
            f"{cfg.vae}: VAE latent_dim {vae.latent_dim} differs from --latent-dim {model_cfg.latent_dim}"
        )
    vocab = load_vocab_list(cfg.corpus)
    run = start_run(cfg, "diffusion", resume)
    if run.state is not None and list(run.state["vocab"]) != vocab:
        raise TrainingError(
            f"{cfg.corpus}: vocabulary differs from the resumed run's; resume with its corpus"
        )
    train_lat = encode_split(vae, run.train, vocab, rt.device)
    val_lat = encode_split(vae, run.val, vocab, rt.device)
    core = Denoiser(
        build_unet(model_cfg),
        KeywordEncoder(len(vocab), model_cfg.text_embed_dim, model_cfg.cond_dim),
    )
    if run.state is None and cfg.init_from:
        init_denoiser(core, cfg.init_from, model_cfg, vocab)
    core.to(rt.device)
    ema = EMA(core, model_cfg.ema_decay)
    model = wrap_ddp(core, rt)
    sched = NoiseScheduler(model_cfg.timesteps, model_cfg.beta_start, model_cfg.beta_end).to(
        rt.device
    )
    opt = torch.optim.AdamW(core.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    lr_sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lr_lambda(cfg.warmup_steps, cfg.max_steps, cfg.final_lr_fraction)
    )
    state_parts = {"model": core, "ema": ema.model, "opt": opt, "sched": lr_sched}
    step = run.resume(state_parts, model_cfg, tied=ARCHITECTURE_FIELDS)
    configs = {"DiffusionTrainConfig": config_dict(cfg), "DiffusionConfig": config_dict(model_cfg)}

    def snapshot() -> dict:
        return run.snapshot(step, state_parts, vocab=vocab, config=configs)

    index = {w: i for i, w in enumerate(vocab)}
    previews = [[index[w] for w in p.split() if w in index] for p in cfg.preview_prompts.split(",")]
    n = train_lat.mu.shape[0]
    with RunLoop(cfg, rt, run.run_dir, "train diffusion", step, stop_at) as loop:
        while step < cfg.max_steps:
            gen = torch.Generator().manual_seed(loop.step_seed(step))
            torch.manual_seed(loop.step_seed(step))  # dropout layers
            idx = loop.batch(n, step)
            z0 = scaled_latents(vae, train_lat, idx, gen).to(rt.device)
            ids = drop_keywords([train_lat.token_ids[i] for i in idx.tolist()], model_cfg, gen)
            model.train()
            loss = diffusion_loss(model, sched, z0, ids, model_cfg, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(core.parameters(), cfg.grad_clip))
            opt.step()
            lr_sched.step()
            ema.update(core, step)
            step += 1
            loop.bar.update(1, loss=loss.item())
            if step % cfg.log_every == 0:
                others = {"train/grad_norm": grad_norm, "train/lr": lr_sched.get_last_lr()[0]}
                loop.log_train(step, "loss", loss.item(), others)
            if rt.is_main and (step % cfg.val_every == 0 or step == cfg.max_steps):
                metrics = validate(ema.model, sched, vae, val_lat, model_cfg, rt.device)
                loop.log.scalars(step, metrics)
                lat = ddim_preview(
                    ema.model, sched, previews, (len(previews), model_cfg.latent_dim, 8, 11)
                )
                loop.log.spectrograms(
                    step,
                    "preview",
                    vae.decode(lat)[:, 0],
                )
                export(ema.model, vocab, cfg, model_cfg, step, metrics)
            if loop.after_step(step, snapshot):
                break
    return loop.finish(step, model)


def refit_time_embedding(
    unet: LatentUNet,
    timesteps: int,
    time_scale: float = 32.0,
    sigma: float = 8.0,
    steps: int = 6000,
) -> LatentUNet:
    """A copy of ``unet`` that is smooth in t, its body untouched (``kickgen train smooth-time``).

    A U-Net trained with the DDPM embedding (``time_scale`` 1) wiggles in t from step to step
    (:class:`~kickgen.models.diffusion.LatentUNet`). The wiggles enter only through its time MLP,
    whose output (the vector added to the keyword vector) is a smooth curve over t plus them: on
    the 2026.12 U-Net they are 10 % of it. The copy's time MLP, fed the embedding of
    ``t / time_scale``, is fitted (Adam, full batch, cosine decay from 2e-3) to that curve smoothed
    by a Gaussian of ``sigma`` steps over the ``timesteps`` training steps, starting from its
    trained weights (deterministic: no random draw); every other weight, and so what the keywords
    do, stays as trained.
    """
    import copy

    from kickgen.progress import Progress

    new = copy.deepcopy(unet).eval()
    new.time_scale = float(time_scale)
    t = torch.arange(timesteps)
    with torch.no_grad():
        before = unet.time_mlp(timestep_embedding(t / unet.time_scale, unet.time_dim))  # (T, E)
        offsets = torch.arange(-int(4 * sigma), int(4 * sigma) + 1)
        index = t[:, None] + offsets[None]  # (T, K): the window around each step
        inside = (index >= 0) & (index < timesteps)
        weights = torch.exp(-0.5 * (offsets / sigma) ** 2)[None] * inside
        weights = weights / weights.sum(dim=1, keepdim=True)  # renormalised at the ends
        target = (weights[..., None] * before[index.clamp(0, timesteps - 1)]).sum(dim=1)
    features = timestep_embedding(t / time_scale, new.time_dim)
    new.requires_grad_(False)
    new.time_mlp.requires_grad_(True)
    opt = torch.optim.Adam(new.time_mlp.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=1e-5)
    with Progress(steps, "smooth time embedding") as bar:
        for _ in range(steps):
            loss = (new.time_mlp(features) - target).square().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            bar.update(1, loss=f"{loss.item():.2e}")
    return new.requires_grad_(False)
