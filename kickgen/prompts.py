"""Prompts → vocabulary token ids, with unknown words reported instead of silently dropped.

The prompt goes through the same tokenizer as the training file names
(:func:`kickgen.keywords.keywords_from_text`), so "TR-808 bass drum" meets the entries "808" and
"kick". Two kinds of words outside the vocabulary are still read (:attr:`PromptInfo.read_as`):
producers' everyday words (:data:`kickgen.keywords.PRODUCER_WORDS`: "boomy" → deep long), and
plurals and near-misses of one keyword ("808s", "techo" → 808, techno), which are reported. Other
words are returned in :attr:`PromptInfo.unknown` with their closest vocabulary words, and
:func:`parse_prompt` warns about them.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

from kickgen.keywords import PRODUCER_WORDS, keywords_from_text


class UnknownKeywordWarning(UserWarning):
    """A prompt word is not in the model's vocabulary and does not condition the kick."""


@dataclass(frozen=True)
class PromptInfo:
    """What a prompt means to a model with a given vocabulary."""

    prompt: str
    token_ids: list[int]  # vocabulary indices of the matched keywords, in prompt order
    matched: list[str]  # keywords found in the vocabulary
    unknown: list[str]  # keywords not in the vocabulary
    suggestions: dict[str, list[str]] = field(default_factory=dict)  # unknown → closest entries
    read_as: dict[str, list[str]] = field(default_factory=dict)  # word outside the vocab → keywords

    @property
    def guessed(self) -> dict[str, list[str]]:
        """The words of :attr:`read_as` that were plurals or near-misses (not producer words)."""
        return {w: k for w, k in self.read_as.items() if w not in PRODUCER_WORDS}

    @property
    def unconditional(self) -> bool:
        """True when no keyword matched: the model generates unconditionally."""
        return not self.token_ids

    def warning_text(self) -> str:
        """One line naming the guessed and the unknown words ('' if none)."""
        guessed = "; ".join(f"{w!r} as {' '.join(k)}" for w, k in self.guessed.items())
        if not self.unknown:
            return f"prompt words read as the closest keyword: {guessed}" if guessed else ""
        parts = []
        for word in self.unknown:
            close = self.suggestions.get(word) or []
            parts.append(f"{word!r} (did you mean {', '.join(close)}?)" if close else repr(word))
        tail = " (generating unconditionally)" if self.unconditional else ""
        head = f"prompt words read as the closest keyword: {guessed}; " if guessed else ""
        return (
            f"{head}prompt words not in the vocabulary are ignored: {'; '.join(parts)}{tail}; "
            "`kickgen vocab` lists the known words"
        )


NEAR_MISS = 0.8  # difflib ratio at or above which a word is read as its one closest keyword


def closest_keyword(word: str, vocab: Sequence[str]) -> str | None:
    """The keyword a plural ("808s", "kicks") or a near-miss ("techo", "punchyy") stands for, or
    None: the singular when it is a keyword, else the one keyword whose similarity is at least
    :data:`NEAR_MISS` and higher than any other's."""
    for stem in (word[:-1], word[:-2]) if word.endswith("s") else ():
        if stem in vocab:
            return stem
    scored = sorted(
        ((difflib.SequenceMatcher(None, word, v).ratio(), v) for v in vocab), reverse=True
    )
    if scored and scored[0][0] >= NEAR_MISS and (len(scored) < 2 or scored[1][0] < scored[0][0]):
        return scored[0][1]
    return None


def analyze_prompt(prompt: str, vocab: Sequence[str], max_suggestions: int = 3) -> PromptInfo:
    """Tokenize ``prompt`` and match it against ``vocab`` without warning."""
    index = {word: i for i, word in enumerate(vocab)}
    token_ids: list[int] = []
    matched: list[str] = []
    unknown: list[str] = []
    suggestions: dict[str, list[str]] = {}
    read_as: dict[str, list[str]] = {}
    for word in keywords_from_text(prompt or ""):
        if word in index:
            keywords = [word]
        elif word in PRODUCER_WORDS and all(k in index for k in PRODUCER_WORDS[word]):
            keywords = read_as[word] = list(PRODUCER_WORDS[word])
        elif (guess := closest_keyword(word, list(vocab))) is not None:
            keywords = read_as[word] = [guess]
            suggestions[word] = [guess]
        else:
            unknown.append(word)
            suggestions[word] = difflib.get_close_matches(
                word, list(vocab), n=max_suggestions, cutoff=0.6
            )
            continue
        for kw in keywords:
            if kw not in matched:
                token_ids.append(index[kw])
                matched.append(kw)
    return PromptInfo(prompt or "", token_ids, matched, unknown, suggestions, read_as)


def parse_prompt(prompt: str, vocab: Sequence[str]) -> list[int]:
    """Token ids of the prompt's vocabulary keywords (``[]`` = unconditional).

    Unknown words raise an :class:`UnknownKeywordWarning` naming them and the closest vocabulary
    words; :func:`analyze_prompt` returns the same information as data.
    """
    info = analyze_prompt(prompt, vocab)
    if info.unknown or info.guessed:
        warnings.warn(info.warning_text(), UnknownKeywordWarning, stacklevel=2)
    return info.token_ids
