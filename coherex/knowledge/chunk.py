"""Split parsed blocks into overlapping chunks that follow the document's structure.

Paragraphs of one section are packed together up to `max_chars`; a chunk never spans two
sections or two pages, so its `section` and `page` metadata are exact. A paragraph longer than
`max_chars` is split at sentence ends (and, for a run-on sentence, at word boundaries). Each chunk
after the first in a section starts with the tail of the previous one (about `overlap_chars`,
whole sentences), so an answer that straddles a boundary is still found. A chunk's id is the
hash of its content, so the same text always gets the same id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import groupby

from coherex.knowledge.parse import Block

MAX_CHARS = 1000  # ~200 tokens: MiniLM reads at most 256, so nothing is cut off
OVERLAP_CHARS = 150

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=\S)")


@dataclass(frozen=True)
class TextChunk:
    text: str
    section: str
    page: int | None

    @property
    def content_hash(self) -> str:
        return content_hash(self.text)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def chunk_blocks(
    blocks: list[Block], max_chars: int = MAX_CHARS, overlap_chars: int = OVERLAP_CHARS
) -> list[TextChunk]:
    chunks: list[TextChunk] = []
    for (section, _), group in groupby(blocks, key=lambda b: (b.section, b.page)):
        # (piece, page) units no longer than max_chars, in order
        units = [(piece, b.page) for b in group for piece in _split(b.text, max_chars)]
        chunks.extend(_pack(units, section, max_chars, overlap_chars))
    return chunks


def _pack(
    units: list[tuple[str, int | None]], section: str, max_chars: int, overlap: int
) -> Iterator[TextChunk]:
    current: list[tuple[str, int | None]] = []
    fresh = 0  # units in `current` that are not overlap carried from the previous chunk
    for unit in units:
        if current and _length(current + [unit]) > max_chars:
            if fresh:
                yield _make(current, section)
            current = _tail(current, overlap)
            while current and _length(current + [unit]) > max_chars:
                current.pop(0)
            fresh = 0
        current.append(unit)
        fresh += 1
    if fresh:
        yield _make(current, section)


def _make(units: list[tuple[str, int | None]], section: str) -> TextChunk:
    return TextChunk("\n\n".join(u for u, _ in units), section, units[0][1])


def _length(units: list[tuple[str, int | None]]) -> int:
    return sum(len(u) for u, _ in units) + 2 * (len(units) - 1)


def _tail(units: list[tuple[str, int | None]], overlap: int) -> list[tuple[str, int | None]]:
    """The last sentences of `units`, about `overlap` characters, as carried-over units."""
    text, page = units[-1]
    sentences = _SENTENCE_END.split(text)
    tail: list[str] = []
    while sentences and sum(len(s) + 1 for s in tail) + len(sentences[-1]) <= overlap:
        tail.insert(0, sentences.pop())
    return [(" ".join(tail), page)] if tail else []


def _split(text: str, max_chars: int) -> Iterator[str]:
    """Pieces of `text` no longer than max_chars, cut at sentence ends, else at spaces."""
    if len(text) <= max_chars:
        yield text
        return
    piece = ""
    for sentence in _SENTENCE_END.split(text):
        for part in _hard_split(sentence, max_chars):
            if piece and len(piece) + 1 + len(part) > max_chars:
                yield piece
                piece = part
            else:
                piece = f"{piece} {part}" if piece else part
    if piece:
        yield piece


def _hard_split(sentence: str, max_chars: int) -> Iterator[str]:
    while len(sentence) > max_chars:
        cut = sentence.rfind(" ", 0, max_chars)
        cut = cut if cut > max_chars // 2 else max_chars
        yield sentence[:cut].strip()
        sentence = sentence[cut:].strip()
    if sentence:
        yield sentence
