"""Prompts → vocabulary token ids, with unknown words reported instead of silently dropped.

The prompt goes through the same tokenizer as the training file names
(:func:`kickgen.keywords.keywords_from_text`), so "TR-808 bass drum" meets the entries "808" and
"kick". Words outside the vocabulary are returned in :attr:`PromptInfo.unknown` with their closest
vocabulary words, and :func:`parse_prompt` warns about them.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

from kickgen.keywords import keywords_from_text


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

    @property
    def unconditional(self) -> bool:
        """True when no keyword matched: the model generates unconditionally."""
        return not self.token_ids

    def warning_text(self) -> str:
        """One line naming the unknown words and their closest vocabulary words ('' if none)."""
        if not self.unknown:
            return ""
        parts = []
        for word in self.unknown:
            close = self.suggestions.get(word) or []
            parts.append(f"{word!r} (did you mean {', '.join(close)}?)" if close else repr(word))
        tail = " (generating unconditionally)" if self.unconditional else ""
        return (
            f"prompt words not in the vocabulary are ignored: {'; '.join(parts)}{tail}; "
            "`kickgen vocab` lists the known words"
        )


def analyze_prompt(prompt: str, vocab: Sequence[str], max_suggestions: int = 3) -> PromptInfo:
    """Tokenize ``prompt`` and match it against ``vocab`` without warning."""
    index = {word: i for i, word in enumerate(vocab)}
    token_ids: list[int] = []
    matched: list[str] = []
    unknown: list[str] = []
    suggestions: dict[str, list[str]] = {}
    for word in keywords_from_text(prompt or ""):
        if word in index:
            token_ids.append(index[word])
            matched.append(word)
        else:
            unknown.append(word)
            suggestions[word] = difflib.get_close_matches(
                word, list(vocab), n=max_suggestions, cutoff=0.6
            )
    return PromptInfo(prompt or "", token_ids, matched, unknown, suggestions)


def parse_prompt(prompt: str, vocab: Sequence[str]) -> list[int]:
    """Token ids of the prompt's vocabulary keywords (``[]`` = unconditional).

    Unknown words raise an :class:`UnknownKeywordWarning` naming them and the closest vocabulary
    words; :func:`analyze_prompt` returns the same information as data.
    """
    info = analyze_prompt(prompt, vocab)
    if info.unknown:
        warnings.warn(info.warning_text(), UnknownKeywordWarning, stacklevel=2)
    return info.token_ids
