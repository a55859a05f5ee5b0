"""``kickgen data card``: the dataset card (DATASET.md) and a figure of example spectrograms.

Every figure on the card is computed from the corpus folder (``metadata.csv``, ``vocab.json``,
``build_report.json``), so the card always describes the corpus it was made from.
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from kickgen.data.corpus import load_vocab, read_metadata
from kickgen.descriptors import KEYWORD_RULES

KIND_ORDER = ("real", "augmented", "drumsynth", "kicker", "synth")
DESCRIPTOR_RANGES = (
    ("body_pitch", "body pitch (Hz)", "{:.0f}"),
    ("pitch_glide", "pitch glide (semitones)", "{:.1f}"),
    ("decay_40", "decay to -40 dB (s)", "{:.2f}"),
    ("click_db", "click (dB)", "{:.0f}"),
    ("harmonic_db", "harmonics (dB)", "{:.0f}"),
    ("sub_ratio", "sub ratio", "{:.2f}"),
)


def _table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _kinds(rows: list[dict[str, str]]) -> list[str]:
    present = {r["kind"] for r in rows}
    return [k for k in KIND_ORDER if k in present] + sorted(present - set(KIND_ORDER))


def write_figure(corpus: Path, rows: list[dict[str, str]], png: Path, n: int = 16) -> Path:
    """A grid of log-mel spectrograms of example clips (one per keyword where possible)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kickgen.audio import N_FRAMES, SAMPLE_RATE, load_audio, log_mel

    wanted = ["808", "909", "deep", "punchy", "distorted", "acoustic", "clicky", "long", "short", "trap", "techno", "soft"]  # fmt: skip
    picks, used = [], set()
    kinds = _kinds(rows)
    per_kind = max(n // max(len(kinds), 1), 1)  # spread the examples over the kinds
    for kind in kinds:
        taken = 0
        for keyword in wanted:
            for r in rows:
                if r["kind"] == kind and keyword in r["keywords"].split() and r["id"] not in used:
                    picks.append((r, keyword))
                    used.add(r["id"])
                    taken += 1
                    break
            if taken >= per_kind or len(picks) >= n:
                break
    for r in reversed(rows):  # fill up from the end (synthesized kicks come last)
        if len(picks) >= n:
            break
        if r["id"] not in used:
            picks.append((r, r["keywords"].split()[0] if r["keywords"] else r["kind"]))
            used.add(r["id"])
    cols = 4
    fig, axes = plt.subplots(
        (len(picks) + cols - 1) // cols, cols, figsize=(10, 2.0 * ((len(picks) + cols - 1) // cols))
    )
    seconds = N_FRAMES * 512 / SAMPLE_RATE
    for ax, (row, keyword) in zip(np.ravel(axes), picks, strict=False):
        mel = log_mel(load_audio(corpus / row["file"])).numpy()
        ax.imshow(
            mel, origin="lower", aspect="auto", extent=(0, seconds, 0, mel.shape[0]), cmap="magma"
        )
        ax.set_title(
            f"{row['kind']}: {' '.join(row['keywords'].split()[:3]) or keyword}", fontsize=8
        )
        ax.set_xlim(0, 1.0)
        ax.tick_params(labelsize=6)
    for ax in np.ravel(axes)[len(picks) :]:
        ax.axis("off")
    fig.supylabel("mel band", fontsize=8)
    return save_figure(fig, png, "time (s, first second)")


def save_figure(fig, png: Path, xlabel: str) -> Path:
    """Label the time axis, lay out, write ``png`` (its folder made) and close the figure."""
    import matplotlib.pyplot as plt

    fig.supxlabel(xlabel, fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=60)
    plt.close(fig)
    return png


def fits_png_of(png: Path) -> Path:
    """Where the fitted-vs-recording figure goes: beside the examples figure."""
    return png.with_name(f"{png.stem}_fits{png.suffix}")


def read_fits(corpus: Path) -> dict:
    """``fits.json`` of a corpus (``{}`` when the build fitted nothing)."""
    path = corpus / "fits.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_fits_figure(corpus: Path, fits: list[dict], png: Path, n: int = 4) -> Path | None:
    """Log-mel spectrograms of ``n`` recordings (spread over the range of fit quality) beside
    their fitted resyntheses; None when there are no fits."""
    if not fits:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from kickgen.audio import N_FRAMES, SAMPLE_RATE, load_audio, log_mel
    from kickgen.data.fit import KickFit, render_fit
    from kickgen.descriptors import onset_index

    order = sorted(fits, key=lambda e: e["log_mel_db"])
    picks = [order[round(q * (len(order) - 1))] for q in np.linspace(0.1, 0.9, min(n, len(order)))]
    fig, axes = plt.subplots(len(picks), 2, figsize=(7, 1.9 * len(picks)), squeeze=False)
    seconds = N_FRAMES * 512 / SAMPLE_RATE
    for row, entry in zip(axes, picks, strict=True):
        target = load_audio(corpus / "clips" / "real" / f"{entry['id']}.wav", raw=True).numpy()
        onset = int(onset_index(target)[0])
        wave = render_fit(KickFit.from_dict(entry["fit"]), target.size, onset, 0)
        for ax, x, title in ((row[0], target, f"{entry['id']} (recording)"),
                             (row[1], wave, f"fit: {entry['log_mel_db']:.2f} dB log-mel")):  # fmt: skip
            mel = log_mel(torch.from_numpy(np.asarray(x, np.float32))).numpy()
            ax.imshow(mel, origin="lower", aspect="auto", extent=(0, seconds, 0, mel.shape[0]),
                      cmap="magma", vmin=mel.max() - 80 / 4.343, vmax=mel.max())  # fmt: skip
            ax.set_title(title, fontsize=8)
            ax.set_xlim(0, 0.6)
            ax.tick_params(labelsize=6)
    return save_figure(fig, png, "time (s)")


def fit_section(corpus: Path, rows: list[dict[str, str]], png_rel: str | None) -> list[str]:
    """The card's account of the fits and of how real the synthesized kicks look."""
    from kickgen.data.realism import realism_table

    data = read_fits(corpus)
    fits = data.get("fits", [])
    out = ["## Fits of the real training recordings", ""]
    if fits:
        dist = np.array([e["log_mel_db"] for e in fits])
        f0 = np.array([e["f0_25ms"] for e in fits], dtype=np.float64)
        hits = np.abs(f0[:, 1] / np.maximum(f0[:, 0], 1e-9) - 1.0) <= 0.10
        out += [
            f"Every real training recording ({len(fits)}; the validation recordings are never "
            "fitted) is fitted by `kickgen.data.fit`: a differentiable kick model (body oscillator "
            "with a two-time-constant pitch envelope, amplitude envelope, harmonics 2–8, click, "
            "noise shaped in time and frequency) whose pitch envelope starts from the body's pitch "
            "track and which Adam then refines on a multi-resolution spectral loss plus the pitch "
            "envelope. The fits are stored in `fits.json` (keyed by the clip's samples and the "
            "model's version, so a rebuild reuses them).",
            "",
            _table(["measure", "value", "target"], [
                ["median log-mel distance, resynthesis vs recording (dB, 80 dB floor)", f"**{np.median(dist):.2f}**", "≤ 3"],
                ["quartiles (dB)", f"{np.percentile(dist, 25):.2f} – {np.percentile(dist, 75):.2f}", ""],
                ["body frequency at 25 ms within 10 % of the recording's", f"**{100 * hits.mean():.0f} %** ({hits.sum()} of {len(hits)})", "≥ 80 %"],
                ["median seconds per fit (one thread of a shared machine)", f"{np.median([e.get('seconds', 0) for e in fits]):.1f}", ""],
            ]),
            "",
        ]  # fmt: skip
        if png_rel:
            out += [f"![recordings and their fits]({png_rel})", "",
                    "Log-mel spectrograms (80 dB range) of four recordings, from a close fit to a "
                    "loose one, beside their fitted resyntheses.", ""]  # fmt: skip
    else:
        out += ["No real training recordings: nothing was fitted.", ""]
    n_fitted = sum(1 for r in rows if r["kind"] == "synth" and r["kit"] == "fitted")
    out += [
        "## Real vs synthesized",
        "",
        f"Of the procedural kicks, {n_fitted} are drawn around the fits (one fit, or a mix of two "
        "fits of one kit, each parameter moved within 30 % of its spread over the fits; keywords "
        "measured, plus the style words of the recordings' names) and the others come from the "
        "style families. Both are calibrated to the real training recordings: a kick is kept "
        "with the probability that a logistic density-ratio model of its kind (the real training "
        "recordings against 240 uncalibrated kicks of that kind) gives it, else drawn again, up "
        "to 16 times (`kickgen.data.realism`). Before this (style families alone, uncalibrated), "
        "the synthesized kicks of the corpus scored 0.89 against all real recordings and 0.95 "
        "against the validation ones on the same measure.",
        "",
        "Classifier two-sample AUC (the eval's `classifier_auc`: 5-fold cross-validated logistic "
        "regression on the descriptors `FEATURES` of `kickgen.evaluation.metrics`, pitch envelope "
        "included; up to 400 clips of a kind; 0.5 = indistinguishable) of each kind against the "
        "real recordings, all of them and the validation ones (which no fit saw); computed from "
        "`metadata.csv` by `kickgen data card` (`kickgen.data.realism.realism_table`):",
        "",
        "```bash",
        f"python -m kickgen data card {corpus} --out DATASET.md   # this table",
        f"python -m kickgen eval --kicks {corpus}/clips/synth --corpus {corpus} --out eval_synth   # the eval's own run: synth vs the real validation recordings",
        "```",
        "",
        _table(["set", "clips", "AUC vs all real recordings", "AUC vs real validation recordings"],
               [[r["set"], r["n"], "–" if r["auc_real"] is None else f"{r['auc_real']:.2f}",
                 "–" if r["auc_val_real"] is None else f"{r['auc_val_real']:.2f}"]
                for r in realism_table(rows)]),
        "",
    ]  # fmt: skip
    return out


def archive_notes(sources: set[str], status: dict[str, str]) -> list[str]:
    """The card's notes on the licences of the sources outside Debian's sample packages that
    the corpus holds, and the open sources its build did not find."""
    from kickgen.data.open_archives import FOXDOT, FOXDOT_NOTE, REPOSITORIES
    from kickgen.data.open_sources import STK_LICENCE

    notes = [
        f"- **{r.source}** (github.com/{r.repo}, {r.licence}): {r.note}."
        for r in REPOSITORIES
        if r.source in sources
    ]
    if "foxdot" in sources:
        notes.append(f"- **foxdot** (PyPI `{FOXDOT}` source archive, CC-BY-SA-4.0): {FOXDOT_NOTE}.")
    if "stk" in sources:
        notes.append(
            f"- **stk** (Debian stk, `rawwaves/bassdrum.raw`, {STK_LICENCE}): the copyright file's "
            "licence is the MIT licence's text plus a request, which it calls not binding, to send "
            "changes to the authors; the file is headerless big-endian 16-bit at 22,050 Hz."
        )
    missing = [
        f"- **{name}** {line}" for name, line in status.items() if line.startswith("missing")
    ]
    out = []
    if notes:
        out += ["Sources outside Debian's sample packages:", "", *notes, ""]
    if missing:
        out += ["Open sources the build did not find (the corpus has none of their kicks):", ""]
        out += [*missing, ""]
    return out


def render_card(corpus: Path, png_rel: str, fits_png_rel: str | None = None) -> str:
    """The card's markdown for the corpus in ``corpus``."""
    rows = read_metadata(corpus)
    vocab = load_vocab(corpus)
    report_path = corpus / "build_report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    kinds = _kinds(rows)
    by_split = Counter(r["split"] for r in rows)
    real = [r for r in rows if r["kind"] == "real"]
    cfg = report.get("config", {})
    seconds = report.get("seconds", {})

    out = ["# Dataset card: the kickgen kick corpus", ""]
    out += [
        "The corpus the shipped kickgen models are trained on: open kick recordings from Debian "
        "packages and, where the build found them, two GitHub repositories and a PyPI source "
        "archive (see `../shared/DATA.md`), their augmentations, renders of open DrumSynth and "
        "LMMS Kicker patches, and kicks from kickgen's own synthesizer. This card is generated "
        "by `kickgen data card` from the corpus folder; every number below comes from it.",
        "",
        "## How it was built",
        "",
        "```bash",
        (
            report.get("command")
            or "python -m kickgen data build --open CACHE --git-mirror DIR --out CORPUS"
        )
        + "   # from nothing: downloads, renders, builds",
        f"python -m kickgen data card {corpus} --out DATASET.md --png docs/dataset_examples.png",
        "```",
        "",
    ]
    if cfg.get("out") and Path(cfg["out"]).resolve() != corpus.resolve():
        out += [f"The build wrote `{cfg['out']}`; the folder was then moved to `{corpus}`.", ""]
    if seconds:
        out.append(
            f"Wall time of that build: **{seconds.get('total', 0):.0f} s** "
            f"(finding and rendering sources {seconds.get('sources', 0):.0f} s, clips "
            f"{seconds.get('clips', 0):.0f} s, fits {seconds.get('fits', 0):.0f} s) with {cfg.get('workers', '?')} worker processes on a "
            f"machine with {os.cpu_count()} cores shared with other jobs. Settings: "
            + ", ".join(f"`{k}={cfg[k]}`" for k in ("synth", "augment", "val_fraction", "val_real_fraction", "val_real", "val_kits", "min_count", "fit_share", "fit_steps", "min_lead_db", "seed") if k in cfg)
            + "."
        )  # fmt: skip
        out.append("")
    out += [
        "Each clip is 2 s, 44.1 kHz, mono float32 WAV, onset-aligned (leading silence cut to 1 ms "
        "before the onset), then the reference preprocessing (-1 dBFS peak, 0.2 s linear fade-out). "
        "`cache/{train,val}.pt` holds the same clips as float16 waveforms and log-mels "
        "(128 × 173) for training; read them with `kickgen.data.corpus.load_split`.",
        "",
        "## Counts",
        "",
    ]
    count_rows = [[k, sum(1 for r in rows if r["kind"] == k and r["split"] == "train"),
                   sum(1 for r in rows if r["kind"] == k and r["split"] == "val"),
                   len({r["group"] for r in rows if r["kind"] == k})] for k in kinds]  # fmt: skip
    count_rows.append(
        ["**all**", by_split["train"], by_split["val"], len({r["group"] for r in rows})]
    )
    out += [_table(["kind", "train clips", "val clips", "groups"], count_rows), ""]
    onsets = [float(r["onset"]) * 1000 for r in rows]
    out += [
        f"- Distinct real recordings: **{len(real)}** (after removing byte-identical files and "
        "recordings whose first 0.4 s after the attack correlate 0.97 or more with a recording "
        "of another drum), "
        f"each with {cfg.get('augment', '?')} augmented variants in its group.",
        f"- Onsets: latest {max(onsets):.2f} ms after the clip start (limit 5 ms); "
        f"silent clips: {sum(1 for r in rows if float(r['silent']))}; clipped clips: "
        f"{sum(1 for r in rows if float(r['clipped']))}.",
        "- Kinds: *real* = a recording as published; *augmented* = a real recording pitch-shifted "
        "(±3 semitones), driven, tilted, transient-shaped or shortened; *drumsynth* / *kicker* = an "
        "LMMS patch rendered by kickgen's renderers at 3 tunings × 3 stretches; *synth* = kickgen's "
        "procedural kicks: drawn around the fits of the real training recordings (kit `fitted`) "
        "or from the style families 808, 909, 707, house, techno, trap, hardstyle, gabber, dnb, "
        "acoustic, lofi, electro, calibrated to the real recordings (see *Real vs synthesized*).",
        "- Splits are by group: all velocity layers of one drum, every render of one patch and "
        f"every augmentation of one recording share a split. Validation takes {cfg.get('val_fraction', '?')} "
        "of the groups of each synthesized or rendered kind, chosen by a seeded hash. Real recordings "
        "are held out kit by kit (one group of each kit per round, kits and groups in a seeded hash "
        "order), first the acoustic drums (named acoustic) and the others apart until each holds "
        f"{cfg.get('val_real_fraction', '?')} of its groups, then all together until validation holds at least "
        f"{cfg.get('val_real', '?')} recordings and at least {cfg.get('val_kits', '?')} kits; the "
        "augmentations of a held-out recording go with it.",
        "",
    ]  # fmt: skip
    val_real = [r for r in rows if r["kind"] == "real" and r["split"] == "val"]
    if val_real:
        by_group: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for r in val_real:
            by_group[(r["source"], r["kit"], r["group"])].append(Path(r["name"] or r["file"]).name)
        out += [
            f"### Real validation recordings ({len(val_real)} recordings, {len(by_group)} drums, "
            f"{len({(s, k) for s, k, _ in by_group})} kits)",
            "",
            _table(["source", "kit", "drum (group)", "recordings"],
                   [[s, k, g, ", ".join(f"`{n}`" for n in sorted(names))] for (s, k, g), names in sorted(by_group.items())]),
            "",
        ]  # fmt: skip
    out += [
        "## Sources and licences",
        "",
    ]
    by_source: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_source[(r["source"], r["package"] or "-", r["licence"])].append(r)
    src_rows = []
    for (source, package, licence), members in sorted(by_source.items()):
        originals = [m for m in members if m["kind"] != "augmented"]
        src_rows.append([source, package, licence, len(originals), len(members)])
    out += [
        _table(["source", "origin (Debian package, repository@commit, PyPI)", "licence", "files / renders", "clips (with augmentations)"], src_rows),
        "",
        "Licences come from each Debian package's `usr/share/doc/PKG/copyright` (the DEP-5 paragraph "
        "that matches the file or its kit) and, for the freepats kick whose notes name one, from its "
        "`.txt` notes. The synthesized kicks are kickgen's own (MIT).",
        "",
    ]  # fmt: skip
    out += archive_notes({r["source"] for r in rows}, report.get("open_sources", {}))
    declipped = [r for r in rows if r["kind"] == "real" and "declipped=" in r["augmentation"]]
    if declipped:
        out += [
            f"**Repaired recordings.** {len(declipped)} recordings are digitally clipped as "
            "published (runs of samples held at the peak). `build` replaces each flat run by a "
            "parabola that follows the slopes around it, capped at 25 % above the clipped level, "
            "so no clip in the corpus holds a flat top; the manifest marks them "
            "(`augmentation` column, `declipped=N` samples): "
            + ", ".join(f"`{Path(r['name']).name}`" for r in declipped)
            + ".",
            "",
        ]  # fmt: skip
    skipped = report.get("skipped", [])
    cache = cfg.get("open_cache") or ""

    def short(text: str) -> str:  # paths inside the download cache, relative to it
        return text.replace(f"{cache}/", "CACHE/") if cache else text

    if skipped:
        out += ["## Files left out", "", _table(["file", "reason"], [[f"`{short(s['file'])}`", short(s["reason"]).replace("|", "/")] for s in skipped]), ""]  # fmt: skip

    out += ["## Keywords", ""]
    counts = Counter(k for r in rows for k in r["keywords"].split())
    groups: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        for k in r["keywords"].split():
            groups[k].add(r["group"])
    kinds_with = {k: Counter(r["kind"] for r in rows if k in r["keywords"].split()) for k in vocab}
    out += [
        f"Vocabulary: {len(vocab)} keywords, each found in at least {json.loads((corpus / 'vocab.json').read_text()).get('min_count', '?')} "
        "groups (distinct drums, so augmented copies do not count twice). Keywords from names "
        "pass through `kickgen.keywords` (aliases such as bd → kick, tr808 → 808, dist → distorted, "
        "tek → techno; curated kit words such as GMRockKit → acoustic); \"kick\" itself is dropped "
        "because every clip is one.",
        "",
        _table(
            ["keyword", "clips", "groups", "by kind"],
            [[k, counts[k], len(groups[k]), ", ".join(f"{kind} {n}" for kind, n in kinds_with[k].most_common())] for k in vocab],
        ),
        "",
        "### Measured keywords",
        "",
        "These keywords are attached by measurement only (`kickgen.descriptors.KEYWORD_RULES`), "
        "for every kind of clip, and replace what a name says: a file called \"deep\" is deep "
        "here only if its body pitch is low. Augmented variants are measured again, so a pitch "
        "shift up can take \"deep\" away and a shortened decay adds \"short\".",
        "",
        _table(["keyword", "rule"], [[rule.keyword, rule.rule] for rule in KEYWORD_RULES]),
        "",
        "Descriptors (`kickgen.descriptors`): body pitch = median frequency of the low-passed body "
        "from 40 ms after the onset; decay_40 = time from the onset until the RMS envelope stays "
        "40 dB below its maximum; click_db = share of the first 20 ms's energy above 1 kHz; "
        "punch = energy of the first 50 ms over the first 300 ms; harmonic_db = harmonics 2–8 "
        "of the body pitch over the fundamental; crest_db = peak over RMS of the active part; "
        "sub_ratio = share of energy below 60 Hz.",
        "",
        "## Descriptor ranges (5th percentile / median / 95th percentile)",
        "",
    ]  # fmt: skip
    range_rows = []
    for key, label, fmt in DESCRIPTOR_RANGES:
        cells = [label]
        for kind in kinds:
            values = np.array([float(r[key]) for r in rows if r["kind"] == kind])
            p5, p50, p95 = np.percentile(values, [5, 50, 95])
            cells.append(" / ".join(fmt.format(v) for v in (p5, p50, p95)))
        range_rows.append(cells)
    out += [_table(["descriptor", *kinds], range_rows), ""]
    out += fit_section(corpus, rows, fits_png_rel)
    out += [
        "## Examples",
        "",
        f"![log-mel spectrograms of example clips]({png_rel})",
        "",
        "Log-mel spectrograms (the model's input features, first second) of clips of each kind, "
        "titled with their first keywords.",
        "",
        "## Limits",
        "",
        f"- Only {len(real)} distinct real kick recordings are available from the allowed "
        "sources; many are velocity layers of the same drum. Synthesis and augmentation carry "
        "most of the corpus, so the model learns kickgen's synthesizer's styles more than any "
        "commercial library's.",
        "- Names are the designers' words; measured keywords can disagree with them (a kit's "
        "\"Kick Hard\" layer may measure as a clean, dull attack).",
        "- Style keywords of synthesized kicks (808, techno, …) name the family of parameter "
        "distributions they were drawn from, or the style words in the names of the recordings "
        "whose fits they were drawn around, not a measured property.",
        "- The kicks drawn around the fits can only be as varied as the fitted recordings: "
        "mixes stay within one kit and moves within a share of each parameter's spread.",
        "",
    ]  # fmt: skip
    return "\n".join(out)


def write_card(
    corpus: str | Path,
    out: str | Path = "DATASET.md",
    png: str | Path = "docs/dataset_examples.png",
) -> tuple[Path, Path]:
    """Write the card and its figure; returns both paths."""
    corpus, out, png = Path(corpus), Path(out), Path(png)
    rows = read_metadata(corpus)
    write_figure(corpus, rows, png)
    fits_png = write_fits_figure(corpus, read_fits(corpus).get("fits", []), fits_png_of(png))

    def relative(path: Path) -> str:
        try:
            return os.path.relpath(path, out.parent)
        except ValueError:
            return str(path)

    text = render_card(corpus, relative(png), relative(fits_png) if fits_png else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out, png
