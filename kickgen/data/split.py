"""Label and split the kept clips of a corpus build: keywords, vocabulary, train/validation.

:func:`label_clips` gives each clip the keywords of its names without the measurable ones plus
those its measurements earn, keeps the vocabulary of keywords found in ``min_count`` groups
(:func:`build_vocab`) and splits by group: :func:`split_groups` within each kind of source, and
:func:`hold_out_real` (through :func:`held_out_real`) for the real recordings, kit by kit. It
returns the rows of ``metadata.csv``.

Reads the clips of :mod:`kickgen.data.clips` and the settings of :mod:`kickgen.data.plan`;
:mod:`kickgen.data.fits` asks it which recordings are held out; :mod:`kickgen.data.build` writes
what it returns.
"""

from __future__ import annotations

import hashlib

from kickgen.data.clips import ClipResult
from kickgen.data.plan import BuildConfig
from kickgen.descriptors import DESCRIPTOR_NAMES, MEASURED_KEYWORDS, measured_keywords

CORPUS_STOPWORDS = frozenset({"kick"})  # every clip is a kick: the word tells nothing


def group_of(r: ClipResult) -> str:
    """The group a clip is split with: its source's (every layer and variant of one drum)."""
    return r.task.source.group if r.task.source else f"synth:{r.task.id}"


def held_out_real(kept: list[ClipResult], config: BuildConfig) -> set[str]:
    """The groups of the kept real recordings that go to validation (:func:`hold_out_real`)."""
    real_groups: dict[str, tuple[str, int]] = {}
    acoustic = set()
    for r in kept:
        if r.task.kind == "real":
            kit = f"{r.task.source.source}/{r.task.source.kit}"
            count = real_groups.get(group_of(r), (kit, 0))[1]
            real_groups[group_of(r)] = (kit, count + 1)
            if "acoustic" in r.task.source.keywords.split():
                acoustic.add(group_of(r))
    return hold_out_real(
        real_groups, config.val_real_fraction, config.seed, config.val_real, config.val_kits,
        acoustic,
    )  # fmt: skip


def label_clips(
    kept: list[ClipResult], config: BuildConfig
) -> tuple[list[dict[str, str]], list[str]]:
    """Keywords (names without the measurable words, plus what the measurements earn), the
    vocabulary, the splits and the metadata rows of the kept clips."""
    labelled, keyword_groups = [], {}
    for r in kept:
        src = r.task.source
        name_kw = src.keywords.split() if src else list(r.style_keywords)
        name_kw = [k for k in name_kw if k not in MEASURED_KEYWORDS and k not in CORPUS_STOPWORDS]
        keywords = list(dict.fromkeys([*name_kw, *measured_keywords(r.descriptors)]))
        for kw in keywords:
            keyword_groups.setdefault(kw, set()).add(group_of(r))
        labelled.append((r, keywords, name_kw))
    vocab = build_vocab(keyword_groups, config.min_count)
    in_vocab = set(vocab)
    strata = {
        group_of(r): "real" if r.task.kind in ("real", "augmented") else r.task.kind for r in kept
    }
    split = split_groups(
        {g: s for g, s in strata.items() if s != "real"}, config.val_fraction, config.seed
    )
    held_out = held_out_real(kept, config)
    for group, stratum in strata.items():
        if stratum == "real":
            split[group] = "val" if group in held_out else "train"

    metadata = []
    for r, keywords, name_kw in labelled:
        src = r.task.source
        row = {
            "id": r.task.id,
            "file": f"clips/{r.task.kind}/{r.task.id}.wav",
            "source": src.source if src else "synth",
            "package": src.package if src else "",
            "kit": src.kit if src else r.family,
            "licence": src.licence if src else "kickgen (MIT)",
            "keywords": " ".join(k for k in keywords if k in in_vocab),
            "split": split[group_of(r)],
            "group": group_of(r),
            "kind": r.task.kind,
            "name": src.name if src else "",
            "name_keywords": " ".join(name_kw),
            "origin": r.task.origin,
            "augmentation": " ".join(filter(None, [r.augmentation, src.params if src else ""])),
        }
        row.update({k: f"{r.descriptors[k]:.6g}" for k in DESCRIPTOR_NAMES})
        metadata.append(row)
    return metadata, vocab


def split_groups(groups: dict[str, str], val_fraction: float, seed: int) -> dict[str, str]:
    """``{group: stratum}`` → ``{group: "train" | "val"}``.

    Within each stratum (kind of source) the groups are ordered by a seeded hash and the first
    ``round(val_fraction · n)`` go to validation (none when a stratum has fewer than 4 groups).
    """
    by_stratum: dict[str, list[str]] = {}
    for group, stratum in groups.items():
        by_stratum.setdefault(stratum, []).append(group)
    split = {}
    for members in by_stratum.values():
        order = sorted(members, key=lambda g: hashlib.sha1(f"{seed}:{g}".encode()).hexdigest())
        n_val = int(round(val_fraction * len(order))) if len(order) >= 4 else 0
        if val_fraction > 0 and len(order) >= 4:
            n_val = max(n_val, 1)
        for i, group in enumerate(order):
            split[group] = "val" if i < n_val else "train"
    return split


def hold_out_real(
    groups: dict[str, tuple[str, int]],
    val_fraction: float,
    seed: int,
    min_recordings: int,
    min_kits: int,
    acoustic: set[str] | frozenset[str] = frozenset(),
) -> set[str]:
    """The real groups that go to validation: ``{group: (kit, recordings)}`` → groups.

    Kits are visited in a seeded hash order, one group of each kit per round (each kit's groups
    in hash order too), until validation holds at least ``round(val_fraction · groups)`` groups,
    ``min_recordings`` recordings and groups of ``min_kits`` kits, so the held-out recordings
    spread over many kits instead of piling up in one. When some groups are ``acoustic``, the
    acoustic drums and the others are first visited apart, each until ``round(val_fraction · n)``
    of its ``n`` groups are held out (at least one of four or more), so that multi-layer
    acoustic drums cannot fill validation alone. Takes nothing when ``val_fraction`` is 0, and
    never more than half of the groups (of each kind, in the first visits).
    """
    if val_fraction <= 0 or not groups:
        return set()

    def order(items):
        return sorted(items, key=lambda g: hashlib.sha1(f"{seed}:{g}".encode()).hexdigest())

    chosen: list[str] = []
    recordings, kits = 0, set()

    def visit(members: list[str], enough) -> None:
        """Round-robin over the kits of ``members`` not yet chosen until ``enough()``."""
        nonlocal recordings
        by_kit: dict[str, list[str]] = {}
        for group in members:
            if group not in chosen:
                by_kit.setdefault(groups[group][0], []).append(group)
        queues = [order(by_kit[kit]) for kit in order(list(by_kit))]
        while not enough() and any(queues):
            for queue in queues:
                if queue and not enough():
                    group = queue.pop(0)
                    chosen.append(group)
                    kit, count = groups[group]
                    recordings += count
                    kits.add(kit)

    if acoustic and set(groups) - set(acoustic):
        for stratum in (
            [g for g in groups if g in acoustic],
            [g for g in groups if g not in acoustic],
        ):
            n = len(stratum)
            want = min(max(int(round(val_fraction * n)), 1 if n >= 4 else 0), n // 2)
            stop = len(chosen) + want
            visit(stratum, lambda stop=stop: len(chosen) >= stop)
    want_groups = max(int(round(val_fraction * len(groups))), 1)
    cap = len(groups) // 2

    def enough() -> bool:
        return len(chosen) >= cap or (
            len(chosen) >= want_groups and recordings >= min_recordings and len(kits) >= min_kits
        )

    visit(list(groups), enough)
    return set(chosen)


def build_vocab(keyword_groups: dict[str, set[str]], min_count: int) -> list[str]:
    """Keywords found in at least ``min_count`` groups, most frequent first (ties by name)."""
    counts = {kw: len(groups) for kw, groups in keyword_groups.items()}
    return sorted((kw for kw, c in counts.items() if c >= min_count), key=lambda k: (-counts[k], k))
