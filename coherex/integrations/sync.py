"""Keep a knowledge collection in step with a data source, through its tool provider's `sync` hook
(a GitHub repository's Markdown docs, a Slack channel's history as one document per day).
Unchanged documents cost nothing; documents the source no longer has are removed from the collection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from coherex.errors import CoherexError, UserError
from coherex.integrations.service import get_source, open_source
from coherex.knowledge import sync_documents
from coherex.store.db import Database, Identity


@dataclass(frozen=True)
class SyncResult:
    source: str
    collection: str
    documents: int  # documents the source has now
    added: int  # new or changed ones ingested
    unchanged: int


async def sync_source(
    db: Database,
    identity: Identity,
    team_id: UUID,
    source_name: str,
    collection: str,
    *,
    repo: str | None = None,
    path: str = "",
    channel: str | None = None,
) -> SyncResult:
    from coherex.tools.registry import provider_for_source_type, providers

    source = await get_source(db, identity, team_id, source_name)
    provider = provider_for_source_type(source.type)
    if provider is None or provider.sync is None:
        syncable = sorted(p.source_type.name for p in providers() if p.sync and p.source_type)
        raise UserError(
            f"Data source {source_name!r} is a {source.type} source; only {' and '.join(syncable)} "
            "sources can be synced into a collection."
        )
    opened = await open_source(db, source)
    options = {"repo": repo, "path": path, "channel": channel}
    prefix, docs = await provider.sync(opened.call, options)
    results = await sync_documents(db, identity, team_id, collection, docs, prune_prefix=prefix)
    async with db.session(identity) as s:
        await s.audit.record(
            team_id,
            "knowledge.sync",
            target_type="data_source",
            target_id=str(source.id),
            details={"collection": collection, "documents": len(results)},
        )
    added = sum(1 for r in results if r.added)
    return SyncResult(source_name, collection, len(results), added, len(results) - added)


async def run_due_syncs(db: Database, now: datetime) -> list[tuple[str, str | None]]:
    """Run the scheduled syncs that are due, each as the person who scheduled it; returns
    (collection, error or None) per sync. A failing sync is recorded and retried next time."""
    async with db.session(Identity.system()) as s:
        due = await s.syncs.claim_due(now)
    done = []
    for sync in due:
        identity = (
            Identity.user(sync.created_by, team_id=sync.team_id) if sync.created_by else Identity.system()
        )
        try:
            await sync_source(db, identity, sync.team_id, sync.source_name, sync.collection, **sync.options)
            error = None
        except CoherexError as exc:
            error = str(exc)
        async with db.session(Identity.system()) as s:
            await s.syncs.record_run(sync.id, error)
        done.append((sync.collection, error))
    return done
