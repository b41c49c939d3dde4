"""Knowledge collections, documents and chunks (embeddings in pgvector)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from coherex.store.models import Chunk, Collection, Document
from coherex.store.repos._base import Jsonb, Repo, require

_COLL = "id, team_id, name, description, embedding_model, embedding_dim, created_at"
_DOC = ("id, team_id, collection_id, source, title, mime_type, content_hash, size_bytes, metadata, status, error, "
        "chunk_count, created_at")
_CHUNK = "id, team_id, collection_id, document_id, chunk_index, content, content_hash, metadata"


def vector_literal(values: Sequence[float]) -> str:
    return "[" + ",".join(f"{v:.7g}" for v in values) + "]"


class KnowledgeRepo(Repo):
    # ------------------------------------------------------------ collections
    async def create_collection(
        self, team_id: UUID, name: str, *, description: str = "", embedding_model: str = "all-MiniLM-L6-v2",
        embedding_dim: int = 384,
    ) -> Collection:
        return require(await self._one(
            Collection,
            f"insert into public.knowledge_collections (team_id, name, description, embedding_model, embedding_dim, "
            f"created_by) values (%s, %s, %s, %s, %s, %s) returning {_COLL}",
            (team_id, name, description, embedding_model, embedding_dim, self.identity.user_id),
        ), "collection")

    async def get_collection(self, team_id: UUID, name: str) -> Collection | None:
        return await self._one(
            Collection, f"select {_COLL} from public.knowledge_collections where team_id = %s and name = %s",
            (team_id, name),
        )

    async def list_collections(self, team_id: UUID | None = None) -> list[Collection]:
        return await self._all(
            Collection,
            f"select {_COLL} from public.knowledge_collections where (%(t)s::uuid is null or team_id = %(t)s) "
            "order by name",
            {"t": team_id},
        )

    async def delete_collection(self, collection_id: UUID) -> bool:
        return await self._exec("delete from public.knowledge_collections where id = %s", (collection_id,)) > 0

    # ------------------------------------------------------------ documents
    async def add_document(
        self, collection: Collection, *, source: str, title: str, mime_type: str, content_hash: str,
        size_bytes: int, metadata: dict[str, Any] | None = None,
    ) -> tuple[Document, bool]:
        """(document, created). The same content in the same collection is stored once."""
        doc = await self._one(
            Document,
            f"insert into public.knowledge_documents (team_id, collection_id, source, title, mime_type, content_hash, "
            f"size_bytes, metadata, created_by) values (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            f"on conflict (collection_id, content_hash) do nothing returning {_DOC}",
            (collection.team_id, collection.id, source, title, mime_type, content_hash, size_bytes,
             Jsonb(metadata or {}), self.identity.user_id),
        )
        if doc is not None:
            return doc, True
        existing = await self._one(
            Document, f"select {_DOC} from public.knowledge_documents where collection_id = %s and content_hash = %s",
            (collection.id, content_hash),
        )
        return require(existing, "document"), False

    async def list_documents(self, collection_id: UUID) -> list[Document]:
        return await self._all(
            Document, f"select {_DOC} from public.knowledge_documents where collection_id = %s order by created_at",
            (collection_id,),
        )

    async def set_document_status(self, document_id: UUID, status: str, *, error: str | None = None) -> None:
        await self._exec(
            "update public.knowledge_documents set status = %s, error = %s, "
            "chunk_count = (select count(*) from public.knowledge_chunks where document_id = %s) where id = %s",
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
                "insert into public.knowledge_chunks (team_id, collection_id, document_id, chunk_index, content, "
                "content_hash, metadata, embedding, embedding_dim) values (%s, %s, %s, %s, %s, %s, %s, %s::extensions.vector, %s)",
                [
                    (document.team_id, document.collection_id, document.id, i, content, h, Jsonb(meta),
                     vector_literal(emb) if emb is not None else None, len(emb) if emb is not None else None)
                    for i, (content, h, meta, emb) in enumerate(chunks)
                ],
            )
        return len(chunks)

    async def chunks(self, document_id: UUID) -> list[Chunk]:
        return await self._all(
            Chunk, f"select {_CHUNK} from public.knowledge_chunks where document_id = %s order by chunk_index",
            (document_id,),
        )
