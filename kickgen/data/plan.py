"""What a corpus build makes: its settings (:class:`BuildConfig`) and its plan, one seeded
:class:`Task` per clip (:func:`plan_tasks`).

The first stage of ``kickgen data build``; :mod:`kickgen.data.build` runs the stages. The tasks
go to :mod:`kickgen.data.clips` (which makes each clip), :mod:`kickgen.data.fits` (the fits of the
real recordings and the procedural kicks' recipes) and :mod:`kickgen.data.split` (labels and
splits). Every seed of the build comes from :func:`stable_seed`, so the clips do not depend on
the number of workers.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kickgen.data import fit
from kickgen.data.collect import SourceClip


@dataclass
class BuildConfig:
    """What ``kickgen data build`` makes; the defaults build the shipped corpus."""

    out: Path  # corpus folder
    open_cache: Path | None = None  # fetch and use the open kicks, cached here
    git_mirrors: tuple[Path, ...] = ()  # clones/mirrors of the open GitHub sources (open_archives)
    library: tuple[Path, ...] = ()  # sample-library folders to collect
    sources: tuple[Path, ...] = ()  # source manifests (collect / fetch-open / synth output)
    synth: int = 3800  # procedural kicks
    augment: int = 12  # augmented variants per real recording
    val_fraction: float = 0.05  # share of each kind's groups held out
    val_real_fraction: float = 0.15  # share of the real recordings' groups held out ...
    val_real: int = 12  # ... and at least this many real recordings ...
    val_kits: int = 4  # ... from at least this many kits
    min_count: int = 5  # a keyword joins the vocabulary when found in this many groups
    fit_share: float = 0.6  # share of the procedural kicks drawn around the fits of real recordings
    fit_steps: int = fit.FitConfig.steps  # Adam steps of each fit (tests use fewer)
    min_lead_db: float = 0.0  # a made kick's hit leads its body by this much (check_made_kick)
    seed: int = 0
    workers: int = 2  # processes; results do not depend on it


@dataclass
class Task:
    """One clip to make."""

    id: str
    kind: str  # real | augmented | drumsynth | kicker | synth
    seed: int
    source: SourceClip | None = None
    variant: int = 0
    origin: str = ""  # id of the recording an augmented clip comes from
    fits: str = ""  # a procedural kick drawn around the fits in this fits.json ("": a family's)
    calibration: dict | None = None  # a procedural kick's acceptance model (realism.py)
    min_lead_db: float = 0.0  # BuildConfig.min_lead_db


def plan_tasks(sources: list[SourceClip], config: BuildConfig) -> list[Task]:
    """Every clip to make, in a fixed order, each with its own seed."""
    tasks: list[Task] = []
    counters: Counter[str] = Counter()
    for index, src in enumerate(sources):
        kind = src.kind if src.kind in ("drumsynth", "kicker", "synth") else "real"
        counters[kind] += 1
        base_id = f"{kind}-{counters[kind]:05d}"
        seed = stable_seed(config.seed, src.group, src.file, index)
        tasks.append(Task(base_id, kind, seed, src))
        if kind == "real":
            for v in range(config.augment):
                tasks.append(Task(f"{base_id}-aug{v:02d}", "augmented", seed, src, v + 1, base_id))
    for j in range(config.synth):
        tasks.append(Task(f"synth-{j:05d}", "synth", stable_seed(config.seed, "synth", "", j)))
    for task in tasks:
        task.min_lead_db = config.min_lead_db
    return tasks


def stable_seed(seed: int, *parts: object) -> int:
    """A 32-bit seed made of ``seed`` and ``parts`` (a SHA-1 prefix): the same in every process."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "little")
