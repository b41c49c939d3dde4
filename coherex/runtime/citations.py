"""Citations for answers built on the knowledge base (RAG).

Every passage `knowledge.search` returns during a run gets a number, stable for the whole run
(the same chunk found twice keeps its number); the model sees the passages with their `ref` and is
asked to cite them as [n]. The run's output then carries the sources: the ones the answer cites,
or — when it cites none — every passage it read, marked as not cited, so a person can still check
where the answer came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from coherex.knowledge.search import SearchHit

RULE = (
    "- Passages from a knowledge search have a `ref` number: cite the ones your answer uses as "
    "[n] (e.g. [2]), right after the statement they support."
)
_MARK = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


@dataclass
class Citations:
    passages: dict[str, dict[str, Any]] = field(default_factory=dict)  # chunk id -> source

    def add(self, hits: list[SearchHit]) -> list[dict[str, Any]]:
        """The hits as the model gets them: numbered, with where each comes from."""
        out = []
        for hit in hits:
            key = str(hit.chunk_id)
            source = self.passages.get(key)
            if source is None:
                meta = hit.metadata or {}
                source = {
                    "ref": len(self.passages) + 1,
                    "title": hit.title,
                    "source": hit.source,
                    "section": meta.get("section") or None,
                    "page": meta.get("page"),
                    "document_id": str(hit.document_id),
                    "chunk_id": key,
                }
                self.passages[key] = source
            shown = {
                k: source[k] for k in ("ref", "title", "source", "section", "page") if source[k] is not None
            }
            out.append({**shown, "text": hit.content})
        return out

    def sources(self, answer: str) -> list[dict[str, Any]]:
        """What goes in the run's output next to the answer (empty when nothing was searched)."""
        cited = {int(n) for group in _MARK.findall(answer or "") for n in group.split(",")}
        read = list(self.passages.values())  # numbered in the order they were read
        used = [{**s, "cited": True} for s in read if s["ref"] in cited]
        return used or [{**s, "cited": False} for s in read]


def format_sources(sources: list[dict[str, Any]]) -> str:
    """Markdown for people: a heading, then `- [1] Title — section, p. 2 (source)` lines."""
    if not sources:
        return ""
    lines = ["**Sources**" if any(s.get("cited") for s in sources) else "**Passages read** (none cited)"]
    for s in sources:
        title = s.get("title") or s.get("source")
        section = s.get("section") or ""
        if title and section.startswith(f"{title} > "):  # the breadcrumb repeats the document's title
            section = section[len(title) + 3 :]
        where = ", ".join(x for x in (section, f"p. {s['page']}" if s.get("page") is not None else None) if x)
        origin = f" ({s['source']})" if s.get("source") and s.get("source") != s.get("title") else ""
        lines.append(f"- [{s['ref']}] {title}{' — ' + where if where else ''}{origin}")
    return "\n".join(lines)
