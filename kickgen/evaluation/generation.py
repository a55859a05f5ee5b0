"""Generated kicks against the corpus: how real, how varied, how new, how they follow prompts.

:class:`KickSets` generates and keeps the sets, keyed by (prompt, guidance); kick i of every set
uses seed ``seed + i``, so sets are paired kick by kick and a re-run gives the same numbers.
:func:`plan_sets` says up front how many kicks each set needs over the run. On them:

- :func:`generation`: ``n`` unconditional kicks and ``n_keyword`` kicks for each of the most
  frequent vocabulary keywords. Descriptor Fréchet distance to the real validation kicks and to
  all validation clips, each between a floor (training clips of the same kinds, same count, vs
  that reference) and a ceiling (naive sine kicks); diversity; memorization; sanity; the kick
  benchmark's tables (:mod:`kickgen.evaluation.benchmark`).
- :func:`adherence`: for each pair of ``ADHERENCE``, the effect size (Cohen's d) of the named
  descriptor between the prompt and its baseline (unconditional or the opposite word) with the
  same seeds, at each guidance scale; signed so that positive means "moved the way the word
  says"; the target is ≥ 0.8.
- :func:`styles`: each style keyword's kicks against the real recordings that carry it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from kickgen.evaluation import metrics
from kickgen.evaluation.benchmark import SWELL_DB, benchmark_against_real, realism, sanity_summary
from kickgen.evaluation.inputs import EvalConfig, EvalSplit, Reference, pick, training_floor
from kickgen.progress import Progress

# (prompt, baseline prompt, descriptor, expected direction: +1 the prompt raises it, -1 lowers it)
ADHERENCE: tuple[tuple[str, str, str, int], ...] = (
    ("deep", "", "body_pitch", -1),
    ("short", "long", "decay_20", -1),
    ("distorted", "", "harmonic_db", +1),
    ("808", "909", "decay_20", +1),
    ("808", "909", "click_db", -1),
    ("high", "", "body_pitch", +1),
    ("clicky", "", "click_db", +1),
    ("soft", "", "click_db", -1),
)
EFFECT_TARGET = 0.8  # a "large" effect (Cohen)
KEYWORD_DESCRIPTORS = ("body_pitch", "decay_20", "click_db", "harmonic_db", "centroid")
# rows of the report's spectrogram grid (kickgen.evaluation.report), planned with the other sets
GRID_PROMPTS = ("deep", "short", "long", "distorted", "808", "909")
# The styles producers type most: each gets its own row against real recordings in the benchmark,
# beside every keyword that real validation recordings carry.
STYLE_KEYWORDS = ("808", "909", "house", "techno", "punchy")
STYLE_MIN_CLIPS = 5  # a style's own recordings are its reference from this many clips on


class KickSets:
    """Generated sets keyed by (prompt, guidance); kick i always uses seed + i, so a larger request
    extends a stored set instead of regenerating it."""

    def __init__(self, pipe, config: EvalConfig, bar: Progress | None = None,
                 plan: dict[tuple[str, float], int] | None = None):  # fmt: skip
        self.pipe, self.config, self.bar = pipe, config, bar
        self.plan = dict(plan or {})  # (prompt, guidance) → kicks to generate at the first request
        self.waves: dict[tuple[str, float], torch.Tensor] = {}
        self.descriptors: dict[tuple[str, float], dict[str, np.ndarray]] = {}
        self.seconds = 0.0
        self.generated = 0

    def get(
        self, prompt: str, cfg_scale: float, n: int
    ) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        """``(waves (n, 88200), descriptors)`` of the first ``n`` kicks of this set."""
        if prompt == "":
            cfg_scale = 1.0  # an empty prompt ignores guidance: one set serves every scale
        key = (prompt, float(cfg_scale))
        have = len(self.waves[key]) if key in self.waves else 0
        target = max(n, self.plan.get(key, 0)) if have < n else n
        while have < target:  # one sampler batch at a time, so the progress bar moves
            cfg = self.config
            count = min(cfg.batch_size, target - have)
            start = time.perf_counter()
            out = self.pipe(prompt, n=count, seed=cfg.seed + have, cfg_scale=cfg_scale, steps=cfg.steps,
                            sampler=cfg.sampler, batch_size=cfg.batch_size, warn_unknown=False)  # fmt: skip
            self.seconds += time.perf_counter() - start
            self.generated += count
            desc = metrics.describe_safe(out.waveforms)
            if have:
                old = self.descriptors[key]
                self.waves[key] = torch.cat([self.waves[key], out.waveforms])
                self.descriptors[key] = {k: np.concatenate([old[k], v]) for k, v in desc.items()}
            else:
                self.waves[key], self.descriptors[key] = out.waveforms, desc
            if self.bar is not None:
                self.bar.update(count, set=f"{prompt or 'uncond'}@{cfg_scale:g}")
            have += count
        return self.waves[key][:n], {k: v[:n] for k, v in self.descriptors[key].items()}


def keyword_counts(split: EvalSplit) -> dict[str, int]:
    """How many clips of ``split`` carry each keyword."""
    counts: dict[str, int] = {}
    for kws in split.keywords:
        for k in kws:
            counts[k] = counts.get(k, 0) + 1
    return counts


def top_keywords(counts: dict[str, int], vocab: list[str], k: int) -> list[str]:
    """The ``k`` vocabulary keywords most frequent in training (ties by name); the vocabulary's
    first ``k`` when no training clip carries any of them."""
    known = sorted((w for w in vocab if counts.get(w, 0) > 0), key=lambda w: (-counts[w], w))
    return known[:k] if known else list(vocab)[:k]


def plan_sets(config: EvalConfig, vocab: list[str], top: list[str],
              styles: Sequence[str] = ()) -> dict[tuple[str, float], int]:  # fmt: skip
    """Kicks each (prompt, guidance) set will need over the whole run: generated up front in
    full batches, and the progress bar's total."""
    plan: dict[tuple[str, float], int] = {}

    def need(prompt: str, g: float, n: int) -> None:
        key = (prompt, 1.0 if prompt == "" else float(g))
        plan[key] = max(plan.get(key, 0), n)

    need("", 1.0, max(config.n, config.examples))
    for k in top:
        need(k, config.cfg_scale, config.n_keyword)
    for prompt, base, _, _ in ADHERENCE:
        if all(w in vocab for w in (prompt, base) if w):
            for g in config.guidance:
                need(prompt, g, config.n_prompt)
                need(base, g, config.n_prompt)
    for prompt in GRID_PROMPTS:
        if prompt in vocab:
            need(prompt, config.cfg_scale, config.examples)
    for prompt in styles:
        need(prompt, config.cfg_scale, config.n_prompt)
    return plan


def _frechet_block(
    std: metrics.Standardizer, ref: dict, floor: dict, gen: dict, pooled: dict, sine: dict
) -> dict:
    """Fréchet distances of the generated sets, the floor set and the sine ceiling to ``ref``."""
    ref_f = std(metrics.feature_matrix(ref))

    def fd(d: dict) -> float:
        return metrics.frechet_distance(std(metrics.feature_matrix(d)), ref_f)

    out = {"unconditional": fd(gen), "keywords_pooled": fd(pooled), "floor_train": fd(floor),
           "ceiling_sine": fd(sine)}  # fmt: skip
    out["unconditional_over_floor"] = out["unconditional"] / max(out["floor_train"], 1e-12)
    out["n"] = {"reference": len(ref_f), "train": len(next(iter(floor.values()))),
                "generated": len(next(iter(gen.values()))), "sine": len(next(iter(sine.values())))}  # fmt: skip
    return out


def generation(
    sets: KickSets,
    val: EvalSplit,
    train: EvalSplit,
    vocab: list[str],
    config: EvalConfig,
    reference: Reference,
) -> dict:
    """Fréchet distance (floor, ceiling), diversity, memorization, sanity, per-keyword rows.

    Two reference sets: the real validation recordings (``kind == real``) and every validation
    clip (real, synthesized, rendered, augmented: what the model was trained to produce). Each
    has its floor: as many training clips of the same kinds, against the same reference.
    """
    val_all, val_desc_all = reference.indices, reference.descriptors
    val_real, val_desc_real = reference.real(val)
    train_real = training_floor(train, config, minimum=2)
    train_all = pick(len(train.ids), config.n, config.seed + 1)

    pos = {int(i): p for p, i in enumerate(val_all)}
    train_desc_real = metrics.describe_safe(train.waves[train_real])
    train_desc_all = metrics.describe_safe(train.waves[train_all])
    sine = metrics.sine_kicks(config.n, config.seed)
    sine_desc = metrics.describe_safe(sine)

    gen_waves, gen_desc = sets.get("", 1.0, config.n)
    counts = keyword_counts(train)
    top = top_keywords(counts, vocab, config.keywords)
    kw_sets = {k: sets.get(k, config.cfg_scale, config.n_keyword) for k in top}
    pooled = (
        {k: np.concatenate([kw_sets[w][1][k] for w in top]) for k in gen_desc} if top else gen_desc
    )

    std = reference.std  # one scale for every comparison: the whole validation split's spread
    fd = {
        "real": _frechet_block(std, val_desc_real, train_desc_real, gen_desc, pooled, sine_desc),
        "all": _frechet_block(std, val_desc_all, train_desc_all, gen_desc, pooled, sine_desc),
        "features": [name for name, _ in metrics.FEATURES],
    }

    def spread(d: dict) -> float:
        return metrics.mean_pairwise_distance(std(metrics.feature_matrix(d)))

    diversity = {"generated": spread(gen_desc), "validation_real": spread(val_desc_real),
                 "validation_all": spread(val_desc_all), "sine": spread(sine_desc)}  # fmt: skip
    diversity["ratio_real"] = diversity["generated"] / max(diversity["validation_real"], 1e-12)
    diversity["ratio_all"] = diversity["generated"] / max(diversity["validation_all"], 1e-12)

    # memorization against everything the model trained on (all kinds)
    mem_idx = pick(len(train.ids), config.max_reference, config.seed + 2)
    train_emb = metrics.mel_embedding(train.log_mels[mem_idx])
    gen_emb = metrics.mel_embedding(metrics.log_mels_of(gen_waves))
    val_emb = metrics.mel_embedding(val.log_mels[val_all[: config.n]])
    memo = {"generated": metrics.memorization(gen_emb, train_emb),
            "validation": metrics.memorization(val_emb, train_emb), "train_items": len(mem_idx)}  # fmt: skip

    kw_waves = torch.cat([kw_sets[k][0] for k in top]) if top else gen_waves
    sanity = {
        "unconditional": sanity_summary(gen_waves, gen_desc),
        "keywords_pooled": sanity_summary(kw_waves, pooled),
        "validation_real": sanity_summary(val.waves[val_real], val_desc_real),
        "validation_all": sanity_summary(val.waves[val_all], val_desc_all),
        "sine": sanity_summary(sine, sine_desc),
    }

    keyword_rows = []
    for k in top:
        with_k = [pos[int(i)] for i in val_all if k in val.keywords[i]]
        waves_k, desc_k = kw_sets[k]
        row = {"keyword": k, "n": config.n_keyword, "train_count": counts.get(k, 0), "val_count": len(with_k),
               "sanity_pass": float(np.mean(metrics.sanity_checks(waves_k, desc_k)["pass"]))}  # fmt: skip
        for name in KEYWORD_DESCRIPTORS:
            row[f"{name}_generated"] = float(np.median(desc_k[name]))
            row[f"{name}_val"] = float(np.median(val_desc_all[name][with_k])) if with_k else None
        keyword_rows.append(row)

    def medians(d: dict[str, np.ndarray]) -> dict[str, float]:
        return {name: float(np.median(d[name])) for name, _ in metrics.FEATURES}

    compared = {"generated": gen_desc, "keywords_pooled": pooled, "train_real": train_desc_real,
                "sine": sine_desc}  # fmt: skip
    benchmark = benchmark_against_real(val, val_real, val_desc_real, compared, std, config.seed)
    return {
        "benchmark": benchmark,
        "frechet": fd,
        "diversity": diversity,
        "memorization": memo,
        "sanity": sanity,
        "keywords": keyword_rows,
        "descriptor_medians": {
            "generated": medians(gen_desc),
            "validation_real": medians(val_desc_real),
            "validation_all": medians(val_desc_all),
            "sine": medians(sine_desc),
        },  # fmt: skip
        "_sets": {"validation (all kinds)": val_desc_all, "generated": gen_desc, "sine": sine_desc},
        "_pitch": {"validation_real": val.waves[val_real], "generated": gen_waves},
        "_grid_real": val_real,
    }


STYLE_DESCRIPTORS = ("punch", "click_db", "f0_10ms", "f0_25ms", "f0_100ms", "hit_harmonic_db")


def style_words(val: EvalSplit, vocab: list[str], reference: Reference) -> list[str]:
    """``STYLE_KEYWORDS`` in the vocabulary, then the other words real validation recordings carry."""
    carried = sorted({w for i in reference.real(val)[0] for w in val.keywords[int(i)]})
    return list(dict.fromkeys(w for w in (*STYLE_KEYWORDS, *carried) if w in vocab))


def styles(sets: KickSets, val: EvalSplit, vocab: list[str], config: EvalConfig,
           reference: Reference) -> list[dict]:  # fmt: skip
    """Each style keyword (``STYLE_KEYWORDS``, then every vocabulary word that real validation
    recordings carry), ``n_prompt`` kicks at ``cfg_scale``, against real recordings: the transient's
    medians (``STYLE_DESCRIPTORS``) and the share that swells after the hit, for the kicks and
    for the style's own real validation recordings and all of them; kernel distance and
    classifier AUC against the style's recordings when there are ``STYLE_MIN_CLIPS`` or more,
    else against all real validation recordings (``against`` says which)."""
    rows_all, desc_all = reference.real(val)
    out = []
    for word in style_words(val, vocab, reference):
        waves, desc = sets.get(word, config.cfg_scale, config.n_prompt)
        own = [p for p, i in enumerate(rows_all) if word in val.keywords[int(i)]]
        own_desc = {k: v[own] for k, v in desc_all.items()}
        ref = own_desc if len(own) >= STYLE_MIN_CLIPS else desc_all
        row = {"keyword": word, "n": len(waves), "real_clips": len(own),
               "real_drums": len({val.groups[int(rows_all[p])] for p in own}),
               "against": "style" if len(own) >= STYLE_MIN_CLIPS else "all real"}  # fmt: skip
        for label, d in (("generated", desc), ("real_style", own_desc), ("real_all", desc_all)):
            empty = not len(d["punch"])
            for name in STYLE_DESCRIPTORS:
                row[f"{name}_{label}"] = None if empty else float(np.median(d[name]))
            row[f"swell_{label}"] = None if empty else float(np.mean(d["swell_db"] > SWELL_DB))
        row.update(realism(reference.std, ref, {"generated": desc}, config.seed)["generated"])
        out.append(row)
    return out


def adherence(sets: KickSets, vocab: list[str], config: EvalConfig) -> list[dict]:
    """Effect sizes of ``ADHERENCE`` at each guidance scale, same seeds for prompt and baseline."""
    rows = []
    for prompt, base, name, sign in ADHERENCE:
        missing = [w for w in (prompt, base) if w and w not in vocab]
        for g in config.guidance:
            row = {"prompt": prompt, "baseline": base or "(unconditional)", "descriptor": name,
                   "expected": "higher" if sign > 0 else "lower", "guidance": float(g)}  # fmt: skip
            if missing:
                row.update(effect_size=None, note=f"not in the vocabulary: {' '.join(missing)}")
                rows.append(row)
                continue
            _, a = sets.get(prompt, g, config.n_prompt)
            _, b = sets.get(base, g, config.n_prompt)
            d = metrics.cohens_d(a[name], b[name])
            row.update(effect_size=sign * d, cohens_d=d, prompt_median=float(np.median(a[name])),
                       baseline_median=float(np.median(b[name])), n=config.n_prompt,
                       passed=bool(sign * d >= EFFECT_TARGET))  # fmt: skip
            rows.append(row)
    return rows
