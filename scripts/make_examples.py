"""What the shipped model sounds like and what its words do: docs/examples/ and the keyword table.

    python scripts/make_examples.py                       # the shipped weights (kickgen's lookup)
    python scripts/make_examples.py --checkpoints DIR     # other weights
    python scripts/make_examples.py --skip-measure        # the examples only (about 10 s)

Run it again after the weights change; it rewrites everything it made:

- ``docs/examples/*.wav``: one kick per line of :data:`EXAMPLES`, all with seed :data:`SEED`, so the
  differences are the words' and the knobs'. Each file is what its ``kickgen generate`` command
  writes (16-bit, tail trimmed) and carries its recipe (``kickgen regenerate FILE --check``).
- ``docs/examples/examples.png``: their waveforms and spectrograms over the first 0.6 s.
- ``docs/examples/README.md``: the list, with the command that makes each file.
- ``docs/keywords.md``: every keyword (and producer word) measured against no keyword: 32 kicks
  each, seeds 1000-1031, guidance 3, DDIM 50; medians and Cohen's d of six descriptors.
- ``README.md``: the table between the ``<!-- keywords -->`` markers, from the same measurement.

Needs matplotlib (``pip install "kickgen[eval]"``); the measurement takes a few minutes on a CPU.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEED = 7  # every example's seed
# hygiene (decay-aware fade, onset at the start, 0.95 peak), the silent tail cut, 16-bit
EXAMPLE_FLAGS = ["--trim", "--format", "pcm16"]
# (file stem, prompt, extra flags of `kickgen generate`)
EXAMPLES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("01_no_keyword", "", ()),
    ("02_808", "808", ()),
    ("03_909", "909", ()),
    ("04_deep", "deep", ()),
    ("05_high", "high", ()),
    ("06_punchy", "punchy", ()),
    ("07_clicky", "clicky", ()),
    ("08_soft", "soft", ()),
    ("09_short", "short", ()),
    ("10_long", "long", ()),
    ("11_distorted", "distorted", ()),
    ("12_techno", "techno", ()),
    ("13_boomy", "boomy", ()),
    ("14_808_in_F", "808", ("--key", "F")),
    ("15_punchy_808_guidance_1", "punchy 808", ("--cfg-scale", "1")),
    ("16_punchy_808_guidance_6", "punchy 808", ("--cfg-scale", "6")),
)
MEASURE_N, MEASURE_SEED, MEASURE_CFG = 32, 1000, 3.0
# descriptor → (label, unit, format, word when higher, word when lower)
MEASURES: dict[str, tuple[str, str, str, str, str]] = {
    "body_pitch": ("body pitch", "Hz", "{:.0f}", "higher", "lower"),
    "decay_20": ("decay to -20 dB", "s", "{:.2f}", "longer", "shorter"),
    "click_db": ("click", "dB", "{:.0f}", "more", "less"),
    "punch": ("punch", "", "{:.2f}", "more", "less"),
    "harmonic_db": ("harmonics", "dB", "{:.0f}", "more", "fewer"),
    "centroid": ("centroid", "Hz", "{:.0f}", "brighter,", "darker,"),
}
EFFECT = 0.5  # |d| at or above this is named in the README table ("medium", Cohen)
BEGIN, END = "<!-- keywords: begin (scripts/make_examples.py) -->", "<!-- keywords: end -->"


def command(prompt: str, extra: tuple[str, ...], path: str) -> str:
    """The ``kickgen generate`` line that writes ``path``."""
    words = ["kickgen", "generate"] + (["-p", prompt] if prompt else [])
    return shlex.join(words + ["-s", str(SEED), *extra, *EXAMPLE_FLAGS, "-o", path])


def make_examples(checkpoints: Path | None, out: Path) -> list[Path]:
    """Run each example's command in this process; returns the WAVs written."""
    from kickgen.cli import main

    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.wav"):
        old.unlink()
    paths = []
    for stem, prompt, extra in EXAMPLES:
        path = out / f"{stem}.wav"
        argv = shlex.split(command(prompt, extra, str(path)))[1:] + ["-q"]
        if checkpoints is not None:
            argv += ["--checkpoints", str(checkpoints)]
        if main(argv) != 0:
            raise SystemExit(f"failed: {shlex.join(argv)}")
        paths.append(path)
    return paths


def plot_examples(paths: list[Path], png: Path, seconds: float = 0.6) -> None:
    """One picture: for each example its waveform above its spectrogram (log frequency,
    20 Hz-10 kHz, 70 dB below the kick's peak), first ``seconds``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf
    from scipy.signal import spectrogram

    cols = 4
    rows = -(-len(paths) // cols)
    fig = plt.figure(figsize=(3.2 * cols, 2.4 * rows), dpi=90)
    grid = fig.add_gridspec(2 * rows, cols, height_ratios=[1, 2] * rows, hspace=0.1, wspace=0.08)
    for k, path in enumerate(paths):
        whole, sr = sf.read(str(path), dtype="float32")
        x = np.pad(whole, (0, max(0, int(seconds * sr) - len(whole))))[: int(seconds * sr)]
        r, c = divmod(k, cols)
        wave = fig.add_subplot(grid[2 * r, c])
        wave.plot(np.arange(len(x)) / sr, x, lw=0.5, color="#1f4e79")
        wave.set_xlim(0, seconds)
        wave.set_ylim(-1, 1)
        wave.set_xticks([])
        wave.set_yticks([])
        wave.text(0.98, 0.9, path.stem[3:].replace("_", " "), transform=wave.transAxes,
                  ha="right", va="top", fontsize=8)  # fmt: skip
        # the whole kick, shown to `seconds`: a kick still sounding there is not cut into a click
        f, t, p = spectrogram(
            np.pad(whole, (0, max(len(x) - len(whole), 0) + 2048)),
            sr,
            window="hann",
            nperseg=2048,
            noverlap=1920,
        )
        db = 10 * np.log10(p + 1e-20)
        spec = fig.add_subplot(grid[2 * r + 1, c])
        spec.pcolormesh(t, f, db, shading="auto", cmap="magma", vmin=db.max() - 70, vmax=db.max())
        spec.set_yscale("log")
        spec.set_ylim(20, 10_000)
        spec.set_xlim(0, seconds)
        spec.tick_params(labelsize=7)
        if c:
            spec.set_yticklabels([])
        else:
            spec.set_ylabel("Hz", fontsize=7)
        if r < rows - 1:
            spec.set_xticklabels([])
        else:
            spec.set_xlabel("s", fontsize=7)
    fig.savefig(png, bbox_inches="tight")
    plt.close(fig)


def examples_readme(paths: list[Path], out: Path) -> None:
    lines = [
        "# What kickgen sounds like",
        "",
        f"Made by `python scripts/make_examples.py` from the shipped weights, every kick with seed {SEED},",
        "so the differences are the words' and the knobs'. Each file carries its recipe",
        "(`kickgen regenerate FILE --check` makes it again, bit for bit on a CPU).",
        "",
        "![waveforms and spectrograms of the examples, first 0.6 s](examples.png)",
        "",
        "| file | command |",
        "| --- | --- |",
    ]
    for path, (_, prompt, extra) in zip(paths, EXAMPLES, strict=True):
        rel = f"docs/examples/{path.name}"
        lines.append(f"| [{path.name}]({path.name}) | `{command(prompt, extra, rel)}` |")
    (out / "README.md").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- the keywords


def measure(pipe, prompts: list[str]) -> dict[str, dict[str, list[float]]]:
    """Descriptors of :data:`MEASURE_N` kicks per prompt (same seeds): prompt → name → values."""
    from kickgen.descriptors import describe_batch

    out = {}
    for prompt in prompts:
        waves = pipe(
            prompt, n=MEASURE_N, seed=MEASURE_SEED, cfg_scale=MEASURE_CFG, warn_unknown=False
        )
        d = describe_batch(waves.waveforms)
        out[prompt] = {name: d[name].tolist() for name in MEASURES}
        print(f"  measured {prompt or '(no keyword)'}", flush=True)
    return out


def effects(values: dict[str, dict[str, list[float]]], prompt: str) -> dict[str, dict[str, float]]:
    """Median with and without the prompt, and Cohen's d (prompt − no keyword), per descriptor."""
    from kickgen.evaluation.metrics import cohens_d

    base = values[""]
    return {
        name: {
            "median": float(np.median(values[prompt][name])),
            "baseline": float(np.median(base[name])),
            "d": float(cohens_d(np.array(values[prompt][name]), np.array(base[name]))),
        }
        for name in MEASURES
    }


def describe_effect(eff: dict[str, dict[str, float]], top: int = 3) -> str:
    """'lower body pitch 57 → 36 Hz (d -1.6); darker ...' for the effects with |d| ≥ EFFECT."""
    named = sorted(
        (e for e in eff.items() if abs(e[1]["d"]) >= EFFECT), key=lambda e: -abs(e[1]["d"])
    )
    parts = []
    for name, e in named[:top]:
        label, unit, fmt, up, down = MEASURES[name]
        a, b = fmt.format(e["baseline"]), fmt.format(e["median"])
        parts.append(
            f"{up if e['d'] > 0 else down} {label} {a} → {b}{' ' + unit if unit else ''} (d {e['d']:+.1f})"
        )
    return "; ".join(parts) or f"no descriptor moves by d ≥ {EFFECT} on its own"


def keyword_tables(
    values, vocab: list[str], producer: dict[str, tuple[str, ...]]
) -> tuple[str, str]:
    """(the README's table, docs/keywords.md)."""
    readme = ["| word | what it does (measured against no keyword) |", "| --- | --- |"]
    for word in vocab:
        readme.append(f"| `{word}` | {describe_effect(effects(values, word))} |")
    for word, kws in producer.items():
        readme.append(
            f"| `{word}` | reads as `{' '.join(kws)}`: {describe_effect(effects(values, ' '.join(kws)))} |"
        )
    head = (
        "| prompt | "
        + " | ".join(f"{MEASURES[n][0]} ({MEASURES[n][1] or '×'}), d" for n in MEASURES)
        + " |"
    )
    doc = [
        "# What each keyword does, measured",
        "",
        "Made by `python scripts/make_examples.py` from the shipped weights: "
        f"{MEASURE_N} kicks per prompt, seeds {MEASURE_SEED}-{MEASURE_SEED + MEASURE_N - 1} (the same for every prompt), "
        f"guidance {MEASURE_CFG:g}, DDIM 50. Each cell: the median, then Cohen's d against the same seeds with no keyword "
        "(|d| ≥ 0.5 is a medium effect, ≥ 0.8 a large one). Descriptors are `kickgen.descriptors`'s.",
        "",
        head,
        "| --- |" + " --- |" * len(MEASURES),
    ]
    base = effects(values, "")
    doc.append(
        "| (no keyword) | "
        + " | ".join(MEASURES[n][2].format(base[n]["baseline"]) for n in MEASURES)
        + " |"
    )
    prompts = list(vocab) + [
        " ".join(k) for k in dict.fromkeys(producer.values()) if " ".join(k) not in vocab
    ]
    for prompt in prompts:
        eff = effects(values, prompt)
        cells = [f"{MEASURES[n][2].format(eff[n]['median'])}, {eff[n]['d']:+.2f}" for n in MEASURES]
        doc.append(f"| `{prompt}` | " + " | ".join(cells) + " |")
    doc += ["", "Producer words (prompt aliases, `kickgen.keywords.PRODUCER_WORDS`):", ""]
    doc += [f"- `{w}` → `{' '.join(k)}`" for w, k in producer.items()]
    return "\n".join(readme), "\n".join(doc) + "\n"


def update_readme(table: str, readme: Path = ROOT / "README.md") -> bool:
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        return False
    readme.write_text(pattern.sub(lambda _: f"{BEGIN}\n{table}\n{END}", text))
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoints", type=Path, default=None, help="folder with the three files")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "examples")
    ap.add_argument("--skip-measure", action="store_true", help="the examples only")
    ap.add_argument(
        "--measured",
        type=Path,
        default=None,
        help="reuse a measurement (JSON) instead of running it",
    )
    args = ap.parse_args()

    paths = make_examples(args.checkpoints, args.out)
    plot_examples(paths, args.out / "examples.png")
    examples_readme(paths, args.out)
    print(f"{len(paths)} examples and examples.png in {args.out}")
    if args.skip_measure:
        return
    from kickgen.keywords import PRODUCER_WORDS
    from kickgen.pipeline import KickPipeline

    pipe = KickPipeline.from_pretrained(args.checkpoints, device="cpu")
    vocab = list(pipe.vocab)
    producer = {
        w: k for w, k in PRODUCER_WORDS.items() if w not in vocab and all(x in vocab for x in k)
    }
    prompts = ["", *vocab] + [
        " ".join(k) for k in dict.fromkeys(producer.values()) if " ".join(k) not in vocab
    ]
    if args.measured is not None and args.measured.exists():
        values = json.loads(args.measured.read_text())
    else:
        values = measure(pipe, prompts)
        if args.measured is not None:
            args.measured.write_text(json.dumps(values))
    table, doc = keyword_tables(values, vocab, producer)
    (ROOT / "docs" / "keywords.md").write_text(doc)
    print(
        "docs/keywords.md written; README table "
        + ("updated" if update_readme(table) else "not found (no markers)")
    )


if __name__ == "__main__":
    main()
