"""Knowledge collections as the CLI and the API manage them: what they hold, removing collections
or documents, queued uploads and scheduled syncs. (Ingesting and searching are
`coherex.knowledge`'s.)"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from coherex.errors import NotFound
from coherex.knowledge.ingest import require_collection
from coherex.store.db import Database, Identity


async def collection_stats(db: Database, who: Identity, team_id: UUID) -> list[Any]:
    """Each collection of the team with its documents, chunks and embedding model."""
    async with db.session(who) as s:
        return await s.knowledge.collection_stats(team_id)


async def documents(db: Database, who: Identity, team_id: UUID, collection: str) -> list[Any]:
    """The documents of a collection (NotFound naming the team's collections)."""
    async with db.session(who) as s:
        return await s.knowledge.list_documents((await require_collection(s, team_id, collection)).id)


async def remove(db: Database, who: Identity, team_id: UUID, collection: str, names: list[str]) -> None:
    """Remove the collection (no `names`), or the documents named (by source or id)."""
    async with db.session(who) as s:
        coll = await require_collection(s, team_id, collection)
        if not names:
            await s.knowledge.delete_collection(coll.id)
            return
        docs = await s.knowledge.list_documents(coll.id)
        for name in names:
            matches = [d for d in docs if name in (d.source, str(d.id))]
            if not matches:
                raise NotFound(
                    f"No document {name!r} in {collection!r}.",
                    hint=f"See them with `coherex kb list --collection {collection}`.",
                )
            for d in matches:
                await s.knowledge.delete_document(d.id)


async def queue_upload(
    db: Database, who: Identity, team_id: UUID, collection: str, name: str, data: bytes
) -> Any:
    """An upload kept for a worker to ingest (large files, or asked to run in the background)."""
    async with db.session(who) as s:
        return await s.uploads.create(team_id, collection, name, data)


async def upload_in_team(db: Database, who: Identity, team_id: UUID, upload_id: UUID) -> Any:
    async with db.session(who) as s:
        row = await s.uploads.get(upload_id)
    if row is None or row.team_id != team_id:
        raise NotFound(f"Upload {upload_id} was not found.")
    return row


async def schedule_sync(
    db: Database,
    who: Identity,
    team_id: UUID,
    source: str,
    collection: str,
    options: dict[str, Any],
    every_minutes: int,
) -> None:
    """Sync the data source into the collection again every `every_minutes`."""
    async with db.session(who) as s:
        await s.syncs.upsert(team_id, source, collection, options, every_minutes)
