"""Reading runs: listing and finding a team's executions, their stored steps, and what an agent
did recently. (Starting and stopping runs is the runtime's: `coherex.runtime.Runtime`.)"""

from __future__ import annotations

from uuid import UUID

from coherex.errors import NotFound
from coherex.store.db import Database, Identity
from coherex.store.models import Agent, Event, Execution


async def list_runs(
    db: Database,
    who: Identity,
    team_id: UUID,
    *,
    agent_id: UUID | None = None,
    status: str | None = None,
    limit: int = 50,
) -> list[Execution]:
    """The team's executions, newest first."""
    async with db.session(who) as s:
        return await s.executions.list(team_id=team_id, agent_id=agent_id, status=status, limit=limit)


async def runs_with_agent_names(
    db: Database, who: Identity, team_id: UUID, agent: str | None, limit: int
) -> tuple[list[Execution], dict[UUID, str]]:
    """Executions (of the agent called `agent`, or all) and the name of every agent of the team
    (archived ones too: their runs stay)."""
    async with db.session(who) as s:
        agent_id = (await s.agents.require_by_name(team_id, agent)).id if agent else None
        rows = await s.executions.list(team_id=team_id, agent_id=agent_id, limit=limit)
        names = {a.id: a.name for a in await s.agents.list(team_id, include_archived=True)}
    return rows, names


async def run_in_team(db: Database, who: Identity, team_id: UUID, execution_id: UUID) -> Execution:
    """The execution of this team (NotFound otherwise)."""
    async with db.session(who) as s:
        execution = await s.executions.get(execution_id)
    if execution is None or execution.team_id != team_id:
        raise NotFound(f"Execution {execution_id} was not found.")
    return execution


async def get_run(db: Database, who: Identity, execution_id: UUID) -> Execution | None:
    async with db.session(who) as s:
        return await s.executions.get(execution_id)


async def find_run(db: Database, who: Identity, team_id: UUID, id_or_prefix: str) -> Execution:
    """By full id or a unique prefix of it (as `docker` accepts), within the team."""
    async with db.session(who) as s:
        return await s.executions.find(team_id, id_or_prefix)


async def run_of_agent(
    db: Database, who: Identity, team_id: UUID, agent: Agent, execution_id: UUID | None = None
) -> Execution:
    """The agent's execution `execution_id`, or its latest one (NotFound when there is none)."""
    async with db.session(who) as s:
        if execution_id is None:
            latest = await s.executions.list(team_id=team_id, agent_id=agent.id, limit=1)
            if not latest:
                raise NotFound(f"Agent {agent.name} has not run yet.")
            return latest[0]
        execution = await s.executions.get(execution_id)
    if execution is None or execution.agent_id != agent.id:
        raise NotFound(f"Execution {execution_id} of agent {agent.name} was not found.")
    return execution


async def active_runs(db: Database, who: Identity, team_id: UUID, agent_id: UUID) -> list[Execution]:
    """The agent's pending and running executions."""
    runs = await list_runs(db, who, team_id, agent_id=agent_id, limit=1000)
    return [x for x in runs if not x.finished]


async def events(
    db: Database, who: Identity, execution_id: UUID, *, after_seq: int = 0, limit: int = 1000
) -> list[Event]:
    async with db.session(who) as s:
        return await s.executions.events(execution_id, after_seq=after_seq, limit=limit)


async def steps_since(
    db: Database, who: Identity, execution_id: UUID, after_seq: int = 0
) -> tuple[list[Event], Execution]:
    """The steps stored after `after_seq` and the execution as it was just before they were read:
    the execution first, so a follower that sees the run finished has all its steps."""
    async with db.session(who) as s:
        current = await s.executions.get(execution_id)
        return await s.executions.events(execution_id, after_seq=after_seq), current


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
