"""Build the training corpus: sources → aligned, checked, labelled clips, splits, vocabulary, cache.

One call of :func:`build_corpus` (``kickgen data build``) does everything, deterministically for
a given seed and whatever the number of workers. This module gathers the sources, runs the stages
and writes the outputs; each stage has a module of its own, each importing only those before it:
:mod:`kickgen.data.plan` (the settings, one seeded task per clip) → :mod:`kickgen.data.clips`
(make one clip: load or draw, align, preprocess, check) → :mod:`kickgen.data.split` (keywords,
vocabulary, splits) → :mod:`kickgen.data.fits` (the fits, the procedural recipes) → this one.

1. **Sources**: the open kicks (``--open CACHE``: Debian packages, see
   :mod:`kickgen.data.open_sources`; a PyPI archive and, with ``--git-mirror DIR``, GitHub
   repositories, see :mod:`kickgen.data.open_archives`), a producer's library (``--library DIR``),
   source manifests (``--sources CSV``).
2. **Clips**: each source file as it is; ``augment`` variants of every real recording
   (:mod:`kickgen.data.augment`); planned in :mod:`kickgen.data.plan`, made in
   :mod:`kickgen.data.clips`.
3. **Fits** (:mod:`kickgen.data.fits`): the kick model of :mod:`kickgen.data.fit` fitted to
   every real *training* recording (the validation ones are never fitted), in ``workers``
   processes; ``fits.json`` keeps them, keyed by the clip's samples and the model's version, so
   a rebuild reuses them.
4. **Procedural kicks**: ``synth`` of them, ``fit_share`` drawn around the fits, the others from
   the style families (:mod:`kickgen.data.synth`); each kind kept or drawn again by an acceptance
   model that tilts its descriptor distribution toward the real training recordings'
   (:mod:`kickgen.data.realism`).
5. **Alignment and the reference preprocessing** (:mod:`kickgen.data.clips`): the leading
   silence is cut so the onset sits ``PREROLL_S`` (1 ms) into the clip, then resample/pad or
   trim to 2 s, -1 dBFS peak, 0.2 s fade.
6. **Repair and checks** (:mod:`kickgen.data.clips`): a real recording with digital clipping
   (flat runs at its peak) is repaired by :func:`declip` first, and the manifest says so. Every
   clip is measured (:mod:`kickgen.descriptors`); a clip whose onset is later than
   ``MAX_ONSET_S`` (5 ms), or that is silent or clipped, is dropped and reported. A clip the
   build makes (an augmented variant, a procedural kick, a DrumSynth or Kicker render) must also
   pass the eval's other sanity checks (:func:`check_made_kick`: loudest within 30 ms of its
   onset, decayed by 0.9 s): augmentations and procedural kicks are drawn again, a render that
   fails is dropped; recordings are kept as they are. With ``min_lead_db`` (``--min-lead-db``) a
   made clip's loudest sample in those 30 ms must also lead the rest by that much.
7. **Keywords** (:mod:`kickgen.data.split`): the names' keywords without the measurable ones,
   plus the keywords its measurements earn (:func:`kickgen.descriptors.measured_keywords`). The
   vocabulary keeps the keywords found in at least ``min_count`` groups (distinct drums, so that
   augmented copies do not count twice); "kick" is dropped (every clip is one).
8. **Splits by group**: within each kind of source, groups are ordered by a seeded hash and the
   first ``val_fraction`` of them go to validation, with all their layers, variants and
   augmentations. Real recordings are held out kit by kit (:func:`hold_out_real`): at least
   ``val_real_fraction`` of their groups, of the acoustic drums' and of the others' alike, and
   ``val_real`` recordings and ``val_kits`` kits, so the real validation figures rest on many
   drums, electronic ones among them, not a handful of layers of one.
9. **Output**: ``clips/{kind}/{id}.wav`` (float32), ``metadata.csv``, ``vocab.json``,
   ``cache/{train,val}.pt`` (float16 waves and log-mels), ``fits.json`` and ``build_report.json``.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from kickgen.audio import N_FRAMES, N_MELS, NUM_SAMPLES
from kickgen.data.clips import ClipResult, make_clips
from kickgen.data.collect import SourceClip, collect_library, read_sources
from kickgen.data.fits import fit_recordings, fit_summary, prepare_procedural, read_fits
from kickgen.data.plan import BuildConfig, plan_tasks
from kickgen.data.split import label_clips
from kickgen.descriptors import DESCRIPTOR_NAMES
from kickgen.errors import KickgenError

METADATA_FIELDS = (
    "id", "file", "source", "package", "kit", "licence", "keywords", "split", "group", "kind",
    "name", "name_keywords", "origin", "augmentation", *DESCRIPTOR_NAMES,
)  # fmt: skip


class BuildError(KickgenError):
    """The corpus could not be built."""


def gather_sources(
    config: BuildConfig, log=print
) -> tuple[list[SourceClip], list[tuple[str, str]], dict[str, str]]:
    """All source files of a build, the files skipped while finding them, and a status line
    per open source (found or missing; empty without ``open_cache``)."""
    sources: list[SourceClip] = []
    skipped: list[tuple[str, str]] = []
    status: dict[str, str] = {}
    if config.open_cache is not None:
        from kickgen.data.open_sources import fetch_open

        clips, skip, status = fetch_open(
            config.open_cache, git_mirrors=config.git_mirrors,
            progress=lambda m: log(f"fetch-open: {m}"),
        )  # fmt: skip
        for name, line in status.items():
            if line.startswith("missing"):
                log(f"fetch-open: {name}: {line}")
        sources += clips
        skipped += skip
    if config.library:
        clips, skip = collect_library(list(config.library))
        sources += clips
        skipped += skip
    for path in config.sources:
        sources += read_sources(path)
    return sources, skipped, status


def _prepare_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / "metadata.csv").is_file():
        raise BuildError(
            f"{out}: folder is not empty and holds no corpus; choose an empty or new folder"
        )
    for name in ("clips", "cache"):
        shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def build_corpus(config: BuildConfig, *, quiet: bool = False, command: str = "") -> dict:
    """Build the corpus described by ``config`` into ``config.out``; returns the build report
    (also written to ``build_report.json``, with ``command``: the command line that ran it)."""
    log = (lambda *a: None) if quiet else (lambda *a: print(*a, file=sys.stderr))
    start = time.perf_counter()
    out = Path(config.out).expanduser().resolve()
    sources, skipped, open_status = gather_sources(config, log)
    t_sources = time.perf_counter() - start
    if not sources and config.synth <= 0:
        raise BuildError("no sources: pass --open CACHE, --library DIR, --sources CSV or --synth N")
    cached_fits = read_fits(out)
    _prepare_out(out)  # after the sources are found: a failure there leaves no output folder
    tasks = plan_tasks(sources, config)
    results = make_clips([t for t in tasks if t.source], out, config.workers, quiet)
    t_clips = time.perf_counter() - start - t_sources
    fits = fit_recordings(results, config, out, cached_fits, quiet)
    t_fits = time.perf_counter() - start - t_sources - t_clips
    procedural, acceptance = prepare_procedural(
        [t for t in tasks if not t.source], results, fits, config, out, quiet
    )
    results += make_clips(procedural, out, config.workers, quiet)
    t_clips = time.perf_counter() - start - t_sources - t_fits

    kept = [r for r in results if not r.error]
    for r in results:
        if r.error:
            skipped.append(
                (r.task.source.file if r.task.source else r.task.id, f"{r.task.id}: {r.error}")
            )
    if not kept:
        raise BuildError("every clip was dropped; see the reasons above")
    metadata, vocab = label_clips(kept, config)
    write_metadata(out / "metadata.csv", metadata)
    vocab_json = {"vocab": vocab, "min_count": config.min_count}
    (out / "vocab.json").write_text(json.dumps(vocab_json, indent=1))
    counts = write_cache(out, metadata, {r.task.id: r for r in kept})

    report = {
        "config": {k: str(v) if isinstance(v, Path) else [str(p) for p in v] if isinstance(v, tuple) else v for k, v in asdict(config).items()},
        "command": command,
        "seconds": {"sources": round(t_sources, 1), "clips": round(t_clips, 1), "fits": round(t_fits, 1), "total": round(time.perf_counter() - start, 1)},
        "fits": fit_summary(fits),
        "acceptance": acceptance,
        "clips": len(metadata),
        "splits": counts,
        "kinds": dict(Counter(m["kind"] for m in metadata)),
        "real_recordings": sum(1 for m in metadata if m["kind"] == "real"),
        "open_sources": open_status,
        "vocab_size": len(vocab),
        "max_onset_ms": round(1000 * max(float(m["onset"]) for m in metadata), 3),
        "silent": sum(1 for m in metadata if float(m["silent"])),
        "clipped": sum(1 for m in metadata if float(m["clipped"])),
        "skipped": [{"file": f, "reason": reason} for f, reason in skipped],
    }  # fmt: skip
    (out / "build_report.json").write_text(json.dumps(report, indent=1))
    return report


def write_cache(
    out: Path, metadata: list[dict[str, str]], by_id: dict[str, ClipResult]
) -> dict[str, int]:
    """``cache/{train,val}.pt``: plain data a ``weights_only`` load accepts. Returns the counts."""
    (out / "cache").mkdir(exist_ok=True)
    counts = {}
    for name in ("train", "val"):
        rows = [m for m in metadata if m["split"] == name]
        counts[name] = len(rows)
        waves = [by_id[m["id"]].wave for m in rows]
        mels = [by_id[m["id"]].log_mel for m in rows]
        payload = {
            "ids": [m["id"] for m in rows],
            "waves": torch.from_numpy(np.stack(waves)) if rows else torch.zeros(0, NUM_SAMPLES, dtype=torch.float16),  # (N, 88200)
            "log_mels": torch.from_numpy(np.stack(mels)) if rows else torch.zeros(0, N_MELS, N_FRAMES, dtype=torch.float16),  # (N, 128, 173)
            "keywords": [m["keywords"].split() for m in rows],
            "groups": [m["group"] for m in rows],
        }  # fmt: skip
        tmp = out / "cache" / f".{name}.pt.tmp"
        torch.save(payload, tmp)
        tmp.replace(out / "cache" / f"{name}.pt")
    return counts


def write_metadata(path: Path, rows: list[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=METADATA_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def summary(report: dict) -> str:
    """A few lines for the end of ``kickgen data build``."""
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(report["kinds"].items()))
    lines = [
        f"corpus: {report['clips']} clips (train {report['splits']['train']}, val {report['splits']['val']}) in {report['seconds']['total']:.0f} s",
        f"kinds: {kinds}; distinct real recordings: {report['real_recordings']}",
        f"vocabulary: {report['vocab_size']} keywords; latest onset {report['max_onset_ms']:.2f} ms; silent {report['silent']}, clipped {report['clipped']}",
        f"skipped: {len(report['skipped'])} (see build_report.json)",
    ]
    fits = report.get("fits", {})
    if fits.get("n"):
        lines.insert(3, f"fits: {fits['n']} real training recordings, median log-mel distance {fits['median_log_mel_db']:.2f} dB, f0 at 25 ms within 10 % for {100 * fits['f0_25ms_within_10pct']:.0f} %")  # fmt: skip
    for name, line in report.get("open_sources", {}).items():
        if line.startswith("missing"):
            lines.append(f"  open source {name} {line}")
    for item in report["skipped"][:12]:
        lines.append(f"  skipped {item['file']}: {item['reason']}")
    return "\n".join(lines)
