"""Rows → finished kicks: batching, best-of-K, hygiene, recipes.

    from kickgen.pipeline import KickPipeline
    from kickgen.producer import HygieneConfig, generate_kicks
    pipe = KickPipeline.from_pretrained("checkpoints")
    kicks = generate_kicks(pipe, "punchy 808", n=4, seed=42, hygiene=HygieneConfig(), best_of=3)
    kicks[0].wave        # float32 (88200,) at 44.1 kHz
    kicks[0].recipe      # what `kickgen regenerate` needs

Kick i of ``seed`` s without best-of uses seed s + i, as the pipeline does. With ``best_of=K``
kick i draws candidates from seeds s + i·K … s + i·K + K − 1 and keeps the one that passes the
most of the eval's sanity checks (:data:`kickgen.evaluation.metrics.SANITY_CHECKS`), then the
most of its shape checks (``SHAPE_CHECKS``: onset, attack, body pitch); the first on a tie.
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from kickgen.pipeline import SEED_RANGE
from kickgen.producer.engine import (
    ProducerError,
    Row,
    Settings,
    is_memory_name,
    render_rows,
    start_index,
)
from kickgen.producer.hygiene import HygieneConfig, sanity_checks
from kickgen.producer.recall import finish, make_recipe
from kickgen.prompts import UnknownKeywordWarning

DEFAULT_BATCH = 16


@dataclass
class Kick:
    """One finished kick."""

    wave: np.ndarray  # float32 (L,) at 44.1 kHz, after the output stage (hygiene or reference)
    raw: torch.Tensor  # (88200,) vocoder output before it
    recipe: dict[str, object]  # see kickgen.producer.recall
    checks: dict[str, bool] = field(default_factory=dict)  # sanity checks of raw (best-of only)
    candidates: int = 1  # how many candidates it was chosen from

    @property
    def seed(self) -> int:
        return int(self.recipe["rows"][self.recipe["index"]]["seed"])  # type: ignore[index]


def render_kicks(
    pipe,
    rows: Sequence[Row],
    settings: Settings,
    hygiene: HygieneConfig | None = None,
    best_of: int = 1,
    batch_size: int = DEFAULT_BATCH,
    callback: Callable[[int, int], None] | None = None,
    audio: dict[str, torch.Tensor] | None = None,
) -> list[Kick]:
    """Render ``rows`` (``best_of`` consecutive rows are one kick's candidates) in batches.

    ``callback(done, total)`` counts sampler steps over all batches. ``audio`` maps init kick
    names to loaded waveforms ``(88200,)`` (required for ``memory:`` names).
    """
    if not isinstance(best_of, int) or best_of < 1:
        raise ProducerError(f"best_of={best_of!r}: use 1 or more candidates per kick")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ProducerError(f"batch_size={batch_size!r}: use at least 1")
    if len(rows) % best_of:
        raise ProducerError(f"{len(rows)} rows do not split into groups of best_of={best_of}")
    if hygiene is not None:
        hygiene.check()
    batches = [list(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]
    steps_per_batch = max(settings.steps - _first(settings, rows), 1)
    total = len(batches) * steps_per_batch
    audio = dict(audio or {})
    candidates: list[Kick] = []
    for b, batch in enumerate(batches):
        step_cb = None
        if callback is not None:

            def step_cb(i: int, _n: int, _b: int = b) -> None:
                callback(_b * steps_per_batch + i + 1, total)

        out = render_rows(pipe, batch, settings, callback=step_cb, audio=audio)
        for i in range(len(batch)):
            recipe = make_recipe(pipe, batch, i, settings, hygiene)
            candidates.append(Kick(finish(out.raw[i], hygiene), out.raw[i], recipe))
    if best_of == 1:
        return candidates
    kicks = []
    for g in range(0, len(candidates), best_of):
        group = candidates[g : g + best_of]
        checks = [sanity_checks(k.raw) for k in group]
        scores = [check_score(c) for c in checks]
        best = scores.index(max(scores))  # first of the best on a tie
        group[best].checks, group[best].candidates = checks[best], best_of
        kicks.append(group[best])
    return kicks


def check_score(checks: dict[str, bool]) -> tuple[int, int]:
    """How a best-of candidate ranks: sanity checks passed (defects), then shape checks."""
    from kickgen.evaluation.metrics import SANITY_CHECKS

    sane = sum(v for k, v in checks.items() if k in SANITY_CHECKS)
    return sane, sum(checks.values()) - sane


def _first(settings: Settings, rows: Sequence[Row]) -> int:
    """Index of the first sampler step the rows run (variations start part-way down)."""
    return start_index(settings.steps, settings.strength) if rows and rows[0].init else 0


def resolve_seed(seed: int | None, count: int) -> int:
    """``seed`` checked so seeds seed … seed + count − 1 fit, or a random one."""
    if seed is None:
        return secrets.randbelow(SEED_RANGE - count)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= SEED_RANGE - count:
        raise ProducerError(f"seed={seed!r}: use a whole number from 0 to {SEED_RANGE - count}")
    return seed


def warn_unknown(pipe, *prompts: str) -> None:
    """Warn once per prompt about words outside the vocabulary (the pipeline's warning)."""
    for prompt in prompts:
        info = pipe.parse_prompt(prompt)
        if info.warning_text():  # unknown words, or words read as the closest keyword
            warnings.warn(info.warning_text(), UnknownKeywordWarning, stacklevel=3)


def generate_kicks(
    pipe,
    prompt: str = "",
    n: int = 1,
    seed: int | None = None,
    cfg_scale: float = 3.0,
    steps: int = 50,
    sampler: str = "ddim",
    hygiene: HygieneConfig | None = None,
    best_of: int = 1,
    init_audio: str | Path | None = None,
    strength: float = 1.0,
    batch_size: int = DEFAULT_BATCH,
    callback: Callable[[int, int], None] | None = None,
    audio: dict[str, torch.Tensor] | None = None,
) -> list[Kick]:
    """Generate ``n`` kicks for ``prompt`` (optionally variations of ``init_audio``; see the module
    docstring for seeds and best-of). ``hygiene=None`` keeps the reference output stage.
    ``init_audio`` may be a ``memory:`` name whose waveform ``audio`` holds."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ProducerError(f"n={n!r}: ask for at least 1 kick")
    if not isinstance(best_of, int) or isinstance(best_of, bool) or best_of < 1:
        raise ProducerError(f"best_of={best_of!r}: use 1 or more candidates per kick")
    settings = Settings(float(cfg_scale), steps, sampler, float(strength))
    settings.check()
    if init_audio is None and strength != 1.0:
        raise ProducerError(
            f"strength={strength} needs an init kick: pass init_audio (--init-audio FILE)"
        )
    seed = resolve_seed(seed, n * best_of)
    warn_unknown(pipe, prompt)
    if init_audio is None or is_memory_name(init_audio):
        init = init_audio
    else:
        init = str(Path(init_audio).resolve())
    rows = [Row(seed=seed + i, prompt=prompt, init=init) for i in range(n * best_of)]
    return render_kicks(pipe, rows, settings, hygiene, best_of, batch_size, callback, audio)
