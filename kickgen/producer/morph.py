"""Morphs: a numbered series of kicks that moves from A to B.

- **two seeds** (same prompt): the starting noise is the spherical interpolation of the two
  seeds' noises, so frame 0 is the plain generation of seed A and the last frame that of seed B;
- **two prompts** (same seed): the same starting noise, conditioned on the linear mix of the two
  prompts' text vectors; the endpoints are the plain generations of prompt A and prompt B;
- **two audio files**: the VAE latents of both kicks are interpolated spherically and decoded
  (``strength=0``, the default), or, with ``strength > 0``, noised and re-denoised with the prompt
  like a variation (one seed for all frames, so the series stays smooth).

    from kickgen.producer import morph
    frames = morph(pipe, 1, 2, frames=8, prompt="808")          # seeds
    frames = morph(pipe, "deep 808", "punchy 909", seed=5)      # prompts
    frames = morph(pipe, "a.wav", "b.wav", frames=8)             # audio files

Frame k of F sits at t = k / (F − 1).

:func:`morph_kicks` morphs between two finished kicks (the server's crate): two plain
generations move seed and prompt at once (the noises slerped, the text vectors mixed), so the
endpoints are the two kicks' own rows; any other pair (a variation, a morph frame) is an audio
morph of the two waveforms, held in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from kickgen.audio import SAMPLE_RATE
from kickgen.producer.engine import ProducerError, Row, Settings, load_init_audio, memory_name
from kickgen.producer.hygiene import HygieneConfig
from kickgen.producer.kicks import DEFAULT_BATCH, Kick, render_kicks, resolve_seed, warn_unknown

AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg")
KINDS = ("seed", "prompt", "audio")


def endpoint_kind(a: object, b: object, kind: str | None = None) -> str:
    """``"seed"``, ``"prompt"`` or ``"audio"`` for two endpoints as given on the command line.

    Two whole numbers are seeds, two existing files (or names ending in an audio suffix) are
    audio, anything else is two prompts; a mix raises :class:`ProducerError`. ``kind`` forces
    the reading (``"prompt"`` for prompts such as "808" and "909", which look like seeds).
    """
    if kind is not None:
        if kind not in KINDS:
            raise ProducerError(f"kind={kind!r}: use one of {', '.join(KINDS)}")
        if kind == "seed" and not all(str(x).strip().isdigit() for x in (a, b)):
            raise ProducerError(f"seed morph needs two whole numbers, got {a!r} and {b!r}")
        return kind

    def kind(x: object) -> str:
        if isinstance(x, int) and not isinstance(x, bool):
            return "seed"
        if isinstance(x, Path):
            return "audio"
        s = str(x)
        if s.strip().isdigit():
            return "seed"
        if Path(s).is_file() or s.lower().endswith(AUDIO_SUFFIXES):
            return "audio"
        return "prompt"

    ka, kb = kind(a), kind(b)
    if ka != kb:
        raise ProducerError(
            f"cannot morph a {ka} ({a!r}) into a {kb} ({b!r}): give two seeds, two prompts or two audio files"
        )
    return ka


def morph_rows(
    a: object, b: object, frames: int, prompt: str = "", seed: int = 0, kind: str | None = None
) -> tuple[str, list[Row]]:
    """The kind of morph and its rows (frame k at t = k / (frames − 1))."""
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 2:
        raise ProducerError(f"frames={frames!r}: a morph needs at least 2 frames (both endpoints)")
    kind = endpoint_kind(a, b, kind)
    ts = [k / (frames - 1) for k in range(frames)]
    if kind == "seed":
        sa, sb = int(str(a).strip()), int(str(b).strip())
        for s in (sa, sb):
            resolve_seed(s, 1)
        return kind, [Row(seed=sa, prompt=prompt, seed_b=sb, t=t) for t in ts]
    if kind == "prompt":
        return kind, [Row(seed=seed, prompt=str(a), prompt_b=str(b), t=t) for t in ts]
    fa, fb = (str(Path(str(x)).resolve()) for x in (a, b))
    for f in (fa, fb):
        load_init_audio(f)  # a missing or unreadable file fails here, before any sampling
    return kind, [Row(seed=seed, prompt=prompt, init=fa, init_b=fb, t=t) for t in ts]


def morph(
    pipe,
    a: object,
    b: object,
    frames: int = 8,
    prompt: str = "",
    seed: int | None = None,
    cfg_scale: float = 3.0,
    steps: int = 50,
    sampler: str = "ddim",
    strength: float = 0.0,
    hygiene: HygieneConfig | None = None,
    batch_size: int = DEFAULT_BATCH,
    callback: Callable[[int, int], None] | None = None,
    kind: str | None = None,
) -> list[Kick]:
    """``frames`` kicks from A to B (see the module docstring). ``seed`` is the shared seed of
    prompt and audio morphs (random when None); ``strength`` applies to audio morphs only;
    ``kind`` forces how A and B are read (see :func:`endpoint_kind`)."""
    kind = endpoint_kind(a, b, kind)
    seed = resolve_seed(seed, 1) if kind != "seed" else 0
    kind, rows = morph_rows(a, b, frames, prompt, seed, kind)
    if kind != "audio" and strength not in (0.0, 1.0):
        raise ProducerError(
            f"strength={strength} applies to audio morphs only: morph two audio files"
        )
    settings = Settings(
        float(cfg_scale), steps, sampler, float(strength) if kind == "audio" else 1.0
    )
    settings.check()
    warn_unknown(pipe, *([str(a), str(b)] if kind == "prompt" else [prompt]))
    if kind != "audio":
        rows = with_endpoint_draws(pipe, rows, settings)
    return render_kicks(pipe, rows, settings, hygiene, 1, batch_size, callback)


def with_endpoint_draws(pipe, rows: list[Row], settings: Settings) -> list[Row]:
    """A seed or prompt morph's rows starting from the noises its two endpoints render from as
    plain kicks (:meth:`~kickgen.pipeline.KickPipeline.hit_draws`, each alone), so the first and
    last frames are those plain kicks even where the hit check drew one of them again."""
    r = rows[0]
    seed_b = r.seed if r.seed_b is None else r.seed_b
    prompt_b = r.prompt if r.prompt_b is None else r.prompt_b
    ends = [Row(seed=r.seed, prompt=r.prompt), Row(seed=seed_b, prompt=prompt_b)]
    da, db = (pipe.hit_draws([e], settings.cfg_scale, settings.steps, settings.sampler, settings.redraws)[0] for e in ends)  # fmt: skip
    if r.seed_b is None and da == db:
        return [replace(row, draw=da) for row in rows]
    return [replace(row, draw=da, seed_b=seed_b, draw_b=db) for row in rows]


def plain_row(kick: Kick) -> Row | None:
    """The row of a kick made by a plain generation (one seed, one prompt, no init), else None."""
    row = Row(**kick.recipe["rows"][kick.recipe["index"]])  # type: ignore[index, arg-type]
    plain = row.init is None and row.seed_b is None and row.prompt_b is None
    return row if plain and kick.recipe["settings"]["strength"] == 1.0 else None  # type: ignore[index]


def morph_kicks(
    pipe,
    a: Kick,
    b: Kick,
    frames: int = 8,
    cfg_scale: float = 3.0,
    steps: int = 50,
    sampler: str = "ddim",
    hygiene: HygieneConfig | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> list[Kick]:
    """``frames`` kicks from finished kick ``a`` to ``b`` (see the module docstring); returns
    them with their recipes (an audio morph's recipe names the two kicks ``memory:…``)."""
    from kickgen.producer.variations import init_from_samples

    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 2:
        raise ProducerError(f"frames={frames!r}: a morph needs at least 2 frames (both endpoints)")
    ts = [k / (frames - 1) for k in range(frames)]
    ra, rb = plain_row(a), plain_row(b)
    if ra is not None and rb is not None:
        seed_b = None if rb.seed == ra.seed else rb.seed
        prompt_b = None if rb.prompt == ra.prompt else rb.prompt
        rows = [
            Row(seed=ra.seed, prompt=ra.prompt, seed_b=seed_b, prompt_b=prompt_b, t=t) for t in ts
        ]
        settings = Settings(float(cfg_scale), steps, sampler, 1.0)
        rows = with_endpoint_draws(pipe, rows, settings)
        return render_kicks(pipe, rows, settings, hygiene, 1, batch_size)
    audio: dict[str, torch.Tensor] = {}
    for kick in (a, b):
        wave = init_from_samples(kick.wave, SAMPLE_RATE)
        audio[memory_name(wave)] = wave
    na, nb = list(audio) if len(audio) == 2 else (next(iter(audio)),) * 2
    rows = [Row(seed=a.seed, init=na, init_b=nb, t=t) for t in ts]
    settings = Settings(float(cfg_scale), steps, sampler, 0.0)
    return render_kicks(pipe, rows, settings, hygiene, 1, batch_size, audio=audio)
