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

For a server, :func:`vary_waveform` takes the uploaded audio as an array instead of a file.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from kickgen.audio import AudioError, check_audio_header
from kickgen.producer.engine import ProducerError
from kickgen.producer.kicks import Kick, generate_kicks


def vary(
    pipe, init_audio: str | Path, prompt: str = "", strength: float = 0.5, **options: Any
) -> list[Kick]:
    """``n`` variations of the kick in the audio file ``init_audio`` (see the module docstring):
    :func:`~kickgen.producer.kicks.generate_kicks` from that kick, ``options`` being its own
    (``n``, ``seed``, ``cfg_scale``, ``steps``, ``sampler``, ``hygiene``, ``best_of``,
    ``batch_size``, ``callback``).

    Kick i uses seed ``seed + i``; each :class:`~kickgen.producer.kicks.Kick` carries its recipe
    (with the init file's path and SHA-256, so ``kickgen regenerate`` can check it).
    """
    if init_audio is None:
        raise ProducerError("vary needs an init kick: pass the path of an audio file")
    return generate_kicks(pipe, prompt, init_audio=init_audio, strength=strength, **options)


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

    Meant for the server: the samples are written as a float WAV named by their SHA-256 into
    ``keep_dir`` (a temporary directory, removed afterwards, when None), then varied
    like a file by :func:`vary` with ``options`` (``n``, ``seed``, ``hygiene``, ...). Pass a
    lasting ``keep_dir`` if the recipes should stay regenerable. Returns the kicks; their
    ``.wave`` is float32 ``(L,)`` at 44.1 kHz, peak 0.95 unless ``hygiene`` says otherwise.
    """
    x = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1 or x.size == 0:
        raise ProducerError(
            f"init audio has shape {x.shape}: pass mono samples (L,) or (L, channels)"
        )
    if not np.isfinite(x).all():
        raise ProducerError("init audio holds NaN or infinite samples: pass finite samples")
    if not isinstance(sample_rate, int) or isinstance(sample_rate, bool):
        raise ProducerError(
            f"sample_rate={sample_rate!r}: pass the audio's rate in Hz as a whole number"
        )
    try:  # the loaders' bounds on rate and length, before anything is resampled
        check_audio_header("init audio", sample_rate, x.size, 1)
    except AudioError as exc:
        raise ProducerError(str(exc)) from exc
    digest = hashlib.sha256(x.tobytes() + str(sample_rate).encode()).hexdigest()[:16]
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(keep_dir) if keep_dir is not None else Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"init_{digest}.wav"
        sf.write(
            str(path), x, sample_rate, subtype="FLOAT", format="WAV"
        )  # read back like any file
        return vary(pipe, path, prompt, strength, **options)


def vary_audio_bytes(pipe, payload: bytes, **kwargs) -> list[Kick]:
    """Variations of a kick uploaded as the bytes of an audio file (WAV, FLAC, AIFF, OGG).

    For a server's upload endpoint: decodes ``payload`` with soundfile and calls
    :func:`vary_waveform` with ``kwargs`` (``prompt``, ``strength``, ``n``, ``seed``, ...).
    Raises :class:`ProducerError` with one line when the bytes are not readable audio.
    """
    import io

    from kickgen.audio import read_audio

    if not payload:
        raise ProducerError("the uploaded file is empty: send a WAV, FLAC, AIFF or OGG kick")
    try:  # the loaders' guard: sample rate, length and channels are checked before decoding
        data, sample_rate = read_audio(io.BytesIO(payload), "the uploaded file")
    except AudioError as exc:
        raise ProducerError(f"{exc}: send a WAV, FLAC, AIFF or OGG kick") from exc
    if data.size == 0:
        raise ProducerError("the uploaded file holds no samples: send a kick")
    return vary_waveform(pipe, data, int(sample_rate), **kwargs)
