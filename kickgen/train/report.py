"""``kickgen train report``: listening by numbers, to decide whether trained weights can ship.

Not the project's evaluation (``kickgen eval``): a quick check that a training run writes while
it trains, on its own validation split.

- vocoder: multi-resolution STFT log-magnitude distance to the real validation waveforms, for
  the HiFi-GAN and for Griffin-Lim on the same mels (lower is better);
- VAE: reconstruction L1 of validation log-mels through the means;
- generation: for a few prompts, simple kick sanity checks (onset in the first 30 ms, strongest
  spectral peak of the body 30–160 Hz, quiet last 0.25 s, finite, not silent, not clipped), the
  body pitch and the -30 dB decay time, and a spectrogram grid PNG.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from kickgen.audio import SAMPLE_RATE

REPORT_PROMPTS = ("", "808", "909", "deep", "short", "long", "punchy", "distorted")


def kick_measures(waves: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-clip measures of (N, L) waveforms at 44.1 kHz: onset (ms), body pitch (Hz), decay (s), checks."""
    n = waves.shape[0]
    env = waves.abs().unfold(-1, 441, 441).amax(-1)  # (N, L/441) peak per 10 ms
    peak = env.amax(-1, keepdim=True).clamp(min=1e-9)
    onset_ms = (
        (env > 0.1 * peak).float().argmax(-1) * 10.0
    ).float()  # first 10 ms frame above -20 dB
    above = env > peak * 10 ** (-30 / 20)  # within 30 dB of the peak
    last = above.shape[-1] - 1 - above.flip(-1).float().argmax(-1)
    decay_s = last.float() * 0.01
    body = waves[:, : SAMPLE_RATE // 4]  # first 0.25 s
    spec = torch.fft.rfft(body * torch.hann_window(body.shape[-1]), n=SAMPLE_RATE)  # 1 Hz bins
    mag = spec.abs()[:, 20:400]  # 20–400 Hz
    pitch_hz = (mag.argmax(-1) + 20).float()
    tail = waves[:, -SAMPLE_RATE // 4 :].abs().amax(-1)
    checks = {
        "finite": torch.isfinite(waves).all(-1),
        "not_silent": waves.abs().amax(-1) > 1e-3,
        "not_clipped": (waves.abs() >= 0.999).sum(-1) < 10,
        "onset_30ms": onset_ms <= 30,
        "pitch_30_160": (pitch_hz >= 30) & (pitch_hz <= 160),
        "quiet_tail": tail < 0.05 * waves.abs().amax(-1).clamp(min=1e-9),
    }
    passed = torch.ones(n, dtype=torch.bool)
    for c in checks.values():
        passed &= c
    return {
        "onset_ms": onset_ms,
        "pitch_hz": pitch_hz,
        "decay_s": decay_s,
        "passed": passed,
        **checks,
    }


def spectrogram_grid(log_mels: torch.Tensor, titles: list[str], path: Path, cols: int = 8) -> Path:
    """(N, 128, T) log-mels → a PNG grid (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = (len(titles) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.7 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, mel, title in zip(axes.flat, log_mels.float(), titles, strict=False):
        ax.imshow(mel.numpy(), origin="lower", aspect="auto", vmin=-11.5, vmax=10)
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path


@torch.no_grad()
def run_report(checkpoints: Path, corpus: Path, out: Path, n: int = 16, seed: int = 0) -> dict:
    """Write ``out/report.json`` and PNGs for the three guide-named files in ``checkpoints``."""
    import torch.nn.functional as F

    from kickgen.audio import log_mel
    from kickgen.checkpoints import (
        DIFFUSION_FILENAME,
        VAE_FILENAME,
        VOCODER_FILENAME,
        load_vae,
        load_vocoder,
    )
    from kickgen.pipeline import KickPipeline
    from kickgen.train.data import load_split_data
    from kickgen.train.vocoder import compare_with_griffin_lim, vocode

    out.mkdir(parents=True, exist_ok=True)
    val = load_split_data(corpus, "val")
    report: dict = {}
    has_vocoder = (checkpoints / VOCODER_FILENAME).exists()  # without it: Griffin-Lim throughout
    vocoder = load_vocoder(checkpoints / VOCODER_FILENAME) if has_vocoder else None
    if vocoder is not None:
        report["vocoder_log_stft_distance"] = compare_with_griffin_lim(vocoder, val, n_clips=32)
        real_hz = kick_measures(val.waves[:32].float())["pitch_hz"]
        voc_hz = kick_measures(vocode(vocoder, val.log_mels[:32].float()))["pitch_hz"]
        report["vocoder_body_pitch_error_hz"] = (voc_hz - real_hz).abs().mean().item()
    vae = load_vae(checkpoints / VAE_FILENAME)
    mels = val.log_mels[:64].float().unsqueeze(1)
    recon = vae.decode(vae.encode(mels))
    report["vae_val_l1"] = F.l1_loss(recon, mels).item()
    k = 8
    rows = [val.log_mels[:k].float(), recon[:k, 0]]
    titles = [f"real {i}" for i in range(k)] + [f"vae {i}" for i in range(k)]
    if vocoder is not None:
        rows += [
            log_mel(vocode(vocoder, val.log_mels[:k].float())),
            log_mel(vocode(vocoder, recon[:k, 0])),
        ]
        titles += [f"vocoded {i}" for i in range(k)] + [f"vae+voc {i}" for i in range(k)]
    spectrogram_grid(torch.cat(rows), titles, out / "reconstruction_grid.png")
    pipe = KickPipeline.from_checkpoints(
        diffusion=checkpoints / DIFFUSION_FILENAME, vae=checkpoints / VAE_FILENAME,
        vocoder=checkpoints / VOCODER_FILENAME if has_vocoder else None, device="cpu",
    )  # fmt: skip
    report["generation_vocoder"] = "hifigan" if has_vocoder else "griffin-lim"
    gen_mels, titles, prompts = [], [], {}
    for prompt in REPORT_PROMPTS:
        result = pipe(prompt, n=n, seed=seed, warn_unknown=False)
        m = kick_measures(result.waveforms)
        prompts[prompt or "(none)"] = {
            "pass_rate": m["passed"].float().mean().item(),
            **{
                c: m[c].float().mean().item()
                for c in ("onset_30ms", "pitch_30_160", "quiet_tail", "not_clipped")
            },
            "pitch_hz_mean": m["pitch_hz"].mean().item(),
            "decay_s_mean": m["decay_s"].mean().item(),
        }
        gen_mels.append(log_mel(result.waveforms[:4]))
        titles += [f"{prompt or '(none)'} {i}" for i in range(4)]
    report["generation"] = prompts
    report["generation_pass_rate"] = sum(p["pass_rate"] for p in prompts.values()) / len(prompts)
    real = kick_measures(val.waves.float())
    report["real_val"] = {
        "pass_rate": real["passed"].float().mean().item(),
        "pitch_hz_mean": real["pitch_hz"].mean().item(),
        "decay_s_mean": real["decay_s"].mean().item(),
    }
    spectrogram_grid(torch.cat(gen_mels), titles, out / "generation_grid.png")
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report
