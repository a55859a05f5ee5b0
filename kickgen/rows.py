"""What one kick to generate is, as plain data: a :class:`Row` (seed or seed mix, prompt or prompt
mix, optional init kick), its starting noise (:func:`row_noise`), where a variation starts
(:func:`start_index`), and a rendered batch (:class:`Rendered`). Recipes store rows;
:meth:`kickgen.pipeline.KickPipeline.render` runs them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from kickgen.errors import PipelineError

LATENT_HW = (8, 11)  # the VAE's latent grid for a 128 × 173 log-mel


@dataclass(frozen=True)
class Row:
    """One kick to generate, as plain data that JSON can hold. ``t`` in [0, 1] mixes A → B.

    - the starting noise: the seed's (:func:`seed_noise`), or the spherical interpolation of two
      seeds' noises (``seed_b``, ``t``);
    - the conditioning: the prompt's text vector, or a linear mix of two prompts' (``prompt_b``, ``t``);
    - an optional init kick: an audio file's VAE latent (or the spherical mix of two files'
      latents), noised to the timestep that the batch's ``strength`` selects and denoised from there.
    """

    seed: int  # noise seed (A)
    prompt: str = ""  # prompt (A)
    seed_b: int | None = None  # slerp the noise towards this seed's noise by t
    prompt_b: str | None = None  # mix the text vector towards this prompt's by t
    init: str | None = None  # init kick (audio file) for a variation
    init_b: str | None = None  # slerp the init latent towards this file's latent by t
    t: float = 0.0
    draw: int | None = None  # which of the seed's noises (0: its own); None: the hit check picks
    draw_b: int = 0  # which of seed_b's noises

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
            raise PipelineError(
                f"row has unknown fields {sorted(unknown)}: written by a newer kickgen?"
            )
        return cls(**d)  # type: ignore[arg-type]


@dataclass
class Rendered:
    """One batch of rows, rendered."""

    raw: torch.Tensor  # (B, 88200) float32 vocoder output on the CPU, before fade and normalisation
    log_mels: torch.Tensor  # (B, 128, 173) decoded log-mels
    latents: torch.Tensor  # (B, latent_dim, 8, 11)
    draws: list[int]  # the noise each row started from (Row.draw; 0 for rows with an init)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of two tensors of one shape, treated as flat vectors.

    ``t = 0`` returns ``a`` and ``t = 1`` returns ``b`` exactly; nearly parallel vectors fall back to
    a linear mix. Computed in float64, returned in ``a``'s dtype. Two independent Gaussian noises
    are almost orthogonal, so the mix keeps the norm a Gaussian sample of that size has.
    """
    if a.shape != b.shape:
        raise PipelineError(f"cannot interpolate shapes {tuple(a.shape)} and {tuple(b.shape)}")
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


def seed_noise(seed: int, latent_dim: int, draw: int = 0) -> torch.Tensor:
    """The starting noise ``(latent_dim, 8, 11)`` of a seed, drawn on the CPU
    (``torch.Generator().manual_seed(seed)``), so a seed gives the same kick on every device.
    Draw ``d > 0`` is the seed's d-th other noise, the generator's next block after draw d − 1,
    which the hit check takes when the first ones swell after the hit."""
    g = torch.Generator().manual_seed(int(seed))
    for _ in range(int(draw) + 1):
        noise = torch.randn((latent_dim, *LATENT_HW), generator=g, dtype=torch.float32)
    return noise


def row_noise(row: Row, latent_dim: int) -> torch.Tensor:
    """A row's starting noise ``(latent_dim, 8, 11)``: its seed's, or the slerp of two seeds'."""
    a = seed_noise(row.seed, latent_dim, row.draw or 0)
    if row.seed_b is None:
        return a
    return slerp(a, seed_noise(row.seed_b, latent_dim, row.draw_b), row.t)


def checks_hit(row: Row) -> bool:
    """Whether the hit check picks this row's draw: a plain kick (no init, no mix) whose draw
    is not given."""
    return row.draw is None and row.seed_b is None and row.prompt_b is None and row.init is None


def start_index(steps: int, strength: float) -> int:
    """Index in the sampler's timestep list where a variation of ``strength`` starts.

    ``round(strength · steps)`` steps are run: strength 1 runs all of them from pure noise,
    strength 0 none (the init latent is decoded as it is).
    """
    return steps - int(round(strength * steps))
