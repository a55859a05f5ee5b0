"""``kickgen eval``: how good the shipped models are, measured on the corpus's validation split.

    kickgen eval --checkpoints checkpoints --corpus /work/corpus --out eval_out
    kickgen eval --kicks DIR --corpus /work/corpus --out bench_out   # any folder of kicks

The kick benchmark runs through the parts below: per-descriptor medians and quartiles
(:data:`TABLE_DESCRIPTORS`, pitch envelope first) and each set against the real recordings as a
whole (:func:`realism`: kernel distance, classifier two-sample AUC, Fréchet distance,
diversity), for the chain (recordings → vocoder, recordings → VAE round trip → vocoder) and for
generated kicks; ``--kicks`` (:func:`run_kicks_eval`) gives the same tables for a folder of
kick files, no models needed.

Three parts, each written to ``OUT/results.json`` (machines), ``OUT/report.md`` (people) and PNGs:

1. Reconstruction on validation recordings, the real ones (``kind == real``) first and other
   kinds when there are fewer than ``n_recon`` (means over the real ones reported apart). VAE: log-mel error in dB
   (encode → decode). Vocoders from the true log-mels and end to end (VAE round trip → vocoder):
   HiFi-GAN, kickgen's Griffin-Lim (NNLS + fast GL) and the reference-style Griffin-Lim
   (pseudo-inverse + 64 plain iterations), each scored by the floored log-mel distance and the
   multi-resolution STFT distance (:mod:`kickgen.evaluation.metrics`) against the recording.
2. Generation at the default settings with fixed seeds: ``n`` unconditional kicks and
   ``n_keyword`` kicks for each of the most frequent vocabulary keywords. Descriptor Fréchet
   distance to the real validation kicks and to all validation clips, each between a floor
   (training clips of the same kinds, same count, vs that reference) and a ceiling (naive sine
   kicks); diversity; memorization; sanity pass rate.
3. Prompt adherence: for each pair of ``ADHERENCE`` (deep, short vs long, distorted, 808 vs 909
   twice, high, clicky, soft), the effect size (Cohen's d) of the named descriptor between the
   prompt and its baseline (unconditional or the opposite word) with the same seeds, at guidance
   scales 1, 3 and 5. Signed so that positive means "moved the way the
   word says"; the target is ≥ 0.8.

Kick i of every set uses seed ``seed + i``, so sets are paired kick by kick and a re-run gives the
same numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from kickgen.errors import CommandError, KickgenError
from kickgen.evaluation import metrics
from kickgen.output import make_folder
from kickgen.pipeline import torch_threads
from kickgen.progress import Progress
from kickgen.sampling import GUIDANCE_FROM, GUIDANCE_UNTIL

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
RECON_METHODS = ("hifigan", "griffin_lim", "reference_griffin_lim")
RESULTS_NAME = "results.json"
REPORT_NAME = "report.md"


class EvalError(KickgenError):
    """The evaluation cannot run on these inputs; the message names the file or value."""


@dataclass
class EvalConfig:
    """What one eval run measures; the defaults are the published run (≤ 15 min on 2 CPU cores)."""

    n: int = 128  # unconditional kicks: Fréchet, diversity, memorization, sanity
    n_prompt: int = 32  # kicks per (prompt, guidance) of the adherence study
    n_keyword: int = 8  # kicks per vocabulary keyword at the default guidance
    keywords: int = 16  # the most frequent training keywords get a row each
    n_recon: int = 24  # real validation recordings for reconstruction
    steps: int = 50  # sampler steps (the default generation setting)
    sampler: str = "ddim"  # ddim or dpm
    cfg_scale: float = 3.0  # default guidance: keyword sets and the spectrogram grid
    guidance: tuple[float, ...] = (1.0, 3.0, 5.0)  # scales of the adherence study
    seed: int = 1000  # kick i of every set uses seed + i
    batch_size: int = 16  # kicks per sampler batch
    max_reference: int = 1000  # at most this many real clips per split as reference sets
    examples: int = 6  # kicks per row in the spectrogram grid and WAV examples
    device: str = "cpu"
    threads: int | None = 1  # torch intra-op threads: 1 is fastest on a shared, loaded machine
    # (measured 10× faster than torch's 2 threads at load average 7-10 on 2 cores); None: torch's choice


@dataclass
class EvalSplit:
    """The part of a corpus split the eval reads."""

    ids: list[str]
    waves: torch.Tensor  # (N, 88200), float16 in the cache
    log_mels: torch.Tensor  # (N, 128, 173), float16 in the cache
    keywords: list[list[str]]
    kinds: list[str]  # real | synth | augmented | ... ("real" when the metadata has no kind)
    groups: list[str]  # the drum a clip belongs to (its layers and variants share it; else its id)


def load_eval_split(corpus_dir: Path, split: str) -> EvalSplit:
    """Read ``split`` of the corpus through :func:`kickgen.data.corpus.load_split`.

    Waveforms and log-mels stay in the cache's float16; the eval converts the rows it uses.
    """
    from kickgen.data.corpus import load_split

    data = load_split(corpus_dir, split)
    return EvalSplit(
        ids=list(data.ids),
        waves=data.waves,
        log_mels=data.log_mels,
        keywords=[list(k) for k in data.keywords],
        kinds=[str(row.get("kind") or "real") for row in data.metadata],
        groups=[str(row.get("group") or i) for row, i in zip(data.metadata, data.ids, strict=True)],
    )


def _pick(n_total: int, n: int, seed: int) -> np.ndarray:
    """``n`` distinct indices of ``range(n_total)`` (all when n ≥ n_total), seeded, sorted."""
    if n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))


RECON_KIND_ORDER = ("real", "augmented", "drumsynth", "kicker", "synth")  # fill order


def _recon_indices(split: EvalSplit, n: int, seed: int) -> np.ndarray:
    """``n`` clips for reconstruction: real recordings first, then the other kinds in order."""
    chosen: list[int] = []
    order = list(RECON_KIND_ORDER) + sorted(set(split.kinds) - set(RECON_KIND_ORDER))
    for kind in order:
        of_kind = np.array([i for i, k in enumerate(split.kinds) if k == kind], dtype=int)
        if len(of_kind) and len(chosen) < n:
            chosen += of_kind[_pick(len(of_kind), n - len(chosen), seed)].tolist()
    return np.array(chosen, dtype=int)


def _mean(x: torch.Tensor | np.ndarray) -> float:
    return float(np.mean(np.asarray(x, dtype=np.float64)))


def _ci95(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(1.96 * x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0


# --------------------------------------------------------------------------- the kick benchmark

# Descriptors of the per-descriptor tables, in reading order: the pitch envelope first.
TABLE_DESCRIPTORS: tuple[tuple[str, str], ...] = (
    ("f0_10ms", "Hz"), ("f0_25ms", "Hz"), ("f0_50ms", "Hz"), ("f0_100ms", "Hz"),
    ("sweep_ratio", "×"), ("sweep_time", "s"), ("body_pitch", "Hz"), ("click_db", "dB"),
    ("punch", ""), ("hit_harmonic_db", "dB"), ("swell_db", "dB"), ("decay_20", "s"),
    ("harmonic_db", "dB"), ("centroid", "Hz"),
)  # fmt: skip
SWELL_DB = 1.0  # a kick whose body rises this far above its hit swells (descriptors.swell_db)
# The styles producers type most: each gets its own row against real recordings in the benchmark,
# beside every keyword that real validation recordings carry.
STYLE_KEYWORDS = ("808", "909", "house", "techno", "punchy")
STYLE_MIN_CLIPS = 5  # a style's own recordings are its reference from this many clips on


def with_sweep_ratio(desc: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``desc`` plus ``sweep_ratio`` = f0(25 ms) / f0(100 ms): above 1 for a falling sweep, 1 for a
    steady tone (the ratio the kick-benchmark tables lead with)."""
    ratio = np.asarray(desc["f0_25ms"]) / np.maximum(np.asarray(desc["f0_100ms"]), 1e-9)
    return {**desc, "sweep_ratio": np.where(np.asarray(desc["f0_100ms"]) > 0, ratio, 0.0)}


def one_per_group(desc: dict[str, np.ndarray], groups: list[str]) -> dict[str, np.ndarray]:
    """Each group's median of every descriptor in ``desc`` (one value per drum, in order of first
    appearance), so that a drum recorded in five velocity layers counts once, like a drum
    recorded once."""
    rows = group_rows(groups)
    return {
        name: np.array([np.median(np.asarray(v)[idx]) for idx in rows]) for name, v in desc.items()
    }


def group_rows(groups: list[str]) -> list[list[int]]:
    """The clips of each group (``groups[i]`` is clip i's), groups in order of first appearance."""
    rows: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        rows.setdefault(g, []).append(i)
    return list(rows.values())


INTERVAL_LEVEL = 0.9  # coverage of the eval's intervals: medians over drums, sanity pass rates
MEDIAN_DRAWS = 2000  # bootstrap draws of the medians' interval


def median_interval(
    desc: dict[str, np.ndarray], groups: list[str], seed: int, level: float = INTERVAL_LEVEL
) -> dict[str, list[float]]:
    """``{descriptor: [low, high]}`` for ``TABLE_DESCRIPTORS``: the ``level`` interval of the median
    of ``desc`` over clips when their drums (``groups``) are drawn again with replacement
    (``MEDIAN_DRAWS`` percentile-bootstrap draws; a drum's velocity layers come and go together).

    A validation split of ten drums pins its medians down only roughly: a generated median
    inside this interval is as near as another draw of ten drums would be.
    """
    desc = with_sweep_ratio(desc)
    drums = group_rows(groups)
    rng = np.random.default_rng(seed)
    draws = [np.concatenate([drums[j] for j in row])
             for row in rng.integers(0, len(drums), size=(MEDIAN_DRAWS, len(drums)))]  # fmt: skip
    tail = 50.0 * (1.0 - level)
    out = {}
    for name, _ in TABLE_DESCRIPTORS:
        values = np.asarray(desc[name], dtype=np.float64)
        medians = [np.median(values[rows]) for rows in draws]
        out[name] = [float(q) for q in np.percentile(medians, (tail, 100.0 - tail))]
    return out


def reference_sets(val: EvalSplit, rows: np.ndarray, desc: dict[str, np.ndarray]) -> dict:
    """The real validation recordings ``rows`` (descriptors ``desc``) as the descriptor tables
    show them: every clip, and each drum once (:func:`one_per_group`)."""
    return {"validation_real": desc,
            "validation_real_drums": one_per_group(desc, [val.groups[int(i)] for i in rows])}  # fmt: skip


def descriptor_table(sets: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list[float]]]:
    """``{descriptor: {set: [q25, median, q75]}}`` for ``TABLE_DESCRIPTORS`` over named sets."""
    sets = {label: with_sweep_ratio(desc) for label, desc in sets.items()}
    return {
        name: {
            label: [float(q) for q in np.percentile(d[name], (25, 50, 75))]
            for label, d in sets.items()
        }
        for name, _ in TABLE_DESCRIPTORS
    }


def realism(std: metrics.Standardizer, reference: dict[str, np.ndarray],
            sets: dict[str, dict[str, np.ndarray]], seed: int) -> dict[str, dict]:  # fmt: skip
    """Each named set against ``reference`` on the standardised descriptors: kernel distance
    (with its spread over halves), classifier two-sample AUC, Fréchet distance, diversity."""
    ref = std(metrics.feature_matrix(reference))
    out = {"reference": {"n": len(ref), "diversity": metrics.mean_pairwise_distance(ref)}}
    for label, desc in sets.items():
        x = std(metrics.feature_matrix(desc))
        row: dict = {"n": len(x), "diversity": metrics.mean_pairwise_distance(x)}
        row["diversity_ratio"] = row["diversity"] / max(out["reference"]["diversity"], 1e-12)
        row["frechet"] = metrics.frechet_distance(x, ref)
        if min(len(x), len(ref)) >= 5:
            row["kernel"] = metrics.kernel_distance(x, ref, seed=seed)
            row["classifier"] = metrics.classifier_auc(x, ref, seed=seed)
        out[label] = row
    return out


def benchmark_against_real(val: EvalSplit, rows: np.ndarray, desc: dict[str, np.ndarray],
                           sets: dict[str, dict[str, np.ndarray]], std: metrics.Standardizer,
                           seed: int) -> dict:  # fmt: skip
    """The kick benchmark of named ``sets`` against the real validation recordings ``rows``
    (descriptors ``desc``): the descriptor table (every clip, each drum once, then ``sets``),
    the interval of the recordings' medians over drums (:func:`median_interval`), and
    :func:`realism`."""
    return {
        "table": descriptor_table({**reference_sets(val, rows, desc), **sets}),
        "median_interval": median_interval(desc, [val.groups[int(i)] for i in rows], seed),
        "realism": realism(std, desc, sets, seed),
    }


# --------------------------------------------------------------------------- generation cache


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


# --------------------------------------------------------------------------- parts


@torch.inference_mode()
def reconstruction(
    pipe, val: EvalSplit, config: EvalConfig, std: metrics.Standardizer
) -> tuple[dict, dict]:
    """VAE and vocoder reconstruction of validation recordings, real ones first.

    Takes ``n_recon`` validation clips: every real recording (up to ``n_recon``), then, when
    there are fewer, clips of the other kinds in the order of ``RECON_KIND_ORDER``. Returns
    ``(results, examples)``: per method and input (``true_mel`` / ``vae_mel``) the mean, 95 %
    half-interval, mean over the real recordings only and per-clip values of both distances;
    ``examples`` holds the first clips' waveforms per method for the figures. ``benchmark``:
    the shipped vocoder's output from the true mels and after the VAE round trip against the
    recordings, per descriptor and as sets (:func:`realism`), on the real recordings (all clips
    when there are none): does the chain keep the pitch sweep, the click and the punch?
    """
    from kickgen import griffin_lim
    from kickgen.audio import log_mel
    from kickgen.models.autoencoder import fit_latent

    idx = _recon_indices(val, config.n_recon, config.seed)
    is_real = np.array([val.kinds[i] == "real" for i in idx])
    methods = [m for m in RECON_METHODS if m != "hifigan" or pipe.vocoder is not None]
    scores = {
        f"{src}/{m}": {"log_mel_db": [], "mrstft_db": [], "frame_comb": []}
        for src in ("true_mel", "vae_mel")
        for m in methods
    }
    vae_err: list[float] = []
    vae_fit_err: list[float] = []  # with the latents fitted to the mels, as init kicks' are
    recording_comb: list[float] = []
    examples: dict[str, torch.Tensor] = {}
    shipped = methods[0]  # the vocoder the pipeline uses: hifigan, or griffin_lim without one
    chain: dict[str, list[torch.Tensor]] = {"true_mel": [], "vae_mel": []}
    total = len(idx) * len(methods) * 2
    with Progress(total, "eval: reconstruction") as bar:
        for start in range(0, len(idx), 8):
            sel = idx[start : start + 8]
            wave = val.waves[sel].float()  # (b, 88200)
            mel = log_mel(wave)  # (b, 128, 173) in float32 from the recording
            vae_mel = (
                pipe.vae.decode(pipe.vae.encode(mel.unsqueeze(1).to(pipe.device)))
                .squeeze(1)
                .float()
                .cpu()
            )
            vae_err += metrics.log_mel_distance_db(vae_mel, mel).tolist()
            fitted = fit_latent(pipe.vae, mel.unsqueeze(1).to(pipe.device))  # as for init kicks
            fitted_mel = pipe.vae.decode(fitted).squeeze(1).float().cpu()
            vae_fit_err += metrics.log_mel_distance_db(fitted_mel, mel).tolist()
            recording_comb += metrics.frame_comb(wave).tolist()
            for src, inp in (("true_mel", mel), ("vae_mel", vae_mel)):
                for m in methods:
                    if m == "hifigan":
                        out = pipe.vocoder(inp.to(pipe.device)).squeeze(1).float().cpu()
                    elif m == "griffin_lim":
                        out = griffin_lim.log_mel_to_audio(inp)
                    else:
                        out = griffin_lim.reference_log_mel_to_audio(inp)
                    out = out[:, : wave.shape[-1]]
                    if m == shipped:
                        chain[src].append(out)
                    scores[f"{src}/{m}"]["log_mel_db"] += metrics.wave_log_mel_distance_db(
                        out, wave
                    ).tolist()
                    scores[f"{src}/{m}"]["mrstft_db"] += metrics.mrstft_distance_db(
                        out, wave
                    ).tolist()
                    scores[f"{src}/{m}"]["frame_comb"] += metrics.frame_comb(out).tolist()
                    if start == 0:
                        examples[f"{src}/{m}"] = out[: config.examples].clone()
                    bar.update(len(sel), method=m)
            if start == 0:
                examples["recording"] = wave[: config.examples].clone()

    def summary(v: list[float]) -> dict:
        arr = np.array(v)
        real = _mean(arr[is_real]) if is_real.any() else None
        return {"mean": _mean(arr), "ci95": _ci95(arr), "real_mean": real, "per_clip": v}

    results: dict = {"n": len(idx), "n_real": int(is_real.sum()), "ids": [val.ids[i] for i in idx],
                     "kinds": [val.kinds[i] for i in idx], "vae_log_mel_db": summary(vae_err),
                     "vae_fitted_log_mel_db": summary(vae_fit_err),
                     "recording_frame_comb": summary(recording_comb)}  # fmt: skip
    for key, vals in scores.items():
        results[key] = {name: summary(v) for name, v in vals.items()}
    pick = is_real if is_real.any() else np.ones(len(idx), dtype=bool)
    chain_waves = {"recordings": val.waves[idx[pick]].float(),
                   "vocoder": torch.cat(chain["true_mel"])[pick],
                   "round_trip": torch.cat(chain["vae_mel"])[pick]}  # fmt: skip
    chain_sets = {name: metrics.describe_safe(w) for name, w in chain_waves.items()}
    results["benchmark"] = {
        "vocoder": shipped,
        "n": int(pick.sum()),
        "table": descriptor_table(chain_sets),
        "realism": realism(
            std,
            chain_sets["recordings"],
            {k: v for k, v in chain_sets.items() if k != "recordings"},
            config.seed,
        ),  # fmt: skip
    }
    examples.update({f"pitch/{name}": w for name, w in chain_waves.items()})
    for src in ("true_mel", "vae_mel"):
        if (
            f"{src}/hifigan" in results
        ):  # issue 7's acceptance: HiFi-GAN MR-STFT ≤ 60 % of Griffin-Lim's
            results[f"{src}/hifigan_over_griffin_lim_mrstft"] = (
                results[f"{src}/hifigan"]["mrstft_db"]["mean"]
                / results[f"{src}/griffin_lim"]["mrstft_db"]["mean"]
            )
    return results, examples


def variation_at_zero(pipe, val: EvalSplit, config: EvalConfig) -> dict:
    """Variations at strength 0 of the real validation recordings (all clips when there are none):
    the whole variation path (encode, decode, vocode, output stage) with nothing denoised, so the
    kick should come back as it went in. Log-mel distance in dB to the recording as the same
    output stage delivers it (:func:`kickgen.pipeline.postprocess`: faded from 1.0 s, peak 0.95),
    so that the contract's fade and level are not counted as the model's error."""
    from kickgen.pipeline import postprocess
    from kickgen.producer.variations import vary_init

    idx = _recon_indices(val, config.n_recon, config.seed)
    real = [i for i in idx if val.kinds[i] == "real"] or list(idx)
    distances = []
    with Progress(len(real), "eval: variations at strength 0") as bar:
        for i in real:
            wave = val.waves[i].float()
            (kick,) = vary_init(pipe, wave, strength=0.0, n=1, seed=config.seed)
            out = torch.from_numpy(np.asarray(kick.wave, dtype=np.float32))
            distances += metrics.wave_log_mel_distance_db(
                out[None], postprocess(wave[None])
            ).tolist()
            bar.update(1)
    arr = np.array(distances)
    return {"n": len(real), "mean": _mean(arr), "ci95": _ci95(arr),
            "median": float(np.median(arr)), "per_clip": distances}  # fmt: skip


LATE_PEAK_DB = (1.0, 3.0)  # the report gives the shares of kicks loudest this far after the hit


def late_key(db: float) -> str:
    """The sanity summary's key for the share loudest more than ``db`` dB after the hit."""
    return f"late_{db:g}db"


def _sanity_summary(waves: torch.Tensor | np.ndarray, descriptors: dict[str, np.ndarray]) -> dict:
    """Pass rates of :func:`metrics.sanity_checks` over ``waves`` ``(B, L)``, plus ``late_1db``
    and ``late_3db``: the shares whose loudest sample lies more than 1 and 3 dB above the loudest
    of their first 30 ms (:func:`metrics.late_peak_db`), so a miss of the attack check reads as
    a plateau or a swell, and ``pass_interval``, the ``INTERVAL_LEVEL`` interval of the share
    passing every check (:func:`metrics.pass_interval`)."""
    checks = metrics.sanity_checks(waves, descriptors)
    out: dict = {name: float(np.mean(v)) for name, v in checks.items()}
    out["pass_interval"] = list(
        metrics.pass_interval(int(checks["pass"].sum()), len(checks["pass"]), INTERVAL_LEVEL)
    )
    late = metrics.late_peak_db(waves)
    for db in LATE_PEAK_DB:
        out[late_key(db)] = float(np.mean(late > db))
    out["swell"] = float(np.mean(np.asarray(descriptors["swell_db"]) > SWELL_DB))
    return out


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
    from kickgen.evaluation.report import GRID_PROMPTS

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


def training_floor(train: EvalSplit, config: EvalConfig, minimum: int) -> np.ndarray:
    """Up to ``config.n`` real training recordings (every training clip when fewer than
    ``minimum`` are real), seeded: the floor set that shows how far real kicks sit from real ones."""
    rows = np.array([i for i, k in enumerate(train.kinds) if k == "real"], dtype=int)
    if len(rows) < minimum:
        rows = np.arange(len(train.ids))
    return rows[_pick(len(rows), config.n, config.seed + 1)]


@dataclass
class Reference:
    """The validation clips the eval compares against, measured once."""

    indices: np.ndarray  # rows of the validation split (at most max_reference)
    descriptors: dict[str, np.ndarray]  # of those rows
    std: metrics.Standardizer  # fitted on them: one scale for every comparison

    @classmethod
    def of(cls, val: EvalSplit, config: EvalConfig) -> Reference:
        indices = _pick(len(val.ids), config.max_reference, config.seed)
        desc = metrics.describe_safe(val.waves[indices])
        return cls(indices, desc, metrics.Standardizer.fit(metrics.feature_matrix(desc)))

    def real(self, val: EvalSplit) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The real recordings among them (every clip when fewer than 2 are real)."""
        rows = [p for p, i in enumerate(self.indices) if val.kinds[i] == "real"]
        if len(rows) < 2:
            rows = list(range(len(self.indices)))
        return self.indices[rows], {k: v[rows] for k, v in self.descriptors.items()}


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
    train_all = _pick(len(train.ids), config.n, config.seed + 1)

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
    mem_idx = _pick(len(train.ids), config.max_reference, config.seed + 2)
    train_emb = metrics.mel_embedding(train.log_mels[mem_idx])
    gen_emb = metrics.mel_embedding(metrics.log_mels_of(gen_waves))
    val_emb = metrics.mel_embedding(val.log_mels[val_all[: config.n]])
    memo = {"generated": metrics.memorization(gen_emb, train_emb),
            "validation": metrics.memorization(val_emb, train_emb), "train_items": len(mem_idx)}  # fmt: skip

    kw_waves = torch.cat([kw_sets[k][0] for k in top]) if top else gen_waves
    sanity = {
        "unconditional": _sanity_summary(gen_waves, gen_desc),
        "keywords_pooled": _sanity_summary(kw_waves, pooled),
        "validation_real": _sanity_summary(val.waves[val_real], val_desc_real),
        "validation_all": _sanity_summary(val.waves[val_all], val_desc_all),
        "sine": _sanity_summary(sine, sine_desc),
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


# --------------------------------------------------------------------------- the run


def _to_json(obj):
    if isinstance(obj, dict):
        return {str(k): _to_json(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def run_eval(checkpoints: Path, corpus: Path, out: Path, config: EvalConfig | None = None,
             command: str | None = None) -> dict:  # fmt: skip
    """Run the whole evaluation and write results.json, report.md, PNGs and WAV examples to ``out``.

    Returns the results dictionary (as written to JSON).
    """

    config = config or EvalConfig()
    checkpoints, corpus, out = Path(checkpoints), Path(corpus), Path(out)
    _check_dir(checkpoints, str(checkpoints), "the three checkpoints")
    _check_corpus(corpus)
    _make_out(out)
    with torch_threads(config.threads):
        return _run(checkpoints, corpus, out, config, command)


def _check_corpus(corpus: Path) -> None:
    if not (corpus / "cache" / "val.pt").is_file() or not (corpus / "cache" / "train.pt").is_file():
        raise EvalError(
            f"{corpus} has no cache/train.pt and cache/val.pt: build it with `kickgen data build`"
        )


def _make_out(out: Path) -> None:
    make_folder(out, EvalError, "choose a writable folder")


def _check_dir(folder: Path, shown: str, holding: str) -> None:
    """An input folder: ``shown`` is how the error names it, ``holding`` what it should hold."""
    if not folder.is_dir():
        raise EvalError(f"{shown} is not a directory: pass the folder holding {holding}")


def _run(
    checkpoints: Path, corpus: Path, out: Path, config: EvalConfig, command: str | None
) -> dict:
    from kickgen.pipeline import VOCODER_NAME, KickPipeline

    started = time.perf_counter()
    timings: dict[str, float] = {}

    t = time.perf_counter()
    has_vocoder = (checkpoints / VOCODER_NAME).is_file()
    pipe = KickPipeline.from_pretrained(checkpoints, device=config.device, use_vocoder=has_vocoder)
    val, train = load_eval_split(corpus, "val"), load_eval_split(corpus, "train")
    if len(val.ids) < 2 or len(train.ids) < 2:
        raise EvalError(f"{corpus}: the eval needs at least 2 validation and 2 training clips")
    timings["load"] = time.perf_counter() - t

    t = time.perf_counter()
    reference = Reference.of(val, config)
    timings["reference"] = time.perf_counter() - t

    t = time.perf_counter()
    recon, recon_examples = reconstruction(pipe, val, config, reference.std)
    recon["variation_strength_0"] = variation_at_zero(pipe, val, config)
    timings["reconstruction"] = time.perf_counter() - t

    top = top_keywords(keyword_counts(train), pipe.vocab, config.keywords)
    plan = plan_sets(config, pipe.vocab, top, style_words(val, pipe.vocab, reference))
    with Progress(sum(plan.values()), "eval: generation (kicks)") as bar:
        sets = KickSets(pipe, config, bar, plan)
        t = time.perf_counter()
        gen = generation(sets, val, train, pipe.vocab, config, reference)
        timings["generation"] = time.perf_counter() - t
        t = time.perf_counter()
        adh = adherence(sets, pipe.vocab, config)
        timings["adherence"] = time.perf_counter() - t
        t = time.perf_counter()
        sty = styles(sets, val, pipe.vocab, config, reference)
        timings["styles"] = time.perf_counter() - t

    t = time.perf_counter()
    from kickgen.evaluation import report

    figures = report.write_figures(out, sets, gen, val, recon_examples, config)
    timings["figures"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started

    results = {
        "command": command,
        "checkpoints": str(checkpoints),
        "corpus": str(corpus),
        "config": asdict(config),
        "vocoder": "hifigan" if pipe.vocoder is not None else "griffin-lim",
        "guidance_from": GUIDANCE_FROM,
        "guidance_until": GUIDANCE_UNTIL,
        "machine": report.machine_description(),
        "timings_s": timings,
        "kicks_generated": sets.generated,
        "seconds_generating": sets.seconds,
        "reconstruction": recon,
        "generation": gen,
        "adherence": adh,
        "styles": sty,
        "figures": figures,
    }
    results = _to_json(results)
    (out / RESULTS_NAME).write_text(json.dumps(results, indent=2) + "\n")
    (out / REPORT_NAME).write_text(report.markdown(results))
    return results


# --------------------------------------------------------------------------- a VAE candidate


def run_chain_eval(vae: Path, checkpoints: Path, corpus: Path, out: Path, config: EvalConfig | None = None,
                   command: str | None = None) -> dict:  # fmt: skip
    """``kickgen eval --vae FILE``: the reconstruction chain alone (recordings → VAE round trip →
    vocoder, with the benchmark's tables and pitch tracks) for a VAE checkpoint, with the vocoder
    of ``checkpoints`` (Griffin-Lim when it holds none). A VAE candidate needs no diffusion model,
    so candidates of any latent size can be compared before one is trained on. Writes
    results.json, report.md and the pitch-track PNG to ``out``."""
    from types import SimpleNamespace

    from kickgen.checkpoints import load_vae, load_vocoder
    from kickgen.pipeline import VOCODER_NAME, resolve_device

    config = config or EvalConfig()
    vae, checkpoints, corpus, out = Path(vae), Path(checkpoints), Path(corpus), Path(out)
    _check_corpus(corpus)
    _make_out(out)
    with torch_threads(config.threads):
        started = time.perf_counter()
        device = resolve_device(config.device)
        vocoder_file = checkpoints / VOCODER_NAME
        pipe = SimpleNamespace(vae=load_vae(vae, device), device=device,
                               vocoder=load_vocoder(vocoder_file, device) if vocoder_file.is_file() else None)  # fmt: skip
        val = load_eval_split(corpus, "val")
        reference = Reference.of(val, config)
        recon, examples = reconstruction(pipe, val, config, reference.std)
        results = {"command": command, "vae": str(vae), "corpus": str(corpus), "config": asdict(config),
                   "vocoder": str(vocoder_file) if pipe.vocoder is not None else "griffin-lim",
                   "reconstruction": recon, "figures": {}}  # fmt: skip
        from kickgen.evaluation import report

        try:
            report.pitch_track_figure(out / report.PITCH_TRACKS_PNG, {
                "recordings": examples["pitch/recordings"], "vocoder (true mel)": examples["pitch/vocoder"],
                "VAE round trip": examples["pitch/round_trip"]})  # fmt: skip
            results["figures"]["pitch_tracks"] = report.PITCH_TRACKS_PNG
        except ImportError:
            pass  # no matplotlib
        results["machine"] = report.machine_description()
        results["timings_s"] = {"total": time.perf_counter() - started}
    results = _to_json(results)
    (out / RESULTS_NAME).write_text(json.dumps(results, indent=2) + "\n")
    (out / REPORT_NAME).write_text(report.chain_markdown(results))
    return results


# --------------------------------------------------------------------------- any folder of kicks

KICK_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg")


def load_kicks(folder: Path) -> tuple[list[str], torch.Tensor, list[tuple[str, str]]]:
    """Every audio file of ``folder`` (recursively), prepared as the corpus prepares its clips
    (mono 44.1 kHz, onset aligned to 1 ms, the reference preprocessing), so a folder of the
    validation recordings scores as they do. Returns names, ``(N, 88200)`` waves and the files
    skipped with their reasons."""
    from kickgen.audio import SAMPLE_RATE, AudioError, preprocess
    from kickgen.data.build import align_onset
    from kickgen.data.collect import load_source

    names, waves, skipped = [], [], []
    files = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in KICK_SUFFIXES and p.is_file()
    )
    for path in files:
        try:
            wave = load_source(path)
            waves.append(
                torch.from_numpy(preprocess(align_onset(wave).astype(np.float32), SAMPLE_RATE))
            )
            names.append(str(path.relative_to(folder)))
        except (AudioError, OSError, ValueError) as exc:
            skipped.append(
                (str(path), str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            )
    return names, (torch.stack(waves) if waves else torch.zeros(0, 88200)), skipped


def run_kicks_eval(kicks: Path, corpus: Path, out: Path, config: EvalConfig | None = None,
                   command: str | None = None) -> dict:  # fmt: skip
    """``kickgen eval --kicks DIR``: score a folder of kick files (another generator's output, a
    sample library) against the corpus's real validation recordings with the kick benchmark's
    tables, no models needed. Writes results.json, report.md and the pitch-track PNG to ``out``."""
    config = config or EvalConfig()
    kicks, corpus, out = Path(kicks), Path(corpus), Path(out)
    _check_dir(kicks, f"--kicks {kicks}", "the kick files")
    _check_corpus(corpus)
    started = time.perf_counter()
    names, waves, skipped = load_kicks(kicks)
    if len(names) < 5:
        raise EvalError(
            f"{kicks}: {len(names)} readable kicks ({len(skipped)} skipped); the benchmark needs at least 5"
        )
    _make_out(out)
    val, train = load_eval_split(corpus, "val"), load_eval_split(corpus, "train")
    reference = Reference.of(val, config)
    val_real, val_desc_real = reference.real(val)
    train_real = training_floor(train, config, minimum=5)  # the benchmark's tests need 5
    desc = metrics.describe_safe(waves)
    compared = {"kicks": desc, "train_real": metrics.describe_safe(train.waves[train_real]),
                "sine": metrics.describe_safe(metrics.sine_kicks(config.n, config.seed))}  # fmt: skip
    results = {
        "command": command,
        "kicks": str(kicks),
        "corpus": str(corpus),
        "files": names,
        "skipped": [{"file": f, "reason": r} for f, r in skipped],
        "benchmark": benchmark_against_real(
            val, val_real, val_desc_real, compared, reference.std, config.seed
        ),
        "sanity": {
            "kicks": _sanity_summary(waves, desc),
            "validation_real": _sanity_summary(val.waves[val_real], val_desc_real),
        },  # fmt: skip
        "figures": {},
    }
    from kickgen.evaluation import report

    try:
        report.pitch_track_figure(out / report.PITCH_TRACKS_PNG,
                                  {"real (validation)": val.waves[val_real], "your kicks": waves})  # fmt: skip
        results["figures"]["pitch_tracks"] = report.PITCH_TRACKS_PNG
    except ImportError:
        pass  # no matplotlib: the report says so
    results["machine"] = report.machine_description()
    results["seconds"] = time.perf_counter() - started
    results = _to_json(results)
    (out / RESULTS_NAME).write_text(json.dumps(results, indent=2) + "\n")
    (out / REPORT_NAME).write_text(report.kicks_markdown(results))
    return results


# --------------------------------------------------------------------------- CLI


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"{value} is too small: use at least 2")
    return value


def _guidance(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give comma-separated numbers such as 1,3,5"
        ) from None
    if any(v < 0 or v != v for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: guidance scales are 0 or more")
    return values


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    from kickgen.commands.common import add_value_argument
    from kickgen.weights import LOOKUP_HELP

    d = EvalConfig()
    p.add_argument(
        "--checkpoints",
        type=Path,
        default=None,
        help=f"folder with the checkpoints (default: {LOOKUP_HELP})",
    )
    p.add_argument(
        "--kicks",
        type=Path,
        default=None,
        metavar="DIR",
        help="score this folder of kick files against the validation recordings instead of the "
        "checkpoints (another generator's output, a sample library)",
    )
    p.add_argument(
        "--vae",
        type=Path,
        default=None,
        metavar="FILE",
        help="measure only the reconstruction chain with this VAE checkpoint (a candidate of any "
        "latent size: no diffusion model needed) and the vocoder of --checkpoints",
    )
    p.add_argument(
        "--corpus",
        type=Path,
        required=True,
        help="corpus folder written by `kickgen data build` (uses cache/train.pt, cache/val.pt)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("eval_out"),
        help="output folder for results.json, report.md, PNGs, WAVs (default: %(default)s)",
    )
    add_value_argument(p, "--n", _positive, d.n, "unconditional kicks")
    add_value_argument(
        p,
        "--n-prompt",
        _positive,
        d.n_prompt,
        "kicks per prompt and guidance in the adherence study",
    )
    add_value_argument(p, "--n-keyword", _positive, d.n_keyword, "kicks per vocabulary keyword")
    add_value_argument(
        p, "--keywords", int, d.keywords, "how many of the most frequent keywords get a row"
    )
    add_value_argument(
        p, "--n-recon", _positive, d.n_recon, "validation recordings for reconstruction"
    )
    add_value_argument(p, "--steps", int, d.steps, "sampler steps")
    p.add_argument(
        "--sampler",
        choices=("ddim", "dpm"),
        default=d.sampler,
        help=f"sampler (default {d.sampler})",
    )
    p.add_argument(
        "--cfg-scale",
        type=float,
        default=d.cfg_scale,
        help=f"guidance for keyword sets (default {d.cfg_scale:g})",
    )
    p.add_argument(
        "--guidance",
        type=_guidance,
        default=d.guidance,
        help="guidance scales of the adherence study (default 1,3,5)",
    )
    add_value_argument(p, "--seed", int, d.seed, "kick i of every set uses seed + i")
    add_value_argument(p, "--batch-size", int, d.batch_size, "kicks per sampler batch")
    p.add_argument("--device", default=d.device, help=f"cpu, cuda, auto ... (default {d.device})")
    p.add_argument(
        "--threads",
        type=int,
        default=d.threads,
        help=f"torch threads (default {d.threads}: fastest on a shared, loaded machine)",
    )


def run_eval_command(args: argparse.Namespace) -> int:
    """``kickgen eval``: check the arguments, run, print where the report is."""
    import shlex
    import sys

    if args.steps < 1:
        raise CommandError(f"--steps {args.steps}: use at least 1")
    if args.batch_size < 1:
        raise CommandError(f"--batch-size {args.batch_size}: use at least 1")
    if args.threads is not None and args.threads < 1:
        raise CommandError(f"--threads {args.threads}: use at least 1")
    if args.keywords < 0:
        raise CommandError(f"--keywords {args.keywords}: use 0 or more")
    config = EvalConfig(n=args.n, n_prompt=args.n_prompt, n_keyword=args.n_keyword, keywords=args.keywords,
                        n_recon=args.n_recon, steps=args.steps, sampler=args.sampler, cfg_scale=args.cfg_scale,
                        guidance=tuple(args.guidance), seed=args.seed, batch_size=args.batch_size,
                        device=args.device, threads=args.threads)  # fmt: skip
    command = "kickgen " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0] else None
    if args.kicks is not None:
        results = run_kicks_eval(args.kicks, args.corpus, args.out, config, command=command)
        auc = results["benchmark"]["realism"]["kicks"].get("classifier")
        print(f"eval: {len(results['files'])} kicks ({len(results['skipped'])} skipped)"
              + (f", classifier AUC {auc['auc']:.2f}" if auc else "")
              + f"; report {Path(args.out) / REPORT_NAME}")  # fmt: skip
        return 0
    from kickgen.weights import find_checkpoint_dir

    if args.vae is not None:
        checkpoints, _ = find_checkpoint_dir(args.checkpoints, ("vocoder",))
        results = run_chain_eval(
            args.vae, checkpoints, args.corpus, args.out, config, command=command
        )
        rt = results["reconstruction"]["benchmark"]["realism"]["round_trip"]
        print(f"eval: VAE round trip log-mel {results['reconstruction']['vae_log_mel_db']['mean']:.2f} dB"
              + (f", classifier AUC {rt['classifier']['auc']:.2f}" if "classifier" in rt else "")
              + f"; report {Path(args.out) / REPORT_NAME}")  # fmt: skip
        return 0
    checkpoints, _ = find_checkpoint_dir(args.checkpoints, ("diffusion", "vae"))  # vocoder optional
    results = run_eval(checkpoints, args.corpus, args.out, config, command=command)
    print(f"eval: {results['kicks_generated']} kicks in {results['timings_s']['total']:.0f} s; "
          f"report {Path(args.out) / REPORT_NAME}")  # fmt: skip
    return 0


def register(subparsers) -> None:
    """Add ``kickgen eval`` (called by :mod:`kickgen.evaluation.cli`)."""
    p = subparsers.add_parser("eval", help="measure reconstruction, generation quality and prompt adherence",
                              description=__doc__.split("\n\n")[0])  # fmt: skip
    add_eval_arguments(p)
    p.set_defaults(func=run_eval_command)


__all__ = [
    "ADHERENCE",
    "EvalConfig",
    "EvalError",
    "EvalSplit",
    "load_eval_split",
    "load_kicks",
    "register",
    "run_chain_eval",
    "run_eval",
    "run_kicks_eval",
]
