"""Eval output for people: the markdown report, the PNG figures and WAV examples.

matplotlib (the ``eval`` extra) is imported inside :func:`write_figures`; without it the figures
are skipped and the report says so. The parts' constants (the benchmark's descriptors and
intervals, the grid's prompts, the styles' threshold) come from
:mod:`kickgen.evaluation.benchmark` and :mod:`kickgen.evaluation.generation`; the runs in
:mod:`kickgen.evaluation.quality` call this module, never the other way.
"""

from __future__ import annotations

import os
import platform
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from kickgen.audio import write_wav
from kickgen.evaluation import metrics
from kickgen.evaluation.benchmark import (
    INTERVAL_LEVEL,
    LATE_PEAK_DB,
    SWELL_DB,
    TABLE_DESCRIPTORS,
    late_key,
)
from kickgen.evaluation.generation import GRID_PROMPTS, STYLE_MIN_CLIPS

SPECTROGRAMS_PNG = "spectrograms.png"
RECONSTRUCTION_PNG = "reconstruction.png"
HISTOGRAMS_PNG = "histograms.png"
PITCH_TRACKS_PNG = "pitch_tracks.png"
PITCH_TRACK_TIMES = np.linspace(0.002, 0.200, 100)  # s after the onset
RECON_LABELS = {
    "recording": "recording",
    "true_mel/hifigan": "HiFi-GAN (true mel)",
    "true_mel/griffin_lim": "Griffin-Lim (true mel)",
    "true_mel/reference_griffin_lim": "reference GL (true mel)",
    "vae_mel/hifigan": "VAE → HiFi-GAN",
}
METHOD_LABELS = {"hifigan": "HiFi-GAN", "griffin_lim": "kickgen Griffin-Lim (NNLS + fast GL, 32 it.)",
                 "reference_griffin_lim": "reference Griffin-Lim (pinv + 64 it.)"}  # fmt: skip


def machine_description() -> str:
    """One line: CPU model, logical cores, torch threads, torch version, OS."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} logical cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), {platform.system()} {platform.release()}")  # fmt: skip


# --------------------------------------------------------------------------- figures


def _mel_image(ax, log_mel: torch.Tensor, title: str) -> None:
    db = log_mel.double() * metrics.DB_PER_LOG
    db = (db - db.max()).clamp(min=-metrics.FLOOR_DB).numpy()
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-metrics.FLOOR_DB, vmax=0.0)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def write_figures(
    out: Path, sets, gen: dict, val, recon_examples: dict[str, torch.Tensor], config
) -> dict:
    """Write the PNGs and WAV examples; returns ``{name: relative path}`` (empty without matplotlib)."""
    written: dict[str, str] = {}
    k = config.examples
    # WAV examples first: they need no extra
    ex_dir = out / "examples"
    ex_dir.mkdir(exist_ok=True)
    rows: list[tuple[str, torch.Tensor]] = []
    real = val.waves[gen["_grid_real"][:k]]
    rows.append(("real (validation)", real))
    rows.append(("unconditional", sets.get("", 1.0, k)[0]))
    for prompt in GRID_PROMPTS:
        if prompt in sets.pipe.vocab:
            rows.append(
                (f'"{prompt}" @ {config.cfg_scale:g}', sets.get(prompt, config.cfg_scale, k)[0])
            )
    for label, waves in rows:
        stem = label.split(" @")[0].strip('"').split(" ")[0]
        for i, w in enumerate(waves):
            write_wav(ex_dir / f"{stem}_{i:02d}.wav", w)
    for key, waves in recon_examples.items():
        if key.startswith("pitch/"):
            continue  # the pitch-track figure's sets: every clip, already written as their methods
        stem = key.replace("/", "_")
        for i, w in enumerate(waves[:2]):
            write_wav(ex_dir / f"recon_{stem}_{i:02d}.wav", w)
    written["examples"] = "examples/"

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written

    # 1. spectrogram grid: real vs generated, one row per set
    fig, axes = plt.subplots(len(rows), k, figsize=(1.6 * k, 1.3 * len(rows)), squeeze=False)
    for r, (label, waves) in enumerate(rows):
        mels = metrics.log_mels_of(waves)
        for c in range(k):
            ax = axes[r][c]
            if c < len(mels):
                _mel_image(ax, mels[c], f"{label} #{c}" if c == 0 else f"#{c}")
            else:
                ax.axis("off")
    fig.suptitle(
        "log-mel (dB re peak, 80 dB range): real validation kicks vs generated, same seeds per column",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(out / SPECTROGRAMS_PNG, dpi=110)
    plt.close(fig)
    written["spectrograms"] = SPECTROGRAMS_PNG

    # 2. reconstruction grid: recording vs vocoders
    keys = [key for key in RECON_LABELS if key in recon_examples]
    n_clips = min(4, len(recon_examples.get("recording", [])))
    if keys and n_clips:
        fig, axes = plt.subplots(
            n_clips, len(keys), figsize=(2.0 * len(keys), 1.5 * n_clips), squeeze=False
        )
        for c, key in enumerate(keys):
            mels = metrics.log_mels_of(recon_examples[key][:n_clips])
            for r in range(n_clips):
                _mel_image(axes[r][c], mels[r], RECON_LABELS[key] if r == 0 else "")
        fig.suptitle(
            "reconstruction of real validation recordings (log-mel of each output)", fontsize=8
        )
        fig.tight_layout()
        fig.savefig(out / RECONSTRUCTION_PNG, dpi=110)
        plt.close(fig)
        written["reconstruction"] = RECONSTRUCTION_PNG

    # 3. descriptor histograms: real validation vs generated vs naive sine
    named = gen["_sets"]
    feats = [name for name, _ in metrics.FEATURES]
    cols = 5
    n_rows = (len(feats) + cols - 1) // cols
    fig, axes = plt.subplots(n_rows, cols, figsize=(3.0 * cols, 2.2 * n_rows), squeeze=False)
    for i, name in enumerate(feats):
        ax = axes[i // cols][i % cols]
        data = {label: metrics.feature_matrix(d)[:, i] for label, d in named.items()}
        lo = min(np.percentile(v, 1) for v in data.values())
        hi = max(np.percentile(v, 99) for v in data.values())
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 30)
        for label, v in data.items():
            ax.hist(
                np.clip(v, bins[0], bins[-1]), bins=bins, density=True, histtype="step", label=label
            )
        scale = dict(metrics.FEATURES)[name]
        ax.set_title(f"log {name}" if scale == "log" else name, fontsize=8)
        ax.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=6)
    for j in range(len(feats), axes.size):
        axes[j // cols][j % cols].axis("off")
    fig.tight_layout()
    fig.savefig(out / HISTOGRAMS_PNG, dpi=110)
    plt.close(fig)
    written["histograms"] = HISTOGRAMS_PNG

    # 4. pitch tracks: real recordings, what the vocoder and the VAE round trip make of them, generated
    tracks = {"real (validation)": gen["_pitch"]["validation_real"]}
    for key, label in (
        ("pitch/vocoder", "vocoder (true mel)"),
        ("pitch/round_trip", "VAE round trip"),
    ):
        if key in recon_examples:
            tracks[label] = recon_examples[key]
    tracks["generated"] = gen["_pitch"]["generated"]
    pitch_track_figure(out / PITCH_TRACKS_PNG, tracks)
    written["pitch_tracks"] = PITCH_TRACKS_PNG
    return written


def pitch_track_figure(
    path: Path, sets: dict[str, torch.Tensor | np.ndarray], examples: int = 12
) -> None:
    """The pitch envelope of each named set of waveforms ``(N, L)``: median and quartiles of the
    body's frequency over the first 200 ms (left), and ``examples`` single tracks of each set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kickgen.descriptors import pitch_envelope

    ms = PITCH_TRACK_TIMES * 1000.0
    fig, axes = plt.subplots(1, len(sets) + 1, figsize=(3.2 * (len(sets) + 1), 3.0), sharey=True)
    for c, (label, waves) in enumerate(sets.items()):
        x = waves.float().numpy() if isinstance(waves, torch.Tensor) else np.asarray(waves)
        f = pitch_envelope(x, PITCH_TRACK_TIMES)  # (N, T), NaN where untracked
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # columns where no clip is tracked
            q25, med, q75 = np.nanpercentile(f, (25, 50, 75), axis=0)
        (line,) = axes[0].plot(ms, med, label=f"{label} (n={len(x)})")
        axes[0].fill_between(ms, q25, q75, color=line.get_color(), alpha=0.15)
        for row in f[:examples]:
            axes[c + 1].plot(ms, row, color=line.get_color(), lw=0.7, alpha=0.8)
        axes[c + 1].set_title(f"{label}: {min(examples, len(x))} kicks", fontsize=8)
    axes[0].set_title("median and quartiles", fontsize=8)
    axes[0].legend(fontsize=6)
    for ax in axes:
        ax.set_yscale("log")
        ax.set_ylim(30, 400)
        ax.set_xlabel("ms after the onset", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("body frequency (Hz)", fontsize=7)
    fig.suptitle(
        "pitch envelope: body frequency from zero crossings (kickgen.descriptors.pitch_envelope)",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- markdown


def _f(x, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _pct(x) -> str:
    return "–" if x is None else f"{100.0 * x:.1f} %"


SET_LABELS = {
    "recordings": "recordings", "vocoder": "vocoder (true mel)", "round_trip": "VAE round trip → vocoder",
    "validation_real": "real validation", "validation_real_drums": "real validation, each drum once",
    "generated": "generated", "keywords_pooled": "generated, keywords",
    "train_real": "real training (floor)", "sine": "naive sine (ceiling)", "kicks": "your kicks",
}  # fmt: skip


DRUMS_NOTE = ("*Each drum once*: a drum's velocity layers and variants reduced to their median, one value "
              "per drum, so that a drum recorded in five layers weighs as much as one recorded once.")  # fmt: skip


LATE_NOTE = ("*Late > 1 dB*, *late > 3 dB*: the shares whose loudest sample lies more than 1 or 3 dB above the "
             "loudest of their first 30 ms after the onset (`metrics.late_peak_db`). A kick that misses the attack "
             "check by a fraction of a dB is a plateau of near-equal cycles; by several dB, a swell.")  # fmt: skip


PASS_NOTE = ("*{level:g} % interval*: the Wilson score interval of the share passing every check "
             "(`metrics.pass_interval`), where another draw of as many kicks could land.")  # fmt: skip


def sanity_table(sanity: dict, pass_head: str, label: Callable[[str], str]) -> list[str]:
    """A markdown table of sanity pass rates: a row per set (named by ``label``), the share that
    passes every check (column ``pass_head``), then each of ``metrics.SANITY_CHECKS`` and
    ``metrics.SHAPE_CHECKS``, then the shares loudest more than 1 and 3 dB above their first
    30 ms and the share whose body swells after the hit (results written before a column was
    measured have no such column)."""
    checks = [c for c in metrics.SANITY_CHECKS if all(c in rates for rates in sanity.values())]
    heads = [c.replace("_", " ") for c in checks]
    shape = [c for c in metrics.SHAPE_CHECKS if all(c in rates for rates in sanity.values())]
    checks += shape
    heads += [c.replace("_", " ") for c in shape]
    late = [late_key(db) for db in LATE_PEAK_DB]
    if all(key in rates for rates in sanity.values() for key in late):
        checks += late
        heads += [f"late > {db:g} dB" for db in LATE_PEAK_DB]
    if all("swell" in rates for rates in sanity.values()):
        checks.append("swell")
        heads.append(f"swells > {SWELL_DB:g} dB")
    spans = all("pass_interval" in rates for rates in sanity.values())
    if spans:
        pass_head = f"{pass_head} ({100 * INTERVAL_LEVEL:g} % interval)"
    lines = [f"| set | {pass_head} | " + " | ".join(heads) + " |",
             "| --- | --- | " + " | ".join("---" for _ in checks) + " |"]  # fmt: skip
    for name, rates in sanity.items():
        first = _pct(rates["pass"])
        if spans:
            low, high = rates["pass_interval"]
            first += f" ({100 * low:.1f}–{100 * high:.1f})"
        cells = [first] + [_pct(rates[c]) for c in checks]
        lines.append(f"| {label(name)} | " + " | ".join(cells) + " |")
    if spans:
        lines += ["", PASS_NOTE.format(level=100 * INTERVAL_LEVEL)]
    if late[0] in checks:
        lines += ["", LATE_NOTE]
    return lines


def _number(x: float, unit: str) -> str:
    digits = 3 if unit in ("s", "") else 2 if unit == "×" else 1 if unit == "dB" else 0
    return f"{x:.{digits}f}"


def _quartiles(q: list[float], unit: str) -> str:
    return f"{_number(q[1], unit)} ({_number(q[0], unit)}–{_number(q[2], unit)})"


MEDIAN_NOTE = ("*Its median, {level:g} % over drums*: where the real validation recordings' median "
               "lands when their drums are drawn again with replacement (a percentile bootstrap; a drum's velocity "
               "layers come and go together). A set's median inside it is as near as another draw of as many "
               "drums would be.")  # fmt: skip


SWELL_NOTE = ("*Swells*: the share whose 5-ms RMS envelope rises more than {db:g} dB above its maximum in the "
              "first 30 ms after the onset, 30–250 ms after it (`descriptors.swell_db`).")  # fmt: skip


def styles_markdown(rows: list[dict] | None, cfg: dict) -> list[str]:
    """The styles' table: each style keyword's kicks against real validation recordings."""
    if not rows:  # results written before styles were measured
        return []
    lines = ["", "## Styles against real recordings", "",
             f"{rows[0]['n']} kicks per keyword at guidance {cfg['cfg_scale']:g}; medians of the generated kicks / "
             "the real validation recordings that carry the keyword / all real validation recordings (– where none "
             f"carries it). Kernel distance and classifier AUC against the keyword's own recordings from "
             f"{STYLE_MIN_CLIPS} clips on, else against all real validation recordings (*against*).", "",
             "| keyword | real clips (drums) | punch | click dB | f0 10 ms Hz | f0 25 ms Hz | f0 100 ms Hz | "
             "hit harmonics dB | swells | against | kernel distance | classifier AUC |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for row in rows:

        def trio(name: str, digits: int, row=row) -> str:
            return " / ".join(
                _f(row[f"{name}_{k}"], digits) for k in ("generated", "real_style", "real_all")
            )

        swell = " / ".join(_pct(row[f"swell_{k}"]) for k in ("generated", "real_style", "real_all"))
        kd, auc = row.get("kernel"), row.get("classifier")
        lines.append(
            f"| {row['keyword']} | {row['real_clips']} ({row['real_drums']}) | {trio('punch', 2)} | "
            f"{trio('click_db', 1)} | {trio('f0_10ms', 0)} | {trio('f0_25ms', 0)} | {trio('f0_100ms', 0)} | "
            f"{trio('hit_harmonic_db', 1)} | {swell} | {row['against']} | "
            + (f"{kd['value']:.2f} ± {kd['spread']:.2f}" if kd else "–")
            + " | "
            + (f"**{auc['auc']:.2f}** ± {auc['spread']:.2f}" if auc else "–")
            + " |"
        )
    lines += ["", SWELL_NOTE.format(db=SWELL_DB)]
    return lines


def benchmark_markdown(bench: dict, reference: str) -> list[str]:
    """The kick-benchmark tables of one comparison: per-descriptor medians (quartiles) of each
    set, then each set against ``reference`` as a whole."""
    table, interval = bench["table"], bench.get("median_interval")
    labels = list(next(iter(table.values())))
    heads = [SET_LABELS.get(k, k) for k in labels]
    if interval:  # results written before the interval was measured have none
        heads.insert(1, f"its median, {100 * INTERVAL_LEVEL:g} % over drums")
    lines = ["| descriptor | " + " | ".join(heads) + " |",
             "| --- | " + " | ".join("---" for _ in heads) + " |"]  # fmt: skip
    for name, unit in TABLE_DESCRIPTORS:
        if name not in table:  # results written before the descriptor was measured
            continue
        head = f"{name} ({unit})" if unit else name
        cells = [_quartiles(table[name][k], unit) for k in labels]
        if interval:
            low, high = interval[name]
            cells.insert(1, f"{_number(low, unit)}–{_number(high, unit)}")
        lines.append(f"| {head} | " + " | ".join(cells) + " |")
    ref = SET_LABELS.get(reference, reference)
    if interval:
        lines += ["", MEDIAN_NOTE.format(level=100 * INTERVAL_LEVEL)]
    lines += ["", f"Each set against the {ref} ({bench['realism']['reference']['n']} clips) on the standardised "
              "descriptors: kernel distance (unbiased MMD², Gaussian kernel at the reference's median pairwise "
              "distance, ×100; 0 = same distribution; ± its spread over random halves), classifier two-sample "
              "AUC (5-fold cross-validated logistic regression; 0.5 = indistinguishable, 1.0 = always told apart; "
              "± its spread over 10 fold shuffles, which leaves out the sampling error: the real-training row "
              "shows how far two sets of real recordings sit apart), Fréchet distance and diversity (mean pairwise distance) over the reference's.", "",
              "| set | n | kernel distance | classifier AUC | Fréchet | diversity ratio |",
              "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for label, row in bench["realism"].items():
        if label == "reference":
            continue
        kd, auc = row.get("kernel"), row.get("classifier")
        lines.append(
            f"| {SET_LABELS.get(label, label)} | {row['n']} | "
            + (f"{kd['value']:.2f} ± {kd['spread']:.2f}" if kd else "–")
            + " | "
            + (f"**{auc['auc']:.2f}** ± {auc['spread']:.2f}" if auc else "–")
            + " | "
            + f"{row['frechet']:.2f} | {row['diversity_ratio']:.2f} |"
        )
    return lines


def reconstruction_lines(rec: dict) -> list[str]:
    """The reconstruction section's text and table (VAE round trip, vocoders)."""
    kinds = sorted(set(rec["kinds"]))
    lines = [
        f"{rec['n']} validation clips ({rec['n_real']} real recordings; kinds {', '.join(kinds)}). Distances in dB "
        "(lower is better): log-mel distance and multi-resolution STFT log-magnitude distance (windows "
        "256/1024/4096), both floored 80 dB below the recording's peak; mean ± 95 % interval, and the mean "
        "over the real recordings alone in brackets.",
        "",
        f"VAE round trip log-mel error: **{rec['vae_log_mel_db']['mean']:.2f} ± {rec['vae_log_mel_db']['ci95']:.2f} dB** "
        f"[real {_f(rec['vae_log_mel_db']['real_mean'])}]",
        "",
    ]
    if "vae_fitted_log_mel_db" in rec:
        fit = rec["vae_fitted_log_mel_db"]
        lines += [
            f"With each latent fitted to its mel, as an init kick's is (`fit_latent`): "
            f"**{fit['mean']:.2f} ± {fit['ci95']:.2f} dB** [real {_f(fit['real_mean'])}]",
            "",
        ]
    if "variation_strength_0" in rec:
        var = rec["variation_strength_0"]
        lines += [
            f"Variation at strength 0 ({var['n']} recordings: encode, decode, vocode and output stage with "
            f"nothing denoised) against its input through the same output stage, log-mel: **{var['mean']:.2f} ± "
            f"{var['ci95']:.2f} dB** (median {var['median']:.2f})",
            "",
        ]  # fmt: skip
    lines += [
        "| vocoder | log-mel dB (true mel) | MR-STFT dB (true mel) | log-mel dB (VAE → vocoder) | MR-STFT dB (VAE → vocoder) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m, label in METHOD_LABELS.items():
        if f"true_mel/{m}" not in rec:
            continue
        cells = []
        for src in ("true_mel", "vae_mel"):
            for name in ("log_mel_db", "mrstft_db"):
                s = rec[f"{src}/{m}"][name]
                cells.append(f"{s['mean']:.2f} ± {s['ci95']:.2f} [{_f(s['real_mean'])}]")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if "recording_frame_comb" in rec:  # reports written before the measure have none
        lines += ["", "Frame comb (autocorrelation of the band above 2 kHz at 512 samples, one mel "
                  "frame; median over clips, real recordings in brackets):", "",
                  "| output | true mel | VAE → vocoder |", "| --- | --- | --- |",
                  f"| recordings | {_comb(rec['recording_frame_comb'], rec)} | |"]  # fmt: skip
        for m, label in METHOD_LABELS.items():
            if f"true_mel/{m}" in rec:
                cells = [
                    _comb(rec[f"{src}/{m}"]["frame_comb"], rec) for src in ("true_mel", "vae_mel")
                ]
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for src, label in (("true_mel", "true mels"), ("vae_mel", "VAE mels")):
        ratio = rec.get(f"{src}/hifigan_over_griffin_lim_mrstft")
        if ratio is not None:
            lines.append(
                f"\nHiFi-GAN MR-STFT distance / kickgen Griffin-Lim's on {label}: **{100 * ratio:.0f} %**"
            )
    return lines


def _comb(summary: dict, rec: dict) -> str:
    """Median frame comb over all clips, and over the real recordings in brackets."""
    values = np.array(summary["per_clip"])
    real = values[np.array([k == "real" for k in rec["kinds"]], dtype=bool)]
    return f"{np.median(values):.3f} [{_f(float(np.median(real)) if real.size else None, 3)}]"


def chain_markdown(results: dict) -> str:
    """The report of ``kickgen eval --vae FILE``: the chain alone, no generation."""
    rec = results["reconstruction"]
    chain = rec["benchmark"]
    lines = ["# kickgen eval report: the reconstruction chain", ""]
    if results.get("command"):
        lines += ["Command:", "", "```", results["command"], "```", ""]
    lines += [f"VAE `{results['vae']}`, vocoder {results['vocoder']}, corpus `{results['corpus']}`. Machine: "
              f"{results['machine']}; {results['timings_s']['total']:.0f} s.", "",
              f"## The chain on {chain['n']} real validation recordings (vocoder: {chain['vocoder']})", "",
              *benchmark_markdown(chain, "recordings"), "", "## Reconstruction of validation recordings", "",
              *reconstruction_lines(rec)]  # fmt: skip
    figs = results.get("figures", {})
    if "pitch_tracks" in figs:
        lines += ["", f"![Pitch envelopes]({figs['pitch_tracks']})"]
    return "\n".join(lines) + "\n"


def kicks_markdown(results: dict) -> str:
    """The report of ``kickgen eval --kicks DIR``."""
    lines = ["# kickgen kick benchmark: a folder of kicks", ""]
    if results.get("command"):
        lines += ["Command:", "", "```", results["command"], "```", ""]
    lines += [f"Kicks `{results['kicks']}` ({len(results['files'])} files, {len(results['skipped'])} skipped) "
              f"against the real validation recordings of corpus `{results['corpus']}`. Machine: "
              f"{results['machine']}; {results['seconds']:.0f} s.", "",
              "Descriptors of `kickgen.descriptors`, median (quartiles); every file prepared as the corpus "
              "prepares its clips (onset aligned to 1 ms, 2 s, -1 dBFS peak).", "", DRUMS_NOTE, "",
              *benchmark_markdown(results["benchmark"], "validation_real"), "",
              *sanity_table(results["sanity"], "sanity pass", lambda name: SET_LABELS.get(name, name))]  # fmt: skip
    if results["skipped"]:
        lines += ["", "Skipped:", ""] + [
            f"- `{s['file']}`: {s['reason']}" for s in results["skipped"]
        ]
    figs = results.get("figures", {})
    lines += ["", f"![Pitch envelopes]({figs['pitch_tracks']})" if "pitch_tracks" in figs
              else "(no PNG: install the eval extra, `pip install kickgen[eval]`, for matplotlib)", ""]  # fmt: skip
    return "\n".join(lines)


def markdown(results: dict) -> str:
    """The eval report as markdown (tables of every figure in ``results``)."""
    cfg = results["config"]
    lines = ["# kickgen eval report", ""]
    if results.get("command"):
        lines += ["Command:", "", "```", results["command"], "```", ""]
    lines += [
        f"Checkpoints `{results['checkpoints']}`, corpus `{results['corpus']}`, vocoder {results['vocoder']}; "
        f"{cfg['sampler']} {cfg['steps']} steps, guidance {cfg['cfg_scale']:g} at timesteps "
        f"{results.get('guidance_from') or 0:g} · T < t ≤ {results.get('guidance_until') or 1:g} · T "
        f"(the sampler's default), seeds from {cfg['seed']}.",
        f"Machine: {results['machine']}. Wall time {results['timings_s']['total']:.0f} s "
        f"({results['kicks_generated']} kicks generated in {results['seconds_generating']:.0f} s).",
        "",
    ]
    rec, gen = results["reconstruction"], results["generation"]
    chain = rec["benchmark"]
    lines += [
        "## The kick benchmark",
        "",
        "Descriptors of `kickgen.descriptors` (pitch envelope first: the body's frequency 10–100 ms after the "
        "onset, `sweep_ratio` = f0(25 ms) / f0(100 ms), sweep time to within 10 % of the body pitch), "
        "median (quartiles).",
        "",
        f"### The chain on {chain['n']} real validation recordings (vocoder: {chain['vocoder']})",
        "",
        *benchmark_markdown(chain, "recordings"),
        "",
        "### Generated kicks against the real validation recordings",
        "",
        DRUMS_NOTE,
        "",
        *benchmark_markdown(gen["benchmark"], "validation_real"),
        "",
        "## Reconstruction of validation recordings",
        "",
    ]
    lines += reconstruction_lines(rec)
    fd = gen["frechet"]
    lines += [
        "",
        "## Generated kicks",
        "",
        f"Descriptor Fréchet distance (features {', '.join(fd['features'])}; pitch, decays and centroid on a "
        "log scale; standardised on the whole validation split) to two references: the real validation "
        "recordings, and every validation clip (real, synthesized, rendered, augmented). The floor is as many "
        "training clips of the same kinds against the same reference; the ceiling is naive sine kicks.",
        "",
        "| set | vs real validation | vs all validation |",
        "| --- | --- | --- |",
        f"| reference size | {fd['real']['n']['reference']} | {fd['all']['n']['reference']} |",
        f"| floor: training clips ({fd['real']['n']['train']} / {fd['all']['n']['train']}) | "
        f"{fd['real']['floor_train']:.3f} | {fd['all']['floor_train']:.3f} |",
        f"| generated, unconditional ({fd['real']['n']['generated']}) | **{fd['real']['unconditional']:.3f}** "
        f"({fd['real']['unconditional_over_floor']:.2f} × floor) | **{fd['all']['unconditional']:.3f}** "
        f"({fd['all']['unconditional_over_floor']:.2f} × floor) |",
        f"| generated, top {cfg['keywords']} keywords × {cfg['n_keyword']} pooled (guidance {cfg['cfg_scale']:g}) | "
        f"{fd['real']['keywords_pooled']:.3f} | {fd['all']['keywords_pooled']:.3f} |",
        f"| ceiling: naive sine kicks ({fd['real']['n']['sine']}) | {fd['real']['ceiling_sine']:.3f} | "
        f"{fd['all']['ceiling_sine']:.3f} |",
        "",
    ]
    div, mem = gen["diversity"], gen["memorization"]
    lines += [
        f"Diversity (mean pairwise standardised descriptor distance): generated {div['generated']:.2f}; "
        f"real validation {div['validation_real']:.2f} (ratio **{div['ratio_real']:.2f}**); all validation "
        f"{div['validation_all']:.2f} (ratio **{div['ratio_all']:.2f}**); sine {div['sine']:.2f}.",
        "",
        f"Memorization (share nearer to one of {mem['train_items']} training clips than the closest "
        f"{100 * mem['generated']['quantile']:.0f} % of training clips are to each other, on level-free pooled "
        f"log-mels; fresh draws score about {100 * mem['generated']['quantile']:.0f} %): generated "
        f"**{_pct(mem['generated']['share'])}**, validation clips {_pct(mem['validation']['share'])}; median "
        f"nearest-neighbour distance ratio {mem['generated']['nn_ratio']:.2f} (validation "
        f"{mem['validation']['nn_ratio']:.2f}).",
        "",
        "Sanity checks, the defects a producer hears at once (*pass* is all of them): finite, peak ≥ −60 dBFS, "
        "not clipped, RMS 0.9–1.0 s ≥ 18 dB below peak, one hit (the envelope never falls and rises again by "
        "12 dB after the hit). Then the shape checks, which the benchmark judges against real kicks instead: "
        "onset ≤ 30 ms, loudest sample ≤ 30 ms after the onset, body pitch 30–160 Hz.",
        "",
        *sanity_table(gen["sanity"], "pass", lambda name: name.replace("_", " ")),
    ]
    lines += ["", "## Prompt adherence", "",
              f"Cohen's d of the named descriptor, prompt vs baseline, {cfg['n_prompt']} kicks each with the same "
              "seeds; signed so that positive is the direction the word names; target ≥ 0.8.", "",
              "| prompt | baseline | descriptor | expected | " + " | ".join(f"d @ {g:g}" for g in cfg["guidance"]) + " |",
              "| --- | --- | --- | --- | " + " | ".join("---" for _ in cfg["guidance"]) + " |"]  # fmt: skip
    by_pair: dict[tuple, dict] = {}
    for row in results["adherence"]:
        by_pair.setdefault(
            (row["prompt"], row["baseline"], row["descriptor"], row["expected"]), {}
        )[row["guidance"]] = row
    for (p, b, d, e), per_g in by_pair.items():
        cells = []
        for g in cfg["guidance"]:
            row = per_g.get(float(g), {})
            if row.get("effect_size") is None:
                cells.append(row.get("note", "–"))
            else:
                cells.append(
                    f"{'**' if row['passed'] else ''}{row['effect_size']:.2f}{'**' if row['passed'] else ''}"
                )
        lines.append(f"| {p} | {b} | {d} | {e} | " + " | ".join(cells) + " |")
    lines += styles_markdown(results.get("styles"), cfg)
    lines += ["", "## Per keyword (generated median / validation median, all kinds)", "",
              "| keyword | train clips | val clips | sanity | body pitch Hz | decay −20 dB s | click dB | harmonics dB |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for row in gen["keywords"]:

        def pair(name: str, digits: int = 2, row=row) -> str:
            return f"{_f(row[f'{name}_generated'], digits)} / {_f(row[f'{name}_val'], digits)}"

        lines.append(f"| {row['keyword']} | {row['train_count']} | {row['val_count']} | {_pct(row['sanity_pass'])} | "
                     f"{pair('body_pitch', 1)} | {pair('decay_20', 3)} | {pair('click_db', 1)} | {pair('harmonic_db', 1)} |")  # fmt: skip
    figs = results.get("figures", {})
    lines += ["", "## Figures", ""]
    for key, title in (("pitch_tracks", "Pitch envelopes"), ("spectrograms", "Generated vs real"),
                       ("reconstruction", "Reconstruction"), ("histograms", "Descriptor histograms")):  # fmt: skip
        if key in figs:
            lines.append(f"![{title}]({figs[key]})")
    if "spectrograms" not in figs:
        lines.append(
            "(no PNGs: install the eval extra, `pip install kickgen[eval]`, for matplotlib)"
        )
    lines.append("\nWAV examples in `examples/`.")
    t = results["timings_s"]
    lines += ["", "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in t.items()), ""]
    return "\n".join(lines)
