"""``--plot``: a PNG of the waveform and the log-mel spectrogram beside each WAV (eval extra)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from kickgen.audio import HOP_LENGTH, SAMPLE_RATE, log_mel
from kickgen.producer.engine import ProducerError


def plot_kick(wave: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Write ``path`` (PNG): waveform over time (s) above the log-mel (128 bands × frames).

    ``wave`` is float32 ``(L,)`` at 44.1 kHz. Needs matplotlib (``pip install kickgen[eval]``).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ProducerError("--plot needs matplotlib: pip install 'kickgen[eval]'") from exc
    path = Path(path)
    x = np.asarray(wave, dtype=np.float32).reshape(-1)
    mel = log_mel(torch.from_numpy(x)).numpy()  # (128, 1 + L // 512)
    fig, (ax_w, ax_m) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, constrained_layout=True)
    t = np.arange(x.size) / SAMPLE_RATE
    ax_w.plot(t, x, linewidth=0.6, color="black")
    ax_w.set_ylabel("amplitude")
    ax_w.set_ylim(-1.0, 1.0)
    ax_w.set_title(title or path.stem, fontsize=9)
    frames = mel.shape[1] * HOP_LENGTH / SAMPLE_RATE
    image = ax_m.imshow(
        mel, origin="lower", aspect="auto", extent=(0.0, frames, 0, mel.shape[0]), cmap="magma"
    )
    ax_m.set_ylabel("mel band")
    ax_m.set_xlabel("time (s)")
    fig.colorbar(image, ax=ax_m, label="log power")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
