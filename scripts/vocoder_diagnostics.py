"""Where a vocoder's multi-resolution STFT distance comes from, and what bounds it.

On the validation clips ``kickgen eval`` reconstructs (every real recording, then augmented ones),
for the vocoder (as shipped, with its mel refinement, and the raw generator without it) and
kickgen's Griffin-Lim on the true mels, prints:

- the eval's MR-STFT distance (dB, floored 80 dB below the peak) at 80 / 60 / 40 dB floors;
- per window (256 / 1024 / 4096) and band: mean |error|, mean signed error (+ = too loud) and the
  band's share of the active bins; and the error over the first 0.25 s against the rest;
- frame periodicity: correlation of the content above 2 kHz with itself 512 samples (one mel
  frame) later, over 23-209 ms (the attack and early decay);
- reference points: each recording's own STFT magnitudes (n_fft 2048) with its true phase below
  a cut-off and random phase above it, and Griffin-Lim from those true magnitudes (which hold
  more than the 128-band mel);
- where mel refinement levels off: the raw generator's output and Griffin-Lim's, each refined
  onto the true mel for many iterations (:func:`kickgen.griffin_lim.refine_to_mel`). Both end as
  waveforms whose mel matches the target; what they still miss is what the mel leaves open.

    python scripts/vocoder_diagnostics.py --corpus corpus --vocoder checkpoints/vocoder_epoch_50.pt
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import scipy.signal
import torch

from kickgen import griffin_lim
from kickgen.audio import HOP_LENGTH, N_FFT, SAMPLE_RATE, log_mel
from kickgen.checkpoints import load_vocoder
from kickgen.evaluation import metrics, quality
from kickgen.evaluation.reconstruction import recon_indices

BANDS_HZ = ((0, 200), (200, 1000), (1000, 3000), (3000, 8000), (8000, 22050))
HEAD_S = 0.25  # the kick itself; after it, the decay and the tail
REFINE_COUNTS = (64, 256, 1024)  # refinement iterations; the shipped count is the "vocoder" row


def band_errors(
    pred: torch.Tensor, target: torch.Tensor, n_fft: int, floor_db: float = 80.0
) -> str:
    """One line: per band |error| / signed error / share of active bins, then head and rest."""
    p, t = metrics.stft_db(pred, n_fft), metrics.stft_db(target, n_fft)  # (B, F, T)
    floor = t.amax(dim=(1, 2), keepdim=True) - floor_db
    p, t = torch.maximum(p, floor), torch.maximum(t, floor)
    active = (p > floor) | (t > floor)
    err = p - t
    freqs = torch.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE)[None, :, None]
    cells = []
    for lo, hi in BANDS_HZ:
        m = active & (freqs >= lo) & (freqs < hi)
        n = m.sum().clamp(min=1)
        cells.append(f"{lo}-{hi} Hz {float((err.abs() * m).sum() / n):.1f}/"
                     f"{float((err * m).sum() / n):+.1f}/{float(m.sum() / active.sum()):.2f}")  # fmt: skip
    head = active.clone()
    head[..., int(HEAD_S * SAMPLE_RATE / (n_fft // 4)) :] = False
    rest = active & ~head
    cells.append(f"first {HEAD_S} s {float((err.abs() * head).sum() / head.sum()):.1f} "
                 f"({float(head.sum() / active.sum()):.2f} of bins), rest "
                 f"{float((err.abs() * rest).sum() / rest.sum().clamp(min=1)):.1f}")  # fmt: skip
    return "; ".join(cells)


def frame_correlation(waves: torch.Tensor, lag: int = 512, cutoff_hz: float = 2000.0) -> float:
    """Median over clips of the correlation of the content above ``cutoff_hz`` with itself ``lag``
    samples later, over samples 1,024-9,216 (the attack and early decay)."""
    sos = scipy.signal.butter(4, cutoff_hz, "hp", fs=SAMPLE_RATE, output="sos")
    values = []
    for wave in waves.double().numpy():
        x = scipy.signal.sosfilt(sos, wave)[1024 : 1024 + 8192]
        a, b = x[:-lag], x[lag:]
        values.append(float(a @ b / math.sqrt((a @ a) * (b @ b) + 1e-30)))
    return float(np.median(values))


def phase_reference_points(waves: torch.Tensor, seed: int = 0) -> dict[str, float]:
    """MR-STFT distance of reconstructions from each clip's own n_fft 2048 magnitudes."""
    window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64)
    spec = torch.stft(
        waves.double(), N_FFT, HOP_LENGTH, N_FFT, window, center=True, return_complex=True
    )

    def score(w: torch.Tensor) -> float:
        return float(metrics.mrstft_distance_db(w.float(), waves.float()).mean())

    g = torch.Generator().manual_seed(seed)
    random_phase = torch.rand(spec.shape, generator=g, dtype=torch.float64) * 2 * math.pi
    freqs = torch.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE)[None, :, None]
    out = {}
    for cut in (1000, 3000, 8000):
        mixed = torch.where(freqs >= cut, torch.polar(spec.abs(), random_phase), spec)
        rebuilt = torch.istft(
            mixed, N_FFT, HOP_LENGTH, N_FFT, window, center=True, length=waves.shape[-1]
        )
        out[f"true phase below {cut} Hz, random above"] = score(rebuilt)
    classic = griffin_lim.griffin_lim(spec.abs().float(), n_iter=100, momentum=0.0, generator=g)
    out["Griffin-Lim (classic) from the true magnitudes, 100 it."] = score(classic)
    return out


def refinement_limits(
    raw: torch.Tensor, gl_out: torch.Tensor, mel: torch.Tensor, waves: torch.Tensor
) -> dict[str, float]:
    """MR-STFT distance after ``refine_to_mel`` for many iterations, from two starting points."""
    out = {}
    with torch.no_grad():
        longest = REFINE_COUNTS[-1]
        starts = (("raw generator", raw, REFINE_COUNTS), ("Griffin-Lim", gl_out, (longest,)))
        for name, start, counts in starts:
            for n_iter in counts:
                refined = griffin_lim.refine_to_mel(start, mel, n_iter)
                distance = metrics.mrstft_distance_db(refined, waves).mean()
                out[f"{name} + {n_iter} it."] = float(distance)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path("corpus"))
    parser.add_argument("--vocoder", type=Path, default=Path("checkpoints/vocoder_epoch_50.pt"))
    parser.add_argument("--clips", type=int, default=24, help="as kickgen eval's n_recon")
    parser.add_argument("--seed", type=int, default=0, help="clip selection")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    val = quality.load_eval_split(args.corpus, "val")
    wave = val.waves[recon_indices(val, args.clips, args.seed)].float()  # (N, 88200)
    mel = log_mel(wave)
    vocoder = load_vocoder(args.vocoder)
    with torch.no_grad():
        outputs = {
            "vocoder": vocoder(mel).squeeze(1)[:, : wave.shape[-1]]
        }  # with its mel refinement
        refine_iters, vocoder.refine_iters = vocoder.refine_iters, 0
        outputs["vocoder, raw generator"] = vocoder(mel).squeeze(1)[:, : wave.shape[-1]]
        vocoder.refine_iters = refine_iters
        outputs["Griffin-Lim"] = griffin_lim.log_mel_to_audio(mel)[:, : wave.shape[-1]]
    print(f"{len(wave)} validation clips, true mels")
    for floor in (80, 60, 40):
        cells = [f"{k} {float(metrics.mrstft_distance_db(v, wave, floor_db=floor).mean()):.2f}"
                 for k, v in outputs.items()]  # fmt: skip
        print(f"MR-STFT dB, floor {floor} dB: " + ", ".join(cells))
    for n_fft in metrics.MRSTFT_SIZES:
        for name, out in outputs.items():
            print(f"n_fft {n_fft} {name}: {band_errors(out, wave, n_fft)}")
    for name, w in (("recordings", wave), *outputs.items()):
        print(
            f"correlation above 2 kHz one frame (512 samples) apart, {name}: {frame_correlation(w):.3f}"
        )
    for name, value in phase_reference_points(wave).items():
        print(f"reference: {name}: {value:.2f} dB")
    limits = refinement_limits(outputs["vocoder, raw generator"], outputs["Griffin-Lim"], mel, wave)
    for name, value in limits.items():
        print(f"refined onto the true mel: {name}: {value:.2f} dB")


if __name__ == "__main__":
    main()
