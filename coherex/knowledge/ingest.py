"""Ingest: file → parsed blocks → chunks → embeddings → one transaction in the database.

Everything that can fail on bad input (size, type, parsing, emptiness) and everything slow
(embedding) happens before the write transaction, so a failed ingest leaves the collection exactly
as it was — not even a new empty collection. The same content in the same collection is stored
once (documents are de-duplicated by content hash, so re-ingesting changes nothing); a changed file
with the same source replaces its previous version, and the embeddings of its unchanged chunks are
reused.

`ingest_file` is what the API, the chat and the CLI call. It takes only plain, serialisable
arguments besides `db` and an optional progress callback, so a background job (procrastinate) can
call it as it is for large files and report progress from the callback.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from coherex.errors import NotFound, UserError
from coherex.knowledge.chunk import TextChunk, chunk_blocks
from coherex.knowledge.embed import Embedder, ensure_same_model, get_embedder
from coherex.knowledge.parse import ParsedDocument, detect, parse
from coherex.settings import get_settings
from coherex.store.db import Database, Identity
from coherex.store.models import Collection
from coherex.store.repos import Session

COLLECTION_NAME_RULE = (
    "lower-case letters, digits and dashes, starting and ending with a letter or digit (max 63)"
)


@dataclass(frozen=True)
class Progress:
    stage: str  # "parse", "embed", "store"
    done: int
    total: int
    filename: str


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class IngestResult:
    collection: str
    filename: str
    source: str
    document_id: UUID
    title: str
    chunks: int  # chunks the document has
    added: bool  # False: the same content was already in the collection
    replaced: int = 0  # older versions of the same source removed
    reused_embeddings: int = 0


@dataclass(frozen=True)
class SourceDocument:
    """One document from a synced data source (a GitHub Markdown file, a Slack channel's day)."""

    source: str  # stable identity: a URL or "github:owner/repo/docs/x.md"
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    kind: Literal["markdown", "html", "text"] = "markdown"  # how `text` is structured


def max_file_bytes() -> int:
    return int(get_settings().kb_max_file_mb * 1024 * 1024)


def read_limited(path: Path, filename: str | None = None) -> bytes:
    """The file's bytes, refusing an oversized file before reading it."""
    filename = filename or path.name
    limit = max_file_bytes()
    try:
        size = path.stat().st_size
        if size > limit:
            raise _too_large(filename, size, limit)
        with path.open("rb") as f:
            data = f.read(limit + 1)  # the file may have grown since stat()
    except FileNotFoundError as exc:
        raise UserError(f"{path} does not exist.") from exc
    except IsADirectoryError as exc:
        raise UserError(f"{path} is a directory.", hint="Pass the files in it, e.g. `docs/*.md`.") from exc
    except PermissionError as exc:
        raise UserError(f"{path} cannot be read (permission denied).") from exc
    if len(data) > limit:
        raise _too_large(filename, len(data), limit)
    return data


def _too_large(filename: str, size: int, limit: int) -> UserError:
    return UserError(
        f"{filename} is {size / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB.",
        hint="Split the file, or raise the limit with COHEREX_KB_MAX_FILE_MB.",
    )


async def ingest_file(
    db: Database,
    identity: Identity,
    team_id: UUID | str,
    collection_name: str,
    path_or_bytes: Path | str | bytes,
    filename: str | None = None,
    *,
    metadata: dict[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> IngestResult:
    """Add one file to a collection (created on first use). Raises `UserError` for bad input."""
    if isinstance(path_or_bytes, bytes):
        if filename is None:
            raise ValueError("filename is required with bytes")
        if len(path_or_bytes) > max_file_bytes():
            raise _too_large(filename, len(path_or_bytes), max_file_bytes())
        data, source = path_or_bytes, filename
    else:
        path = Path(path_or_bytes)
        filename = filename or path.name
        data, source = read_limited(path, filename), filename
    kind = detect(data, filename)  # a wrong extension is an error even for content we already have
    digest = hashlib.sha256(data).hexdigest()
    return await _ingest(
        db,
        identity,
        UUID(str(team_id)),
        collection_name,
        source,
        filename,
        digest,
        lambda: parse(data, filename, kind),
        len(data),
        metadata or {},
        progress,
    )


async def sync_documents(
    db: Database,
    identity: Identity,
    team_id: UUID | str,
    collection_name: str,
    documents: Iterable[SourceDocument],
    *,
    prune_prefix: str | None = None,
    progress: ProgressCallback | None = None,
) -> list[IngestResult]:
    """The seam for data-source sync: ingest each document; changed ones replace their old
    version, unchanged ones cost nothing. With `prune_prefix`, documents whose source starts with it
    and that the source no longer has are removed (a deleted GitHub file, say)."""
    team = UUID(str(team_id))
    results = []
    for doc in documents:
        if not doc.text.strip():
            continue  # nothing to index (an empty file, a quiet day); pruned like a removed one
        text = doc.text.encode()
        digest = hashlib.sha256(text).hexdigest()
        results.append(
            await _ingest(
                db,
                identity,
                team,
                collection_name,
                doc.source,
                doc.source,
                digest,
                lambda d=doc: _parse_source(d),
                len(text),
                doc.metadata,
                progress,
            )
        )
    if prune_prefix is not None:
        async with db.session(identity) as s:
            collection = await s.knowledge.get_collection(team, collection_name)
            if collection is not None:
                await s.knowledge.delete_sources_except(
                    collection.id, prune_prefix, [r.source for r in results]
                )
    return results


def _parse_source(doc: SourceDocument) -> ParsedDocument:
    extension = {"markdown": ".md", "html": ".html", "text": ".txt"}[doc.kind]
    parsed = parse(doc.text.encode(), doc.source + extension)
    parsed.title = doc.title or parsed.title
    return parsed


def validate_collection_name(name: str) -> None:
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name):
        raise UserError(f"{name!r} is not a valid collection name: use {COLLECTION_NAME_RULE}.")


async def _ingest(
    db: Database,
    identity: Identity,
    team_id: UUID,
    collection_name: str,
    source: str,
    filename: str,
    digest: str,
    parse_fn: Callable[[], ParsedDocument],
    size: int,
    metadata: dict[str, Any],
    progress: ProgressCallback | None,
) -> IngestResult:
    validate_collection_name(collection_name)
    report = progress or (lambda p: None)
    embedder = get_embedder()
    async with db.session(identity) as s:
        collection = await s.knowledge.get_collection(team_id, collection_name)
        if collection is not None:
            ensure_same_model(collection, embedder)
            existing = await s.knowledge.get_document_by_hash(collection.id, digest)
            if existing is not None:
                return IngestResult(
                    collection_name,
                    filename,
                    source,
                    existing.id,
                    existing.title,
                    existing.chunk_count,
                    False,
                )

    report(Progress("parse", 0, 1, filename))
    parsed = await asyncio.to_thread(parse_fn)
    chunks = chunk_blocks(parsed.blocks)
    report(Progress("parse", 1, 1, filename))

    vectors, reused = await _embed_chunks(
        db, identity, collection, embedder, parsed.title, chunks, filename, report
    )

    report(Progress("store", 0, 1, filename))
    async with db.session(identity) as s:
        repo = s.knowledge
        collection = await repo.get_or_create_collection(
            team_id, collection_name, embedder.model, len(vectors[0])
        )
        ensure_same_model(collection, embedder)
        doc, created = await repo.add_document(
            collection,
            source=source,
            title=parsed.title,
            mime_type=parsed.mime_type,
            content_hash=digest,
            size_bytes=size,
            metadata=metadata,
        )
        replaced = 0
        if created:
            await repo.add_chunks(
                doc,
                [
                    (c.text, c.content_hash, {**metadata, **_chunk_meta(source, parsed.title, c)}, v)
                    for c, v in zip(chunks, vectors, strict=True)
                ],
            )
            await repo.set_document_status(doc.id, "ready")
            replaced = await repo.delete_other_versions(collection.id, source, doc.id)
    report(Progress("store", 1, 1, filename))
    return IngestResult(
        collection_name,
        filename,
        source,
        doc.id,
        doc.title,
        len(chunks) if created else doc.chunk_count,
        created,
        replaced,
        reused,
    )


def _chunk_meta(source: str, title: str, chunk: TextChunk) -> dict[str, Any]:
    meta: dict[str, Any] = {"source": source, "title": title}
    if chunk.section:
        meta["section"] = chunk.section
    if chunk.page is not None:
        meta["page"] = chunk.page
    return meta


def embedding_text(title: str, section: str, content: str) -> str:
    """What is embedded for a chunk: its text with the document title and section as context."""
    context = " > ".join(p for p in (title, section) if p)
    return f"{context}\n{content}" if context else content


async def _embed_chunks(
    db: Database,
    identity: Identity,
    collection: Collection | None,
    embedder: Embedder,
    title: str,
    chunks: list[TextChunk],
    filename: str,
    report: ProgressCallback,
) -> tuple[list[list[float]], int]:
    known: dict[str, list[float]] = {}
    if collection is not None:
        async with db.session(identity) as s:
            known = await s.knowledge.embeddings_by_hash(collection.id, [c.content_hash for c in chunks])
    todo = [c for c in chunks if c.content_hash not in known]
    batch = get_settings().embeddings_batch_size
    report(Progress("embed", 0, len(todo), filename))
    for start in range(0, len(todo), batch):
        part = todo[start : start + batch]
        texts = [embedding_text(title, c.section, c.text) for c in part]
        for c, v in zip(part, await asyncio.to_thread(embedder.embed, texts), strict=True):
            known[c.content_hash] = v
        report(Progress("embed", start + len(part), len(todo), filename))
    return [known[c.content_hash] for c in chunks], len(chunks) - len(todo)


async def reindex_collection(
    db: Database,
    identity: Identity,
    team_id: UUID | str,
    collection_name: str,
    *,
    progress: ProgressCallback | None = None,
) -> int:
    """Re-embed every chunk of a collection with the configured embedder; returns the chunk count."""
    report = progress or (lambda p: None)
    embedder = get_embedder()
    async with db.session(identity) as s:
        collection = await require_collection(s, UUID(str(team_id)), collection_name)
        rows = await s.knowledge.chunk_texts(collection.id)
    batch = get_settings().embeddings_batch_size
    vectors: list[list[float]] = []
    report(Progress("embed", 0, len(rows), collection_name))
    for start in range(0, len(rows), batch):
        texts = [
            embedding_text(title, section, content)
            for _, content, title, section in rows[start : start + batch]
        ]
        vectors.extend(await asyncio.to_thread(embedder.embed, texts))
        report(Progress("embed", len(vectors), len(rows), collection_name))
    dim = len(vectors[0]) if vectors else embedder.dim
    async with db.session(identity) as s:
        await s.knowledge.set_embeddings(
            collection, embedder.model, dim, [(r[0], v) for r, v in zip(rows, vectors, strict=False)]
        )
    return len(rows)


async def require_collection(session: Session, team_id: UUID, name: str) -> Collection:
    collection = await session.knowledge.get_collection(team_id, name)
    if collection is None:
        names = ", ".join(c.name for c in await session.knowledge.list_collections(team_id)) or "none yet"
        raise NotFound(
            f"There is no collection {name!r} in this team.",
            hint=f"Collections: {names}. Add files with `coherex kb add PATH --collection {name}`.",
        )
    return collection
