"""How much of a transcript the model reads: its tokenizer truncates at ``text_max_len`` tokens.

The demo checkpoints read 48 tokens (special tokens included); words past that point change nothing,
so the studio and the report say how many tokens were used and which words were dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["TextCoverage", "text_coverage"]

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class TextCoverage:
    """One transcript against the model's token limit.

    ``total_tokens`` and ``used_tokens`` include the special tokens ([CLS], [SEP]); ``read_text`` is the
    part the model saw, ``dropped_text`` the words it never saw (empty when nothing was cut). A word
    split by the cut (word pieces) is ``partial_word``: the model read only its first pieces.
    """

    max_tokens: int
    total_tokens: int
    used_tokens: int
    read_text: str
    dropped_text: str = ""
    partial_word: str = ""

    @property
    def truncated(self) -> bool:
        return self.total_tokens > self.max_tokens

    @property
    def dropped_words(self) -> list[str]:
        return self.dropped_text.split()

    def summary(self) -> str:
        """One line for people: tokens used of the limit, and what was dropped."""
        line = f"{self.used_tokens} of {self.max_tokens} tokens used"
        if not self.truncated:
            return line + " (the whole transcript was read)."
        dropped = len(self.dropped_words)
        line += (f"; the transcript has {self.total_tokens}, so the last {dropped} word{'s' * (dropped != 1)} "
                 f"had no effect: “{self.dropped_text}”")
        if self.partial_word:
            line += f" (and “{self.partial_word}” was only partly read)"
        return line + "."

    def to_dict(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "total_tokens": self.total_tokens, "used_tokens": self.used_tokens,
                "truncated": self.truncated, "dropped_words": self.dropped_words, "partial_word": self.partial_word}


def _token_spans(backend: Any, text: str) -> tuple[list[tuple[int, int]], int] | None:
    """(character span of each token, number of special tokens added), or None when the tokenizer
    cannot say where its tokens come from."""
    from mesm_core.models.text import HashingTokenizer

    if isinstance(backend, HashingTokenizer):
        # Same token pattern as HashingTokenizer.encode (it lower-cases first; boundaries are the same).
        return [m.span() for m in re.finditer(r"\w+|[^\w\s]", text)], 2
    try:
        encoded = backend(text, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
        special = int(backend.num_special_tokens_to_add(pair=False))
    except (NotImplementedError, TypeError, ValueError, AttributeError):  # slow tokenizers have no offsets
        return None
    return [tuple(span) for span in encoded["offset_mapping"]], special


def text_coverage(tokenizer: Any, text: str) -> TextCoverage | None:
    """What the model's tokenizer (``model.tokenizer``: ``.backend``, ``.max_length``) keeps of ``text``.

    None when the tokenizer cannot report token positions (the prediction is unaffected).
    """
    max_tokens = int(getattr(tokenizer, "max_length", 0) or 0)
    backend = getattr(tokenizer, "backend", None)
    if backend is None or max_tokens <= 0:
        return None
    found = _token_spans(backend, text)
    if found is None:
        return None
    spans, special = found
    total = len(spans) + special
    room = max(0, max_tokens - special)
    if len(spans) <= room:
        return TextCoverage(max_tokens, total, total, text)
    cut = spans[room - 1][1] if room else 0
    read, dropped, partial = [], [], ""
    for match in _WORD.finditer(text):
        start, end = match.span()
        if end <= cut:
            read.append(match.group())
        elif start >= cut:
            dropped.append(match.group())
        else:
            partial = match.group()
            read.append(match.group())
    return TextCoverage(max_tokens, total, min(total, max_tokens), " ".join(read), " ".join(dropped), partial)
