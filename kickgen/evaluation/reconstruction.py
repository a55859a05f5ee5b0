"""How well the chain rebuilds real kicks: recordings → VAE round trip → vocoder.

:func:`reconstruction` takes ``n_recon`` validation clips, the real recordings (``kind == real``)
first and other kinds when there are fewer (means over the real ones reported apart). VAE: log-mel
error in dB (encode → decode). Vocoders from the true log-mels and end to end (VAE round trip →
vocoder): HiFi-GAN, kickgen's Griffin-Lim (NNLS + fast GL) and the reference-style Griffin-Lim
(pseudo-inverse + 64 plain iterations), each scored by the floored log-mel distance and the
multi-resolution STFT distance (:mod:`kickgen.evaluation.metrics`) against the recording, and the
shipped vocoder's output through the kick benchmark (:mod:`kickgen.evaluation.benchmark`).
:func:`variation_at_zero` runs the whole variation path with nothing denoised.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from kickgen.evaluation import metrics
from kickgen.evaluation.benchmark import descriptor_table, realism
from kickgen.evaluation.inputs import EvalConfig, EvalSplit, pick
from kickgen.progress import Progress

RECON_METHODS = ("hifigan", "griffin_lim", "reference_griffin_lim")

RECON_KIND_ORDER = ("real", "augmented", "drumsynth", "kicker", "synth")  # fill order


def recon_indices(split: EvalSplit, n: int, seed: int) -> np.ndarray:
    """``n`` clips for reconstruction: real recordings first, then the other kinds in order."""
    chosen: list[int] = []
    order = list(RECON_KIND_ORDER) + sorted(set(split.kinds) - set(RECON_KIND_ORDER))
    for kind in order:
        of_kind = np.array([i for i, k in enumerate(split.kinds) if k == kind], dtype=int)
        if len(of_kind) and len(chosen) < n:
            chosen += of_kind[pick(len(of_kind), n - len(chosen), seed)].tolist()
    return np.array(chosen, dtype=int)


def _mean(x: torch.Tensor | np.ndarray) -> float:
    return float(np.mean(np.asarray(x, dtype=np.float64)))


def _ci95(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(1.96 * x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0


@torch.inference_mode()
def reconstruction(
    pipe, val: EvalSplit, config: EvalConfig, std: metrics.Standardizer
) -> tuple[dict, dict]:
    """VAE and vocoder reconstruction of validation recordings, real ones first.

    Takes ``n_recon`` validation clips: every real recording (up to ``n_recon``), then, when
    there are fewer, clips of the other kinds in the order of ``RECON_KIND_ORDER``. Returns
    ``(results, examples)``: per method and input (``true_mel`` / ``vae_mel``) the mean, 95 %
    half-interval, mean over the real recordings only and per-clip values of both distances;
    ``examples`` holds the first clips' waveforms per method for the figures. ``benchmark``:
    the shipped vocoder's output from the true mels and after the VAE round trip against the
    recordings, per descriptor and as sets (:func:`realism`), on the real recordings (all clips
    when there are none): does the chain keep the pitch sweep, the click and the punch?
    """
    from kickgen import griffin_lim
    from kickgen.audio import log_mel
    from kickgen.models.autoencoder import fit_latent

    idx = recon_indices(val, config.n_recon, config.seed)
    is_real = np.array([val.kinds[i] == "real" for i in idx])
    methods = [m for m in RECON_METHODS if m != "hifigan" or pipe.vocoder is not None]
    scores = {
        f"{src}/{m}": {"log_mel_db": [], "mrstft_db": [], "frame_comb": []}
        for src in ("true_mel", "vae_mel")
        for m in methods
    }
    vae_err: list[float] = []
    vae_fit_err: list[float] = []  # with the latents fitted to the mels, as init kicks' are
    recording_comb: list[float] = []
    examples: dict[str, torch.Tensor] = {}
    shipped = methods[0]  # the vocoder the pipeline uses: hifigan, or griffin_lim without one
    chain: dict[str, list[torch.Tensor]] = {"true_mel": [], "vae_mel": []}
    total = len(idx) * len(methods) * 2
    with Progress(total, "eval: reconstruction") as bar:
        for start in range(0, len(idx), 8):
            sel = idx[start : start + 8]
            wave = val.waves[sel].float()  # (b, 88200)
            mel = log_mel(wave)  # (b, 128, 173) in float32 from the recording
            vae_mel = (
                pipe.vae.decode(pipe.vae.encode(mel.unsqueeze(1).to(pipe.device)))
                .squeeze(1)
                .float()
                .cpu()
            )
            vae_err += metrics.log_mel_distance_db(vae_mel, mel).tolist()
            fitted = fit_latent(pipe.vae, mel.unsqueeze(1).to(pipe.device))  # as for init kicks
            fitted_mel = pipe.vae.decode(fitted).squeeze(1).float().cpu()
            vae_fit_err += metrics.log_mel_distance_db(fitted_mel, mel).tolist()
            recording_comb += metrics.frame_comb(wave).tolist()
            for src, inp in (("true_mel", mel), ("vae_mel", vae_mel)):
                for m in methods:
                    if m == "hifigan":
                        out = pipe.vocoder(inp.to(pipe.device)).squeeze(1).float().cpu()
                    elif m == "griffin_lim":
                        out = griffin_lim.log_mel_to_audio(inp)
                    else:
                        out = griffin_lim.reference_log_mel_to_audio(inp)
                    out = out[:, : wave.shape[-1]]
                    if m == shipped:
                        chain[src].append(out)
                    scores[f"{src}/{m}"]["log_mel_db"] += metrics.wave_log_mel_distance_db(
                        out, wave
                    ).tolist()
                    scores[f"{src}/{m}"]["mrstft_db"] += metrics.mrstft_distance_db(
                        out, wave
                    ).tolist()
                    scores[f"{src}/{m}"]["frame_comb"] += metrics.frame_comb(out).tolist()
                    if start == 0:
                        examples[f"{src}/{m}"] = out[: config.examples].clone()
                    bar.update(len(sel), method=m)
            if start == 0:
                examples["recording"] = wave[: config.examples].clone()

    def summary(v: list[float]) -> dict:
        arr = np.array(v)
        real = _mean(arr[is_real]) if is_real.any() else None
        return {"mean": _mean(arr), "ci95": _ci95(arr), "real_mean": real, "per_clip": v}

    results: dict = {"n": len(idx), "n_real": int(is_real.sum()), "ids": [val.ids[i] for i in idx],
                     "kinds": [val.kinds[i] for i in idx], "vae_log_mel_db": summary(vae_err),
                     "vae_fitted_log_mel_db": summary(vae_fit_err),
                     "recording_frame_comb": summary(recording_comb)}  # fmt: skip
    for key, vals in scores.items():
        results[key] = {name: summary(v) for name, v in vals.items()}
    pick = is_real if is_real.any() else np.ones(len(idx), dtype=bool)
    chain_waves = {"recordings": val.waves[idx[pick]].float(),
                   "vocoder": torch.cat(chain["true_mel"])[pick],
                   "round_trip": torch.cat(chain["vae_mel"])[pick]}  # fmt: skip
    chain_sets = {name: metrics.describe_safe(w) for name, w in chain_waves.items()}
    results["benchmark"] = {
        "vocoder": shipped,
        "n": int(pick.sum()),
        "table": descriptor_table(chain_sets),
        "realism": realism(
            std,
            chain_sets["recordings"],
            {k: v for k, v in chain_sets.items() if k != "recordings"},
            config.seed,
        ),  # fmt: skip
    }
    examples.update({f"pitch/{name}": w for name, w in chain_waves.items()})
    for src in ("true_mel", "vae_mel"):
        if (
            f"{src}/hifigan" in results
        ):  # issue 7's acceptance: HiFi-GAN MR-STFT ≤ 60 % of Griffin-Lim's
            results[f"{src}/hifigan_over_griffin_lim_mrstft"] = (
                results[f"{src}/hifigan"]["mrstft_db"]["mean"]
                / results[f"{src}/griffin_lim"]["mrstft_db"]["mean"]
            )
    return results, examples


def variation_at_zero(pipe, val: EvalSplit, config: EvalConfig) -> dict:
    """Variations at strength 0 of the real validation recordings (all clips when there are none):
    the whole variation path (encode, decode, vocode, output stage) with nothing denoised, so the
    kick should come back as it went in. Log-mel distance in dB to the recording as the same
    output stage delivers it (:func:`kickgen.pipeline.postprocess`: faded from 1.0 s, peak 0.95),
    so that the contract's fade and level are not counted as the model's error."""
    from kickgen.pipeline import postprocess
    from kickgen.producer.variations import vary_init

    idx = recon_indices(val, config.n_recon, config.seed)
    real = [i for i in idx if val.kinds[i] == "real"] or list(idx)
    distances = []
    with Progress(len(real), "eval: variations at strength 0") as bar:
        for i in real:
            wave = val.waves[i].float()
            (kick,) = vary_init(pipe, wave, strength=0.0, n=1, seed=config.seed)
            out = torch.from_numpy(np.asarray(kick.wave, dtype=np.float32))
            distances += metrics.wave_log_mel_distance_db(
                out[None], postprocess(wave[None])
            ).tolist()
            bar.update(1)
    arr = np.array(distances)
    return {"n": len(real), "mean": _mean(arr), "ci95": _ci95(arr),
            "median": float(np.median(arr)), "per_clip": distances}  # fmt: skip
