"""Variations of an existing kick (audio-to-audio).

The init kick is loaded as the model sees its training clips (mono, 44.1 kHz, 2 s, -1 dBFS peak,
0.2 s fade), encoded by the VAE, noised to the sampler step that ``strength`` selects and
denoised with the prompt from there (:func:`kickgen.producer.engine.render_rows`):

- ``strength=0`` runs no sampler step: the output is the init kick through the VAE and the
  vocoder (tests/test_producer.py bounds the log-mel distance to the input);
- ``strength=1`` starts from pure noise and ignores the kick: the same kick as a plain generation
  with that seed;
- in between, ``round(strength · steps)`` of the ``steps`` sampler steps run, starting at the
  matching noise level.

    from kickgen.producer import vary
    kicks = vary(pipe, "my_kick.wav", prompt="punchy", strength=0.4, n=4, seed=1)

For a server, :func:`init_from_bytes` decodes and checks an upload in memory and
:func:`vary_init` varies it without writing anything to disk.
"""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from kickgen.audio import (
    MAX_FILE_SECONDS,
    MAX_SAMPLE,
    SILENT_PEAK,
    AudioError,
    check_audio_header,
    preprocess,
    read_audio,
    to_mono,
)
from kickgen.producer.engine import ProducerError, memory_name
from kickgen.producer.kicks import Kick, generate_kicks


def vary(
    pipe, init_audio: str | Path, prompt: str = "", strength: float = 0.5, **options: Any
) -> list[Kick]:
    """Variations of the kick in the audio file ``init_audio`` (see the module docstring).

    ``options`` are :func:`~kickgen.producer.kicks.generate_kicks`'s (``n``, ``seed``,
    ``cfg_scale``, ``steps``, ``sampler``, ``hygiene``, ``best_of``, ``batch_size``,
    ``callback``, ``audio``). Kick i uses seed ``seed + i``; each
    :class:`~kickgen.producer.kicks.Kick` carries its recipe (with the init file's path and
    SHA-256, so ``kickgen regenerate`` can check it). ``init_audio`` may be a ``memory:`` name
    whose waveform ``audio`` holds (:func:`vary_init`).
    """
    if init_audio is None:
        raise ProducerError("vary needs an init kick: pass the path of an audio file")
    return generate_kicks(pipe, prompt, init_audio=init_audio, strength=strength, **options)


def vary_init(pipe, wave: torch.Tensor, **kwargs) -> list[Kick]:
    """Variations of a kick held in memory as a preprocessed waveform ``(88200,)`` (what
    :func:`init_from_samples` and :func:`init_from_bytes` give): nothing is written to disk; the
    recipes name it ``memory:<sha256>`` (:func:`kickgen.producer.engine.memory_name`).
    ``kwargs`` are :func:`vary`'s (``prompt``, ``strength``, ``n``, ``seed``, ...)."""
    name = memory_name(wave)
    return vary(pipe, name, audio={name: wave}, **kwargs)


def init_from_samples(wave: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Samples ``(L,)`` or ``(L, channels)`` at ``sample_rate`` Hz → the init kick as the model sees
    it (:func:`kickgen.audio.preprocess`: mono, 44.1 kHz, 2 s, -1 dBFS peak, 0.2 s fade) ``(88200,)``."""
    x = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    x = np.asarray(x, dtype=np.float64)  # channels mixed without overflow, then float32
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1 or x.size == 0:
        raise ProducerError(
            f"init audio has shape {x.shape}: pass mono samples (L,) or (L, channels)"
        )
    if not np.isfinite(x).all():
        raise ProducerError("init audio holds NaN or infinite samples: pass finite samples")
    if np.abs(x).max() > MAX_SAMPLE:
        raise ProducerError(
            f"init audio samples reach {np.abs(x).max():.3g}, out of the range audio holds "
            f"(at most {MAX_SAMPLE:g}, 1 being full scale)"
        )
    x = x.astype(np.float32)
    if not isinstance(sample_rate, int) or isinstance(sample_rate, bool):
        raise ProducerError(
            f"sample_rate={sample_rate!r}: pass the audio's rate in Hz as a whole number"
        )
    try:  # the loaders' bounds on rate and length, before anything is resampled
        check_audio_header("init audio", sample_rate, x.size, 1)
    except AudioError as exc:
        raise ProducerError(str(exc)) from exc
    if np.abs(x).max() <= SILENT_PEAK:
        raise ProducerError(
            "init audio is silent (peak at or below -120 dBFS): pass a kick that makes a sound"
        )
    return torch.from_numpy(preprocess(x, sample_rate))


UPLOAD_CHANNELS = 2  # an upload is a mono or stereo kick: bounds what decoding it allocates


def decode_upload(
    payload: bytes, name: str = "the uploaded file", max_seconds: float = MAX_FILE_SECONDS
) -> tuple[np.ndarray, int]:
    """The bytes of an audio file (WAV, FLAC, AIFF, OGG) decoded in memory: mono float32
    ``(L,)`` and its sample rate. Refuses, in one :class:`ProducerError` line naming ``name``: no
    bytes, a WAV shorter than its header says (truncated), undecodable bytes, a header out of the
    loaders' bounds, longer than ``max_seconds`` or with more than two channels."""
    if not payload:
        raise ProducerError(f"{name} is empty: send a WAV, FLAC, AIFF or OGG kick")
    missing = wav_truncation(payload)
    if missing:
        raise ProducerError(
            f"{name} is a truncated WAV ({missing} bytes of it are missing): send the whole file"
        )
    try:  # the loaders' guard: sample rate, length and channels are checked before decoding
        data, sample_rate = read_audio(io.BytesIO(payload), name, max_seconds, UPLOAD_CHANNELS)
    except AudioError as exc:
        raise ProducerError(f"{exc}: send a WAV, FLAC, AIFF or OGG kick") from exc
    return to_mono(data), int(sample_rate)


def init_from_bytes(
    payload: bytes, name: str = "the uploaded file", max_seconds: float = MAX_FILE_SECONDS
) -> torch.Tensor:
    """The bytes of an audio file → the init kick ``(88200,)`` (:func:`decode_upload`, then
    :func:`init_from_samples`, which also refuses silence)."""
    return init_from_samples(*decode_upload(payload, name, max_seconds))


STREAMING_SIZE = 0xFFFFFFFF  # a size field a streaming writer could not fill in: "to the end"


def wav_truncation(payload: bytes) -> int:
    """Bytes missing from a RIFF/WAVE file: what its RIFF header or its ``data`` chunk declare
    beyond the bytes present (0 when complete or not a WAV). A size of ``0xFFFFFFFF`` is a
    streaming writer's (ffmpeg to a pipe): the chunk runs to the end of the file, as libsndfile,
    and so the command line, reads it."""
    if len(payload) < 12 or payload[:4] != b"RIFF" or payload[8:12] != b"WAVE":
        return 0
    riff_size = struct.unpack("<I", payload[4:8])[0]
    if riff_size != STREAMING_SIZE and riff_size + 8 > len(payload):
        return riff_size + 8 - len(payload)
    pos = 12
    while pos + 8 <= len(payload):
        cid, size = payload[pos : pos + 4], struct.unpack("<I", payload[pos + 4 : pos + 8])[0]
        if cid == b"data":
            return 0 if size == STREAMING_SIZE else max(pos + 8 + size - len(payload), 0)
        pos += 8 + size + (size & 1)
    return 0


def vary_waveform(
    pipe,
    wave: np.ndarray | torch.Tensor,
    sample_rate: int,
    prompt: str = "",
    strength: float = 0.5,
    *,
    keep_dir: str | Path | None = None,
    **options: Any,
) -> list[Kick]:
    """Variations of a kick given as samples ``(L,)`` or ``(L, channels)`` at ``sample_rate`` Hz.

    Meant for a server: by default the kick stays in memory (:func:`vary_init`). With
    ``keep_dir`` the samples are written there as a float WAV named by their SHA-256 and varied
    like a file, so the recipes stay regenerable from the command line. ``options`` are
    :func:`vary`'s. Returns the kicks; their ``.wave`` is float32 ``(L,)`` at 44.1 kHz, peak 0.95
    unless ``hygiene`` says otherwise.
    """
    init = init_from_samples(wave, sample_rate)
    kwargs = dict(prompt=prompt, strength=strength, **options)
    if keep_dir is None:
        return vary_init(pipe, init, **kwargs)
    x = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    x = np.asarray(x, dtype=np.float32)
    x = x.mean(axis=1) if x.ndim == 2 else x
    digest = hashlib.sha256(x.tobytes() + str(sample_rate).encode()).hexdigest()[:16]
    directory = Path(keep_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"init_{digest}.wav"
    sf.write(str(path), x, sample_rate, subtype="FLOAT", format="WAV")  # read back like any file
    return vary(pipe, path, **kwargs)


def vary_audio_bytes(pipe, payload: bytes, **kwargs) -> list[Kick]:
    """Variations of a kick uploaded as the bytes of an audio file (WAV, FLAC, AIFF, OGG), decoded
    and varied in memory (:func:`init_from_bytes`, :func:`vary_init`); ``kwargs`` are :func:`vary`'s.
    Raises :class:`ProducerError` with one line when the bytes are not readable audio.
    """
    return vary_init(pipe, init_from_bytes(payload), **kwargs)
