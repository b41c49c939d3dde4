"""Reading runs: what an agent did recently, with the tools each run called."""

from __future__ import annotations

from uuid import UUID

from coherex.store.db import Database, Identity
from coherex.store.models import Execution


async def recent_runs(
    db: Database, who: Identity, agent_id: UUID, limit: int = 5
) -> list[tuple[Execution, list[str]]]:
    """The agent's last runs (newest first), each with the names of the tools it called in order."""
    async with db.session(who) as s:
        out = []
        for run in await s.executions.list(agent_id=agent_id, limit=limit):
            calls = [e.name for e in await s.executions.events(run.id, limit=200) if e.type == "tool_call"]
            out.append((run, calls))
    return out
