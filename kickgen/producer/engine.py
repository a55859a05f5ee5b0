"""The producer features' door to the pipeline: rows of kick descriptions → raw waveforms.

Every producer feature (variations, morphs, best-of, packs, regenerate) describes each kick it
wants as a :class:`~kickgen.rows.Row` (seed or seed mix, prompt or prompt mix, optional init
kick), plain data that JSON can hold, and :func:`render_rows` hands a batch of them to
:meth:`KickPipeline.render <kickgen.pipeline.KickPipeline.render>`, the one place that runs the
sampler, the VAE decoder and the vocoder. What this module adds: the batch's shared
:class:`Settings`, reading the init audio files, and file hashes for recipes.

An init kick is an audio file, or a waveform held in memory only (a server's upload): its name
is then ``memory:<16 hex digits of the SHA-256 of its float32 samples>`` (:func:`memory_name`),
and whoever renders it passes the waveform in ``audio``; nothing is written to disk.
Running the same rows in the same batch again gives the same bits on the same device type,
which is what recall stores.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from kickgen.audio import SILENT_PEAK, AudioError, load_audio
from kickgen.errors import PipelineError
from kickgen.pipeline import MAX_CFG_SCALE, MAX_REDRAWS, REDRAWS
from kickgen.rows import Rendered, Row, seed_noise, slerp, start_index

# Bad generation input is one kind of error whichever door it came through.
ProducerError = PipelineError


@dataclass(frozen=True)
class Settings:
    """What all rows of a batch share."""

    cfg_scale: float = 3.0
    steps: int = 50  # sampler steps of a full generation
    sampler: str = "ddim"
    strength: float = 1.0  # rows with an init kick: 0 keeps it, 1 ignores it
    redraws: int = REDRAWS  # the hit check's other noises per plain kick (0: off)

    def check(self) -> None:
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ProducerError(
                f"steps={self.steps!r}: use at least 1 sampler step (50 is the default)"
            )
        if not isinstance(self.cfg_scale, (int, float)) or not 0 <= self.cfg_scale <= MAX_CFG_SCALE:
            raise ProducerError(
                f"cfg_scale={self.cfg_scale!r}: use 0 to {MAX_CFG_SCALE:g} (3.0 is the default)"
            )
        if not isinstance(self.redraws, int) or not 0 <= self.redraws <= MAX_REDRAWS:
            raise ProducerError(f"redraws={self.redraws!r}: use 0 (off) to {MAX_REDRAWS}")
        if not 0.0 <= self.strength <= 1.0:
            raise ProducerError(
                f"strength={self.strength!r}: use a value from 0 (keep the kick) to 1 (ignore it)"
            )


# --------------------------------------------------------------------------- parts


def file_sha256(path: str | Path, length: int = 16) -> str:
    """First ``length`` hex digits of a file's SHA-256 (identifies init audio and checkpoints)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


MEMORY_PREFIX = "memory:"


def memory_name(wave: torch.Tensor) -> str:
    """The init-kick name of a preprocessed waveform ``(88200,)`` held in memory (see the module docstring)."""
    data = wave.detach().cpu().float().contiguous().numpy().tobytes()
    return MEMORY_PREFIX + hashlib.sha256(data).hexdigest()[:16]


def is_memory_name(name: object) -> bool:
    return isinstance(name, str) and name.startswith(MEMORY_PREFIX)


def init_sha256(name: str) -> str | None:
    """SHA-256 prefix of an init kick for its recipe: the file's, or the one a memory name holds
    (None for a file that is not there)."""
    if is_memory_name(name):
        return name[len(MEMORY_PREFIX) :]
    return file_sha256(name) if Path(name).is_file() else None


def encode_audio(pipe, wave: torch.Tensor) -> torch.Tensor:
    """VAE latents ``(B, latent_dim, 8, 11)`` of waveforms ``(B, 88200)`` (:meth:`KickPipeline.encode_audio`)."""
    return pipe.encode_audio(wave)


def load_init_audio(path: str | Path) -> torch.Tensor:
    """An init kick as the model sees it: mono, 44.1 kHz, 2 s, -1 dBFS peak, 0.2 s fade ``(88200,)``."""
    path = Path(path)
    if not path.is_file():
        raise ProducerError(f"init audio {path} not found: pass an existing WAV/FLAC/AIFF file")
    try:
        wave = load_audio(path)
    except AudioError as exc:
        raise ProducerError(f"{exc}; pass a readable audio file") from exc
    if float(wave.abs().max()) <= SILENT_PEAK:
        raise ProducerError(
            f"init audio {path} is silent (peak at or below -120 dBFS): pass a kick that makes a sound"
        )
    return wave


# --------------------------------------------------------------------------- rendering


def render_rows(
    pipe,
    rows: Sequence[Row],
    settings: Settings,
    callback: Callable[[int, int], None] | None = None,
    audio: dict[str, torch.Tensor] | None = None,
) -> Rendered:
    """Run one batch of rows (one sampler call) and return the raw audio. See the module docstring.

    ``audio`` maps init file names to already loaded waveforms ``(88200,)`` (filled as files are
    read). ``callback(i, n)`` runs after each sampler step.
    """
    settings.check()
    audio = {} if audio is None else audio
    for r in rows:
        for name in (r.init, r.init_b):
            if name is not None and name not in audio:
                if is_memory_name(name):
                    raise ProducerError(
                        f"init kick {name} was held in memory only and is gone: upload the kick again"
                    )
                audio[name] = load_init_audio(name)
    return pipe.render(rows, settings.cfg_scale, settings.steps, settings.sampler, settings.strength,
                       init_audio=audio, callback=callback, redraws=settings.redraws)  # fmt: skip


__all__ = [
    "ProducerError",
    "Rendered",
    "Row",
    "Settings",
    "encode_audio",
    "file_sha256",
    "init_sha256",
    "is_memory_name",
    "load_init_audio",
    "memory_name",
    "render_rows",
    "seed_noise",
    "slerp",
    "start_index",
]
