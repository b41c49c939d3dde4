"""Knowledge collections, documents and chunks (embeddings in pgvector)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.rows import class_row

from coherex.store.models import Chunk, Collection, Document
from coherex.store.repos._base import Jsonb, Repo, require

_COLL = "id, team_id, name, description, embedding_model, embedding_dim, created_at"
_DOC = (
    "id, team_id, collection_id, source, title, mime_type, content_hash, size_bytes, metadata, status, "
    "error, chunk_count, created_at"
)
_CHUNK = "id, team_id, collection_id, document_id, chunk_index, content, content_hash, metadata"


# HNSW candidate list: recall@10 against exact search at 100k chunks was 0.94 at 100, 0.96 at 120,
# 0.98 at 150, 0.995 at 200 — and the time of the vector side grows with it (bench_knowledge.py)
EF_SEARCH = 150
# keyword matches ranked per query (see _SEARCH_SQL); 1000 cost ~15 ms at 100k chunks on common words
FTS_CAP = 200


def vector_literal(values: Sequence[float]) -> str:
    return "[" + ",".join(f"{v:.7g}" for v in values) + "]"


class KnowledgeRepo(Repo):
    # ------------------------------------------------------------ collections
    async def create_collection(
        self,
        team_id: UUID,
        name: str,
        *,
        description: str = "",
        embedding_model: str = "all-MiniLM-L6-v2",
        embedding_dim: int = 384,
    ) -> Collection:
        return require(
            await self._one(
                Collection,
                "insert into public.knowledge_collections (team_id, name, description, embedding_model, "
                f"embedding_dim, created_by) values (%s, %s, %s, %s, %s, %s) returning {_COLL}",
                (team_id, name, description, embedding_model, embedding_dim, self.identity.user_id),
            ),
            "collection",
        )

    async def get_collection(self, team_id: UUID, name: str) -> Collection | None:
        return await self._one(
            Collection,
            f"select {_COLL} from public.knowledge_collections where team_id = %s and name = %s",
            (team_id, name),
        )

    async def list_collections(self, team_id: UUID | None = None) -> list[Collection]:
        return await self._all(
            Collection,
            f"select {_COLL} from public.knowledge_collections where (%(t)s::uuid is null or team_id = "
            "%(t)s) order by name",
            {"t": team_id},
        )

    async def delete_collection(self, collection_id: UUID) -> bool:
        return (
            await self._exec("delete from public.knowledge_collections where id = %s", (collection_id,)) > 0
        )

    # ------------------------------------------------------------ documents
    async def add_document(
        self,
        collection: Collection,
        *,
        source: str,
        title: str,
        mime_type: str,
        content_hash: str,
        size_bytes: int,
        metadata: dict[str, Any] | None = None,
    ) -> tuple[Document, bool]:
        """(document, created). The same content in the same collection is stored once."""
        doc = await self._one(
            Document,
            "insert into public.knowledge_documents (team_id, collection_id, source, title, mime_type, "
            f"content_hash, size_bytes, metadata, created_by) values (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            f"on conflict (collection_id, content_hash) do nothing returning {_DOC}",
            (
                collection.team_id,
                collection.id,
                source,
                title,
                mime_type,
                content_hash,
                size_bytes,
                Jsonb(metadata or {}),
                self.identity.user_id,
            ),
        )
        if doc is not None:
            return doc, True
        return require(await self.get_document_by_hash(collection.id, content_hash), "document"), False

    async def list_documents(self, collection_id: UUID) -> list[Document]:
        return await self._all(
            Document,
            f"select {_DOC} from public.knowledge_documents where collection_id = %s order by created_at",
            (collection_id,),
        )

    async def set_document_status(self, document_id: UUID, status: str, *, error: str | None = None) -> None:
        await self._exec(
            "update public.knowledge_documents set status = %s, error = %s, "
            "chunk_count = (select count(*) from public.knowledge_chunks where document_id = %s) where id = "
            "%s",
            (status, error, document_id, document_id),
        )

    async def delete_document(self, document_id: UUID) -> bool:
        return await self._exec("delete from public.knowledge_documents where id = %s", (document_id,)) > 0

    # ------------------------------------------------------------ chunks
    async def add_chunks(
        self, document: Document, chunks: Sequence[tuple[str, str, dict[str, Any], Sequence[float] | None]]
    ) -> int:
        """Insert (content, content_hash, metadata, embedding) rows in order; returns how many."""
        async with self.conn.cursor() as cur:
            await cur.executemany(
                "insert into public.knowledge_chunks (team_id, collection_id, document_id, chunk_index, "
                "content, "
                "content_hash, metadata, embedding, embedding_dim) values (%s, %s, %s, %s, %s, %s, %s, "
                "%s::extensions.vector, %s)",
                [
                    (
                        document.team_id,
                        document.collection_id,
                        document.id,
                        i,
                        content,
                        h,
                        Jsonb(meta),
                        vector_literal(emb) if emb is not None else None,
                        len(emb) if emb is not None else None,
                    )
                    for i, (content, h, meta, emb) in enumerate(chunks)
                ],
            )
        return len(chunks)

    async def chunks(self, document_id: UUID) -> list[Chunk]:
        return await self._all(
            Chunk,
            f"select {_CHUNK} from public.knowledge_chunks where document_id = %s order by chunk_index",
            (document_id,),
        )

    # ------------------------------------------------------------ ingest helpers
    async def get_or_create_collection(
        self, team_id: UUID, name: str, embedding_model: str, embedding_dim: int
    ) -> Collection:
        created = await self._one(
            Collection,
            "insert into public.knowledge_collections (team_id, name, embedding_model, embedding_dim, "
            "created_by) "
            f"values (%s, %s, %s, %s, %s) on conflict (team_id, name) do nothing returning {_COLL}",
            (team_id, name, embedding_model, embedding_dim, self.identity.user_id),
        )
        return created or require(await self.get_collection(team_id, name), "collection")

    async def get_document_by_hash(self, collection_id: UUID, content_hash: str) -> Document | None:
        return await self._one(
            Document,
            f"select {_DOC} from public.knowledge_documents where collection_id = %s and content_hash = %s",
            (collection_id, content_hash),
        )

    async def embeddings_by_hash(self, collection_id: UUID, hashes: Sequence[str]) -> dict[str, list[float]]:
        """Stored embeddings of chunks with these content hashes: unchanged text is not embedded twice."""
        async with self.conn.cursor() as cur:
            await cur.execute(
                "select distinct on (content_hash) content_hash, embedding::text from "
                "public.knowledge_chunks "
                "where collection_id = %s and content_hash = any(%s) and embedding is not null",
                (collection_id, list(hashes)),
            )
            return {h: json.loads(v) for h, v in await cur.fetchall()}

    async def delete_other_versions(self, collection_id: UUID, source: str, keep: UUID) -> int:
        """A new version of a source replaces the old ones."""
        return await self._exec(
            "delete from public.knowledge_documents where collection_id = %s and source = %s and id <> %s",
            (collection_id, source, keep),
        )

    async def delete_sources_except(self, collection_id: UUID, prefix: str, keep: Sequence[str]) -> int:
        """Sync: documents under `prefix` that the source no longer has are removed."""
        return await self._exec(
            "delete from public.knowledge_documents where collection_id = %s and starts_with(source, %s) "
            "and not (source = any(%s))",
            (collection_id, prefix, list(keep)),
        )

    async def collection_stats(self, team_id: UUID) -> list[CollectionStats]:
        return await self._all(
            CollectionStats,
            "select c.name, c.description, c.embedding_model, c.embedding_dim, c.created_at, "
            "(select count(*) from public.knowledge_documents d where d.collection_id = c.id) as documents, "
            "(select count(*) from public.knowledge_chunks k where k.collection_id = c.id) as chunks "
            "from public.knowledge_collections c where c.team_id = %s order by c.name",
            (team_id,),
        )

    # ------------------------------------------------------------ reindex
    async def chunk_texts(self, collection_id: UUID) -> list[tuple[UUID, str, str, str]]:
        """(chunk id, content, document title, section) of every chunk, for re-embedding."""
        async with self.conn.cursor() as cur:
            await cur.execute(
                "select c.id, c.content, d.title, coalesce(c.metadata->>'section', '') from "
                "public.knowledge_chunks c "
                "join public.knowledge_documents d on d.id = c.document_id where c.collection_id = %s "
                "order by c.document_id, c.chunk_index",
                (collection_id,),
            )
            return await cur.fetchall()

    async def set_embeddings(
        self, collection: Collection, model: str, dim: int, rows: Sequence[tuple[UUID, Sequence[float]]]
    ) -> None:
        async with self.conn.cursor() as cur:
            await cur.executemany(
                "update public.knowledge_chunks set embedding = %s::extensions.vector, embedding_dim = %s "
                "where id = %s and collection_id = %s",
                [(vector_literal(v), dim, chunk_id, collection.id) for chunk_id, v in rows],
            )
        await self._exec(
            "update public.knowledge_collections set embedding_model = %s, embedding_dim = %s where id = %s",
            (model, dim, collection.id),
        )

    # ------------------------------------------------------------ search
    async def search(
        self,
        collection: Collection,
        query: str,
        query_vector: Sequence[float],
        *,
        k: int = 5,
        filters: dict[str, Any] | None = None,
        candidates: int = 40,
        rrf_k: int = 60,
        ef_search: int = EF_SEARCH,
        fts_cap: int = FTS_CAP,
    ) -> list[SearchRow]:
        """Hybrid search: HNSW cosine and full-text candidates fused by reciprocal rank fusion.

        The vector side orders by the same typed cast as the collection's partial HNSW index
        (`embedding::vector(384)` where `embedding_dim = 384`), so the planner uses it; iterative
        index scans keep filtered queries (collection, metadata) from coming back short.
        """
        statement, params = build_search(
            collection,
            query,
            query_vector,
            k=k,
            filters=filters,
            candidates=candidates,
            rrf_k=rrf_k,
            fts_cap=fts_cap,
        )
        await self.conn.execute(
            # no sequential scans in this transaction: with a LIMIT the planner expects a scan of
            # the table to find the keyword matches early, and on words that are not very common it
            # reads thousands of rows (measured: 18 ms) where the GIN index finds them in < 1 ms
            "select set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', "
            "'relaxed_order', true), set_config('enable_seqscan', 'off', true)",
            (str(max(ef_search, candidates)),),
        )
        async with self.conn.cursor(row_factory=class_row(SearchRow)) as cur:
            # never a prepared statement: its generic plan cannot see the query vector and may
            # trade the HNSW index for a sequential scan
            await cur.execute(statement, params, prepare=False)
            return await cur.fetchall()


def build_search(
    collection: Collection,
    query: str,
    query_vector: Sequence[float],
    *,
    k: int,
    filters: dict[str, Any] | None = None,
    candidates: int = 40,
    rrf_k: int = 60,
    fts_cap: int = FTS_CAP,
) -> tuple[sql.Composed, dict[str, Any]]:
    """The hybrid-search statement and its parameters (separate so it can be EXPLAINed)."""
    dim = int(collection.embedding_dim)
    vec = sql.SQL("(c.embedding::extensions.vector({dim}))").format(dim=sql.Literal(dim))
    qvec = sql.SQL("%(qvec)s::extensions.vector({dim})").format(dim=sql.Literal(dim))
    # the metadata condition only when asked for: even an empty `@>` makes the planner guess 1%
    # of the rows and skip the HNSW index
    where = sql.SQL("and c.metadata @> %(filters)s" if filters else "")
    statement = sql.SQL(_SEARCH_SQL).format(vec=vec, qvec=qvec, dim=sql.Literal(dim), filter=where)
    params = {
        "cid": collection.id,
        "qvec": vector_literal(query_vector),
        "q": query,
        "n": candidates,
        "k": k,
        "filters": Jsonb(filters or {}),
        "rrf": rrf_k,
        "fts_cap": fts_cap,
    }
    return statement, params


# The full-text side: `websearch_to_tsquery` understands "quoted phrases", -exclusions and `or`;
# a plain question is turned into an `or` of its words by the caller so ts_rank can order chunks
# by how many of them they contain. Ranking touches every matching row, so at most `fts_cap`
# matches are ranked: exact whenever the query's words occur in at most that many chunks (rare
# words, where keyword search matters most); a query with very common words on a large collection
# ranks a sample on that side, while the vector side still searches the whole collection.
# Headlines (ts_headline parses the whole text) are made for the final k rows only.
_SEARCH_SQL = """
with vec as (
  select id, distance, row_number() over (order by distance) as rank from (
    select c.id, {vec} operator(extensions.<=>) {qvec} as distance
    from public.knowledge_chunks c
    where c.collection_id = %(cid)s and c.embedding_dim = {dim} {filter}
    order by {vec} operator(extensions.<=>) {qvec}
    limit %(n)s) v
), fts as (
  select id, row_number() over (order by score desc) as rank from (
    select m.id, ts_rank(m.tsv, q) as score
    from (select c.id, c.tsv from public.knowledge_chunks c, websearch_to_tsquery('english', %(q)s) q
          where c.collection_id = %(cid)s and c.tsv @@ q {filter}
          limit %(fts_cap)s) m, websearch_to_tsquery('english', %(q)s) q
    order by score desc
    limit %(n)s) f
), fused as (
  select coalesce(vec.id, fts.id) as id,
         coalesce(1.0 / (%(rrf)s + vec.rank), 0) + coalesce(1.0 / (%(rrf)s + fts.rank), 0) as score,
         vec.rank as vector_rank, fts.rank as text_rank, 1 - vec.distance as similarity
  from vec full outer join fts on vec.id = fts.id
  -- a tie (mirrored ranks) goes to the passage with the query's words: the more specific evidence
  order by score desc, text_rank nulls last, vector_rank nulls last
  limit %(k)s
)
select c.id as chunk_id, c.content_hash, c.document_id, d.title, d.source, c.content, c.metadata,
       f.score::float8 as score, f.similarity::float8 as similarity, f.vector_rank, f.text_rank,
       ts_headline('english', c.content, websearch_to_tsquery('english', %(q)s),
                   'MaxFragments=2, MinWords=8, MaxWords=30, StartSel=**, StopSel=**, '
                   'FragmentDelimiter=" … "')
         as highlight
from fused f
join public.knowledge_chunks c on c.id = f.id
join public.knowledge_documents d on d.id = c.document_id
order by f.score desc, f.text_rank nulls last, f.vector_rank nulls last
"""


@dataclass(frozen=True)
class SearchRow:
    chunk_id: UUID
    content_hash: str
    document_id: UUID
    title: str
    source: str
    content: str
    metadata: dict[str, Any]
    score: float
    similarity: float | None
    vector_rank: int | None
    text_rank: int | None
    highlight: str


@dataclass(frozen=True)
class CollectionStats:
    name: str
    description: str
    embedding_model: str
    embedding_dim: int
    created_at: datetime
    documents: int
    chunks: int
