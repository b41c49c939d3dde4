"""The `knowledge.answer` tool's answer: sentences taken from the passages found, with [n] citations.

Extractive, not generated: the sentences of the best passages that share the most words with the
question (figures and dates count double when the question asks how many, how much or when), in
the passages' own words, each followed by its passage's citation number. Any model, even the
offline 135M one, then only has to repeat or phrase it; when nothing matches, it says so.
"""

from __future__ import annotations

import re
from typing import Any

_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_STOP = {
    "a",
    "an",
    "the",
    "of",
    "to",
    "in",
    "on",
    "for",
    "and",
    "or",
    "is",
    "are",
    "was",
    "be",
    "do",
    "does",
    "did",
    "what",
    "which",
    "who",
    "whom",
    "how",
    "when",
    "where",
    "why",
    "our",
    "we",
    "i",
    "my",
    "me",
    "you",
    "your",
    "it",
    "its",
    "this",
    "that",
    "there",
    "can",
    "could",
    "should",
    "would",
    "will",
    "with",
    "at",
    "by",
    "from",
    "as",
    "about",
    "any",
    "get",
    "have",
    "has",
    "many",
    "much",
}
_FIGURE = re.compile(r"\d")
MAX_SENTENCES = 2


def _stems(text: str) -> set[str]:
    return {w.rstrip("s") if len(w) > 3 else w for w in _WORD.findall(text.lower()) if w not in _STOP}


def extract_answer(question: str, passages: list[dict[str, Any]]) -> dict[str, Any]:
    """`passages` as `Citations.add` returns them (ref, title, text). Returns the answer text (with
    [n] marks) and the sources it cites."""
    asked = _stems(question)
    wants_figure = bool(
        re.search(r"\b(how (many|much|long|often)|when|what date|what time)\b", question.lower())
    )
    scored = []
    for rank, passage in enumerate(passages[:5]):
        for sentence in _SENTENCE.split(passage.get("text") or ""):
            sentence = sentence.strip().lstrip("#*->• ").strip()
            words = _stems(sentence)
            if len(sentence) < 12 or not words:
                continue
            overlap = len(asked & words)
            score = (
                overlap / (len(words) ** 0.5)
                + (0.5 if wants_figure and _FIGURE.search(sentence) else 0)
                - 0.05 * rank
            )
            if overlap:
                scored.append((score, sentence, passage))
    scored.sort(key=lambda s: -s[0])
    chosen: list[tuple[str, dict[str, Any]]] = []
    for _score, sentence, passage in scored:
        if sentence not in (c[0] for c in chosen):
            chosen.append((sentence, passage))
        if len(chosen) == MAX_SENTENCES:
            break
    if not chosen:
        return {"answer": "The knowledge base does not contain an answer to this question.", "sources": []}
    text = " ".join(f"{s.rstrip('.')}. [{p['ref']}]" for s, p in chosen)
    sources = {p["ref"]: p.get("title") or p.get("source") for _, p in chosen}
    return {"answer": text, "sources": [f"[{ref}] {title}" for ref, title in sources.items()]}
