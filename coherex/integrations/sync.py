"""Keep a knowledge collection in step with a data source: a GitHub repository's Markdown docs,
or a Slack channel's history (one document per day). Unchanged documents cost nothing; documents
the source no longer has are removed from the collection."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from coherex.errors import CoherexError, UserError
from coherex.integrations.service import _get_visible, _open
from coherex.knowledge import SourceDocument, sync_documents
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
    source = await _get_visible(db, identity, team_id, source_name)
    opened = await _open(db, source)
    if source.type == "github":
        from coherex.integrations.github import markdown_files

        if not repo:
            raise UserError("Syncing a GitHub source needs the repository (owner/name).")
        files = await markdown_files(opened.call, repo, path)
        prefix = f"github:{repo}/{path}"
        docs = [SourceDocument(f"github:{repo}/{p}", p, text, {"repo": repo, "path": p}) for p, text in files]
    elif source.type == "slack":
        from coherex.integrations.slack import channel_history

        if not channel:
            raise UserError("Syncing a Slack source needs the channel (name or id).")
        cid, messages = await channel_history(opened.call, channel)
        days: dict[str, list[str]] = defaultdict(list)
        for m in messages:
            day = datetime.fromtimestamp(float(m["ts"] or 0), UTC).date().isoformat()
            days[day].append(f"{m['user'] or 'someone'}: {m['text']}")
        prefix = f"slack:{cid}/"
        docs = [
            SourceDocument(
                f"slack:{cid}/{day}",
                f"#{channel.lstrip('#')} {day}",
                "\n\n".join(lines),
                {"channel": cid, "day": day},
                kind="text",
            )
            for day, lines in sorted(days.items())
        ]
    else:
        raise UserError(
            f"Data source {source_name!r} is a {source.type} source; only GitHub and Slack sources "
            "can be synced into a collection."
        )
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
