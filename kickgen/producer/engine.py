"""The producer features' sampling core: one batch of *rows* → raw waveforms.

Every producer feature (variations, morphs, best-of, packs, regenerate) describes each kick it
wants as a :class:`Row`, plain data that JSON can hold:

- the starting noise: the seed's noise (drawn exactly as :class:`~kickgen.pipeline.KickPipeline`
  draws it), or a spherical interpolation between two seeds' noises (``seed_b``, ``t``);
- the conditioning: the prompt's text vector, or a linear mix of two prompts' (``prompt_b``, ``t``);
- an optional init kick: an audio file encoded by the VAE (or a spherical mix of two files'
  latents), noised to the timestep that ``strength`` selects and denoised from there.

:func:`render_rows` runs one batch of rows through the sampler, the VAE decoder and the vocoder,
and returns the vocoder output before any post-processing. Running the same rows in the same
batch again gives the same bits on the same device type, which is what recall stores.

The pipeline's parts (``unet``, ``text_encoder``, ``scheduler``, ``vae``, ``vocoder``) are used as
they are; the sampler is the pipeline's own (``kickgen.sampling``) started part-way down its
timestep list for variations.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from kickgen import griffin_lim
from kickgen.audio import NUM_SAMPLES, AudioError, load_audio, log_mel
from kickgen.errors import KickgenError
from kickgen.pipeline import MAX_CFG_SCALE
from kickgen.sampling import make_sampler

LATENT_HW = (8, 11)  # the VAE's latent grid for a 128 × 173 log-mel


class ProducerError(KickgenError):
    """A producer feature got a value it cannot use; the message names it and what to do."""


@dataclass(frozen=True)
class Row:
    """One kick to render; plain data (see the module docstring). ``t`` in [0, 1] mixes A → B."""

    seed: int  # noise seed (A)
    prompt: str = ""  # prompt (A)
    seed_b: int | None = None  # slerp the noise towards this seed's noise by t
    prompt_b: str | None = None  # mix the text vector towards this prompt's by t
    init: str | None = None  # init kick (audio file) for a variation
    init_b: str | None = None  # slerp the init latent towards this file's latent by t
    t: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """The fields that differ from the defaults (compact JSON)."""
        d = asdict(self)
        return {
            k: v for k, v in d.items() if k == "seed" or v != Row.__dataclass_fields__[k].default
        }

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Row:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ProducerError(
                f"row has unknown fields {sorted(unknown)}: written by a newer kickgen?"
            )
        return cls(**d)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Settings:
    """What all rows of a batch share."""

    cfg_scale: float = 3.0
    steps: int = 50  # sampler steps of a full generation
    sampler: str = "ddim"
    strength: float = 1.0  # rows with an init kick: 0 keeps it, 1 ignores it

    def check(self) -> None:
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 1:
            raise ProducerError(
                f"steps={self.steps!r}: use at least 1 sampler step (50 is the default)"
            )
        if not isinstance(self.cfg_scale, (int, float)) or not 0 <= self.cfg_scale <= MAX_CFG_SCALE:
            raise ProducerError(
                f"cfg_scale={self.cfg_scale!r}: use 0 to {MAX_CFG_SCALE:g} (3.0 is the default)"
            )
        if not 0.0 <= self.strength <= 1.0:
            raise ProducerError(
                f"strength={self.strength!r}: use a value from 0 (keep the kick) to 1 (ignore it)"
            )


# --------------------------------------------------------------------------- maths


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of two tensors of one shape, treated as flat vectors.

    ``t = 0`` returns ``a`` and ``t = 1`` returns ``b`` exactly; nearly parallel vectors fall back to
    a linear mix. Computed in float64, returned in ``a``'s dtype. Two independent Gaussian noises
    are almost orthogonal, so the mix keeps the norm a Gaussian sample of that size has.
    """
    if a.shape != b.shape:
        raise ProducerError(f"cannot interpolate shapes {tuple(a.shape)} and {tuple(b.shape)}")
    t = float(t)
    if t == 0.0:
        return a.clone()
    if t == 1.0:
        return b.clone()
    a64, b64 = a.double(), b.double()
    cos = (a64.flatten() @ b64.flatten()) / (a64.norm() * b64.norm()).clamp(min=1e-12)
    theta = math.acos(float(cos.clamp(-1.0, 1.0)))
    if theta < 1e-4:
        out = (1.0 - t) * a64 + t * b64
    else:
        out = (math.sin((1.0 - t) * theta) * a64 + math.sin(t * theta) * b64) / math.sin(theta)
    return out.to(a.dtype)


def seed_noise(seed: int, latent_dim: int) -> torch.Tensor:
    """The starting noise ``(latent_dim, 8, 11)`` of a seed, drawn on the CPU exactly as the
    pipeline draws kick i's noise (``torch.Generator().manual_seed(seed)``)."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn((latent_dim, *LATENT_HW), generator=g, dtype=torch.float32)


def file_sha256(path: str | Path, length: int = 16) -> str:
    """First ``length`` hex digits of a file's SHA-256 (identifies init audio and checkpoints)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:length]


# --------------------------------------------------------------------------- parts


def pipeline_lock(pipe) -> contextlib.AbstractContextManager:
    """The pipeline's generation lock (one generation at a time when a server shares it)."""
    lock = getattr(pipe, "_lock", None)
    return lock if lock is not None else contextlib.nullcontext()


@torch.inference_mode()
def encode_audio(pipe, wave: torch.Tensor) -> torch.Tensor:
    """VAE latents ``(B, latent_dim, 8, 11)`` of waveforms ``(B, 88200)`` (44.1 kHz, preprocessed)."""
    mel = log_mel(wave.float().to(pipe.device)).unsqueeze(1)  # (B, 1, 128, 173)
    return pipe.vae.encode(mel).float()


def load_init_audio(path: str | Path) -> torch.Tensor:
    """An init kick as the model sees it: mono, 44.1 kHz, 2 s, -1 dBFS peak, 0.2 s fade ``(88200,)``."""
    path = Path(path)
    if not path.is_file():
        raise ProducerError(f"init audio {path} not found: pass an existing WAV/FLAC/AIFF file")
    try:
        wave = load_audio(path)
    except AudioError as exc:
        raise ProducerError(f"{exc}; pass a readable audio file") from exc
    if float(wave.abs().max()) == 0.0:
        raise ProducerError(f"init audio {path} is silent: pass a kick that makes a sound")
    return wave


@torch.inference_mode()
def vocode_raw(pipe, mels: torch.Tensor) -> torch.Tensor:
    """Log-mels ``(B, 128, 173)`` → vocoder output trimmed to ``(B, 88200)``, not normalised or faded.

    Runs the vocoder exactly as :meth:`KickPipeline.vocode` does (one clip per call on the CPU),
    so a plain row's kick has the same bits as the pipeline's; tests compare them.
    """
    from kickgen.pipeline import VOCODER_CHUNK_CPU

    mels = mels.to(pipe.device)
    if pipe.vocoder is None:
        audio = griffin_lim.log_mel_to_audio(mels)  # (B, 88200)
    else:
        chunk = VOCODER_CHUNK_CPU if pipe.device.type == "cpu" else mels.shape[0]
        audio = torch.cat(
            [pipe.vocoder(part).squeeze(1) for part in mels.split(chunk)]
        )  # (B, T·512)
    audio = audio.float().cpu()
    if audio.shape[-1] >= NUM_SAMPLES:
        return audio[:, :NUM_SAMPLES]
    return torch.nn.functional.pad(audio, (0, NUM_SAMPLES - audio.shape[-1]))


def start_index(steps: int, strength: float) -> int:
    """Index in the sampler's timestep list where a variation of ``strength`` starts.

    ``round(strength · steps)`` steps are run: strength 1 runs all of them from pure noise,
    strength 0 none (the init latent is decoded as it is).
    """
    return steps - int(round(strength * steps))


# --------------------------------------------------------------------------- rendering


@dataclass
class Rendered:
    """One batch's output."""

    raw: torch.Tensor  # (B, 88200) float32 vocoder output, before fade and normalisation
    log_mels: torch.Tensor  # (B, 128, 173) decoded log-mels
    latents: torch.Tensor  # (B, latent_dim, 8, 11)


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
    if not rows:
        raise ProducerError("no rows to render: ask for at least 1 kick")
    audio = {} if audio is None else audio
    has_init = [r.init is not None for r in rows]
    if any(has_init) and not all(has_init):
        raise ProducerError("a batch mixes rows with and without an init kick: render them apart")
    if not any(has_init) and settings.strength != 1.0:
        raise ProducerError(
            f"strength={settings.strength} needs an init kick: pass --init-audio FILE"
        )
    dim = pipe.latent_dim
    noise = torch.stack(
        [
            seed_noise(r.seed, dim)
            if r.seed_b is None
            else slerp(seed_noise(r.seed, dim), seed_noise(r.seed_b, dim), r.t)
            for r in rows
        ]
    )  # (B, C, 8, 11) on the CPU
    with pipeline_lock(pipe), torch.inference_mode():
        cond, uncond = _conditioning(pipe, rows)
        x0 = _init_latents(pipe, rows, audio) if any(has_init) else None
        first = start_index(settings.steps, settings.strength) if x0 is not None else 0
        if x0 is not None and first == settings.steps:
            latents = x0  # strength 0: nothing to denoise
        else:
            sampler = make_sampler(settings.sampler, pipe.scheduler, settings.steps)
            sampler.timesteps = sampler.timesteps[first:]  # a variation starts part-way down
            x = noise.to(pipe.device)
            if x0 is not None and first > 0:
                t = torch.full(
                    (len(rows),), int(sampler.timesteps[0]), dtype=torch.long, device=pipe.device
                )
                x = pipe.scheduler.add_noise(x0, x, t)  # x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε
            latents = sampler.sample(
                pipe.unet,
                shape=tuple(x.shape),
                cond=cond,
                uncond=uncond,
                cfg_scale=settings.cfg_scale,
                device=pipe.device,
                noise=x,
                callback=callback,
            )  # (B, C, 8, 11)
        mels = pipe.vae.decode(latents).squeeze(1)  # (B, 128, 173)
        raw = vocode_raw(pipe, mels)
    return Rendered(raw, mels.float().cpu(), latents.float().cpu())


def _conditioning(pipe, rows: Sequence[Row]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cond (B, cond_dim), uncond (1, cond_dim))``; a prompt's vector is computed exactly as
    :meth:`KickPipeline.encode_prompt` computes it, so a plain row matches a plain generation."""
    cache: dict[str, torch.Tensor] = {}
    uncond = None

    def vector(prompt: str) -> torch.Tensor:
        nonlocal uncond
        if prompt not in cache:
            c, u = pipe.encode_prompt(pipe.parse_prompt(prompt).token_ids)
            cache[prompt] = c[0]
            uncond = u
        return cache[prompt]

    conds = []
    for r in rows:
        c = vector(r.prompt)
        if r.prompt_b is not None and r.t == 1.0:
            c = vector(r.prompt_b)  # the endpoint exactly
        elif r.prompt_b is not None and r.t != 0.0:
            c = (1.0 - r.t) * c + r.t * vector(r.prompt_b)
        conds.append(c)
    return torch.stack(conds), uncond


def _init_latents(pipe, rows: Sequence[Row], audio: dict[str, torch.Tensor]) -> torch.Tensor:
    """Encoded init kicks ``(B, C, 8, 11)`` (one VAE pass per distinct file)."""
    names: list[str] = []
    for r in rows:
        for name in (r.init, r.init_b):
            if name is not None and name not in names:
                names.append(name)
    for name in names:
        if name not in audio:
            audio[name] = load_init_audio(name)
    z = encode_audio(pipe, torch.stack([audio[n] for n in names]))  # (F, C, 8, 11)
    latent = {n: z[i] for i, n in enumerate(names)}
    out = [
        latent[r.init] if r.init_b is None else slerp(latent[r.init], latent[r.init_b], r.t)  # type: ignore[index]
        for r in rows
    ]
    return torch.stack(out)
