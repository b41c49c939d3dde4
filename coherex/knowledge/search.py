"""Hybrid search over one collection: what people (`kb search`), the API and agents
(`knowledge.search` tool) call."""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID

from coherex.errors import UserError
from coherex.knowledge.embed import ensure_same_model, get_embedder
from coherex.knowledge.ingest import require_collection
from coherex.store.db import Database, Identity

MAX_K = 50
_OPERATORS = re.compile(r'"|(^|\s)-\w|\bor\b', re.IGNORECASE)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class SearchHit:
    chunk_id: UUID
    content_hash: str  # the chunk's stable id: the same text always has the same hash
    document_id: UUID
    title: str
    source: str
    content: str
    highlight: str  # matching words wrapped in **…**
    score: float  # reciprocal-rank-fusion score, higher is better
    similarity: float | None  # cosine similarity to the query, when the vector side found it
    metadata: dict[str, Any]  # source, title, section, page, and what the uploader attached

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, UUID) else v for k, v in asdict(self).items()}


def text_query(query: str) -> str:
    """The `websearch_to_tsquery` input: the query as typed when it uses search syntax
    ("phrases", -exclusions, `or`); otherwise its words joined by `or`, because a question
    rarely has all its words in one passage, and ts_rank then favours passages with more of them."""
    if _OPERATORS.search(query):
        return query
    return " or ".join(_WORD.findall(query))


async def knowledge_search(
    db: Database,
    identity: Identity,
    team_id: UUID | str,
    collection: str,
    query: str,
    k: int = 5,
    *,
    filters: dict[str, Any] | None = None,
) -> list[SearchHit]:
    """The `k` best chunks of `collection` for `query`. `filters` match chunk metadata exactly
    (`{"source": "handbook.pdf"}`, `{"page": 3}`)."""
    query = query.strip()
    if not query:
        raise UserError("The search query is empty.")
    if not 1 <= k <= MAX_K:
        raise UserError(f"k must be between 1 and {MAX_K}, not {k}.")
    async with db.session(identity) as s:
        coll = await require_collection(s, UUID(str(team_id)), collection)
    embedder = get_embedder()  # after the lookup: an unknown collection loads no model
    ensure_same_model(coll, embedder)
    [vector] = await asyncio.to_thread(embedder.embed, [query])
    async with db.session(identity) as s:
        rows = await s.knowledge.search(
            coll, text_query(query), vector, k=k, filters=filters, candidates=max(40, 4 * k)
        )
    return [
        SearchHit(
            r.chunk_id,
            r.content_hash,
            r.document_id,
            r.title,
            r.source,
            r.content,
            r.highlight,
            r.score,
            r.similarity,
            r.metadata,
        )
        for r in rows
    ]
