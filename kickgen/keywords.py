"""Keywords: from file names to the vocabulary, and from prompts to vocabulary entries.

One tokenizer serves the corpus (names → keywords) and the prompt parser (prompt → keywords), so
"TR-808 BassDrum" and the prompt "tr808 bassdrum" meet the same vocabulary entries.
"""

from __future__ import annotations

import re

# The reference's separators: "-", "_", spaces and dots (commas too, for prompts).
_SPLIT = re.compile(r"[-_\s.,;/]+")

_B, _E = r"(?<![a-z0-9])", r"(?![a-z0-9])"  # word edges where "_" is a separator

# Phrases that separators would break apart, joined before splitting.
_PHRASES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(_B + r"(?:tr|rx|rb)[-_ ]?(\d{3})" + _E), r"\1"),
    (re.compile(_B + r"lo[-_ ]?fi" + _E), "lofi"),
    (re.compile(_B + r"bass[-_ ]?drum" + _E), "bassdrum"),
    (re.compile(_B + r"kick[-_ ]?drum" + _E), "kick"),
)

# Curated synonyms: the token on the left counts as the keyword(s) on the right.
ALIASES: dict[str, tuple[str, ...]] = {
    "bd": ("kick",),
    "bassdrum": ("kick",),
    "kik": ("kick",),
    "kck": ("kick",),
    "kicks": ("kick",),
    "tr808": ("808",),
    "tr909": ("909",),
    "tr707": ("707",),
    "dist": ("distorted",),
    "distortion": ("distorted",),
    "overdrive": ("distorted",),
    "drive": ("distorted",),
    "click": ("clicky",),
    "punch": ("punchy",),
    "subby": ("sub",),
    "acc": ("acoustic",),
    # names found in the open corpus (Debian packages; see DATASET.md)
    "acou": ("acoustic",),
    "haus": ("house",),
    "hse": ("house",),
    "hardhse": ("hard", "house"),
    "tek": ("techno",),
    "elec": ("electro",),
    "gabba": ("gabber",),
    "gabbakick": ("gabber", "kick"),
    "kickhard": ("kick", "hard"),
    "kicklong": ("kick", "long"),
    "jazzkick": ("jazz", "kick"),
    "pearlkick": ("kick",),
    "bass": ("kick",),  # "drum_bass_hard", "misc_bass": in a kick corpus bass means bass drum
    "lite": ("soft",),
}

# Producers' everyday words, read in prompts (never in corpus file names) as the keywords whose
# measured effect they name: Cohen's d against no keyword, 32 kicks each, guidance 3, model
# 2026.12.3 (docs/keywords.md, made by scripts/make_examples.py). A word the model's own vocabulary
# holds keeps its own meaning.
PRODUCER_WORDS: dict[str, tuple[str, ...]] = {
    "boomy": ("deep", "long"),  # body pitch -1.6, decay +1.7, centroid -1.4
    "tight": ("short",),  # decay -0.8, punch +0.8
    "dark": ("soft",),  # click -3.7, harmonics -1.5, centroid -1.0
    "fat": ("sub",),  # centroid -1.2, body pitch -1.1
    "snappy": ("clicky", "short"),  # click +2.6, centroid +1.5, punch +1.0, decay -0.8
    "thumpy": ("short", "punchy"),  # punch +1.1, decay -0.9
    "subby": ("sub",),  # (also a corpus alias)
    "crisp": ("clicky",),  # click +3.1, centroid +1.6, harmonics +1.2
}

# Tokens that say nothing a listener could hear.
STOPWORDS: frozenset[str] = frozenset(
    {
        "wav", "wave", "flac", "ogg", "aif", "aiff", "mp3", "pat", "ds", "xpf",
        "sample", "samples", "one", "shot", "oneshot", "layer", "vel", "velocity",
        "the", "and", "of", "drum", "drums", "kit", "mono", "stereo", "copy", "new",
        "final", "mix", "ver", "version", "take",
        "misc", "ee", "br", "4mics", "beats",
    }
)  # fmt: skip


def split_tokens(text: str) -> list[str]:
    """The reference rule: split on separators, lower-case, drop pure numbers and tokens shorter
    than 2 characters. Multi-word phrases are joined first ("bass drum", "lo-fi", "TR-808"), and
    drum-machine model numbers ("808") are kept as words (:data:`KEEP_NUMBERS`).
    """
    text = text.lower()
    for pattern, replacement in _PHRASES:
        text = pattern.sub(replacement, text)
    tokens = []
    for raw in _SPLIT.split(text):
        tok = raw.strip("()[]{}'\"!?#&+")
        if len(tok) < 2:
            continue
        if tok.isdigit() and tok not in KEEP_NUMBERS:
            continue
        tokens.append(tok)
    return tokens


# Drum-machine model numbers are words to a producer, not counters.
KEEP_NUMBERS: frozenset[str] = frozenset({"808", "909", "707", "606", "626", "727", "101", "303"})


def keywords_from_text(text: str) -> list[str]:
    """Tokens → canonical keywords: aliases applied, stop-words dropped, order kept, no repeats."""
    out: list[str] = []
    for tok in split_tokens(text):
        if tok in STOPWORDS:
            continue
        for kw in ALIASES.get(tok, (tok,)):
            if kw not in out:
                out.append(kw)
    return out
