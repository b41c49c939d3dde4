"""Agents: validate a spec against the team's data, store it as a new version, grant its data
sources (the one saving path of the CLI, the API and the chat builder); find and read them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from coherex.errors import NotFound
from coherex.spec import ValidationReport, to_data, to_yaml, validate
from coherex.spec.catalogue import get_tool
from coherex.store.db import Database, Identity
from coherex.store.models import Agent, AgentVersion, Execution
from coherex.store.repos import Session
from coherex.store.repos.agents import SavedSpec


async def team_references(session: Session, team_id: UUID) -> tuple[dict[str, str], set[str]]:
    """(data source name → type, collection names) of the team, for reference checks."""
    sources = await session.sources.names_and_types(team_id)
    collections = {c.name for c in await session.knowledge.list_collections(team_id)}
    return sources, collections


async def validate_for_team(
    session: Session, team_id: UUID, source: str | bytes | Mapping[str, Any], *, filename: str | None = None
) -> ValidationReport:
    sources, collections = await team_references(session, team_id)
    return validate(source, filename=filename, data_sources=sources, collections=collections)


async def apply_spec(
    session: Session,
    team_id: UUID,
    source: str | bytes | Mapping[str, Any],
    *,
    filename: str | None = None,
    message: str = "",
) -> SavedSpec:
    """Create the agent or add a version (none when unchanged). Raises SpecInvalid listing every problem."""
    spec = (await validate_for_team(session, team_id, source, filename=filename)).raise_for_errors()
    saved = await session.agents.save_spec(team_id, to_data(spec), to_yaml(spec), message=message)
    if saved.created_version:
        from coherex.services.triggers import sync_schedules  # a new version reschedules

        await session.agents.set_data_sources(saved.agent, await _grants(session, team_id, spec))
        await sync_schedules(session, saved.agent, spec)
        await session.audit.record(
            team_id,
            "agent.create" if saved.created_agent else "agent.update",
            target_type="agent",
            target_id=str(saved.agent.id),
            details={"name": saved.agent.name, "version": saved.version.version},
        )
    return saved


async def _grants(session: Session, team_id: UUID, spec) -> list[tuple[UUID, str]]:
    """One grant per data source the spec names, with the strongest access any of its tools declared."""
    access: dict[str, str] = {}
    for tool in spec.spec.tools or []:
        if not tool.dataSource:
            continue
        info = get_tool(tool.use)
        wanted = tool.access or (info.access if info else "read")
        if access.get(tool.dataSource) != "write":
            access[tool.dataSource] = wanted
    grants = []
    for name, level in access.items():
        source = await session.sources.get_by_name(team_id, name)
        if source is not None:  # validation already refused unknown names
            grants.append((source.id, level))
    return grants


# ---------------------------------------------------------------------- finding and reading agents
async def get_agent(db: Database, who: Identity, agent_id: UUID) -> Agent | None:
    async with db.session(who) as s:
        return await s.agents.get(agent_id)


async def agent_by_name(db: Database, who: Identity, team_id: UUID, name: str) -> Agent:
    """The team's agent called `name` (NotFound naming the team's agents)."""
    async with db.session(who) as s:
        agent = await s.agents.get_by_name(team_id, name)
        if agent is None:
            names = ", ".join(a.name for a in await s.agents.list(team_id)) or "none yet"
            raise NotFound(f"No agent named {name!r}. The team's agents: {names}.")
    return agent


async def current_version(db: Database, who: Identity, agent: Agent) -> AgentVersion:
    async with db.session(who) as s:
        return await s.agents.require_version(agent)


async def agents_with_last_run(
    db: Database, who: Identity, team_id: UUID
) -> list[tuple[Agent, Execution | None]]:
    """The team's agents, each with its latest run (None: never ran)."""
    async with db.session(who) as s:
        out = []
        for agent in await s.agents.list(team_id):
            last = await s.executions.list(agent_id=agent.id, limit=1)
            out.append((agent, last[0] if last else None))
    return out


async def free_name(session: Session, team_id: UUID, name: str) -> str:
    """`name`, or `name-2`, `name-3`… so a new agent never overwrites another one by accident."""
    candidate, n = name, 1
    while await session.agents.get_by_name(team_id, candidate) is not None:
        n += 1
        candidate = f"{name[:58]}-{n}"
    return candidate


async def save_as_new_or_version(
    db: Database, who: Identity, team_id: UUID, data: dict[str, Any], *, new: bool, message: str = ""
) -> SavedSpec:
    """Save spec data; `new`: as a new agent (under a free name when the name is taken), else as a
    new version of the agent of that name. `data`'s name is updated to the one used."""
    async with db.session(who) as s:
        if new:
            data["metadata"]["name"] = await free_name(s, team_id, data["metadata"]["name"])
        return await apply_spec(s, team_id, data, message=message)


async def team_refs(db: Database, who: Identity, team_id: UUID) -> tuple[dict[str, str], set[str]]:
    """(data source name → type, collection names) of the team (see `team_references`)."""
    async with db.session(who) as s:
        return await team_references(s, team_id)
