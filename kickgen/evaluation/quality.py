"""``kickgen eval``: how good the shipped models are, measured on the corpus's validation split.

    kickgen eval --checkpoints checkpoints --corpus /work/corpus --out eval_out
    kickgen eval --kicks DIR --corpus /work/corpus --out bench_out   # any folder of kicks

This module holds the runs and the command: :func:`run_eval` (the whole evaluation),
:func:`run_chain_eval` (``--vae FILE``: a VAE candidate's chain alone), :func:`run_kicks_eval`
(``--kicks DIR``: a folder of kick files, no models needed), their arguments and
:func:`run_eval_command`. Each writes ``OUT/results.json`` (machines), ``OUT/report.md`` (people,
:mod:`kickgen.evaluation.report`) and PNGs. The parts they run, each in a module of its own:

1. Reconstruction on validation recordings, real ones first
   (:mod:`kickgen.evaluation.reconstruction`): the VAE's log-mel error, each vocoder from the true
   log-mels and after the VAE round trip, variations at strength 0.
2. Generation at the default settings with fixed seeds, prompt adherence (``ADHERENCE`` at
   guidance scales 1, 3 and 5) and the styles (:mod:`kickgen.evaluation.generation`).
3. The kick benchmark every set goes through (:mod:`kickgen.evaluation.benchmark`):
   per-descriptor medians and quartiles (pitch envelope first) and each set against the real
   recordings as a whole (kernel distance, classifier two-sample AUC, Fréchet distance,
   diversity).

Their settings, the corpus split and the reference set come from :mod:`kickgen.evaluation.inputs`.
Kick i of every set uses seed ``seed + i``, so sets are paired kick by kick and a re-run gives the
same numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from kickgen.errors import CommandError
from kickgen.evaluation import metrics, report
from kickgen.evaluation.benchmark import benchmark_against_real, sanity_summary
from kickgen.evaluation.generation import (
    KickSets,
    adherence,
    generation,
    keyword_counts,
    plan_sets,
    style_words,
    styles,
    top_keywords,
)
from kickgen.evaluation.inputs import (
    EvalConfig,
    EvalError,
    Reference,
    load_eval_split,
    training_floor,
)
from kickgen.evaluation.reconstruction import reconstruction, variation_at_zero
from kickgen.output import make_folder
from kickgen.pipeline import torch_threads
from kickgen.progress import Progress
from kickgen.sampling import GUIDANCE_FROM, GUIDANCE_UNTIL

RESULTS_NAME = "results.json"
REPORT_NAME = "report.md"

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


def _write_results(out: Path, results: dict, render: Callable[[dict], str]) -> dict:
    """Write ``results`` (as JSON: no ``_`` keys, no NaN) to ``OUT/results.json`` and
    ``render(results)`` to ``OUT/report.md``; returns the results as written."""
    results = _to_json(results)
    (out / RESULTS_NAME).write_text(json.dumps(results, indent=2) + "\n")
    (out / REPORT_NAME).write_text(render(results))
    return results


def _pitch_track_figures(out: Path, sets: dict[str, torch.Tensor]) -> dict[str, str]:
    """Write the pitch-track PNG of ``sets`` (name → waves ``(N, 88200)``); returns
    ``{"pitch_tracks": file}``, empty without matplotlib (the report says so)."""
    try:
        report.pitch_track_figure(out / report.PITCH_TRACKS_PNG, sets)
    except ImportError:
        return {}
    return {"pitch_tracks": report.PITCH_TRACKS_PNG}


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
    return _write_results(out, results, report.markdown)


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
                   "reconstruction": recon}  # fmt: skip
        results["figures"] = _pitch_track_figures(out, {
            "recordings": examples["pitch/recordings"], "vocoder (true mel)": examples["pitch/vocoder"],
            "VAE round trip": examples["pitch/round_trip"]})  # fmt: skip
        results["machine"] = report.machine_description()
        results["timings_s"] = {"total": time.perf_counter() - started}
    return _write_results(out, results, report.chain_markdown)


# --------------------------------------------------------------------------- any folder of kicks

KICK_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg")


def load_kicks(folder: Path) -> tuple[list[str], torch.Tensor, list[tuple[str, str]]]:
    """Every audio file of ``folder`` (recursively), prepared as the corpus prepares its clips
    (mono 44.1 kHz, onset aligned to 1 ms, the reference preprocessing), so a folder of the
    validation recordings scores as they do. Returns names, ``(N, 88200)`` waves and the files
    skipped with their reasons."""
    from kickgen.audio import SAMPLE_RATE, AudioError, preprocess
    from kickgen.data.clips import align_onset
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
            "kicks": sanity_summary(waves, desc),
            "validation_real": sanity_summary(val.waves[val_real], val_desc_real),
        },  # fmt: skip
    }
    results["figures"] = _pitch_track_figures(
        out, {"real (validation)": val.waves[val_real], "your kicks": waves}
    )
    results["machine"] = report.machine_description()
    results["seconds"] = time.perf_counter() - started
    return _write_results(out, results, report.kicks_markdown)


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
    "EvalConfig",
    "EvalError",
    "load_eval_split",
    "load_kicks",
    "register",
    "run_chain_eval",
    "run_eval",
    "run_kicks_eval",
]
