"""Agents: validate a spec against the team's data, store it as a new version, grant its data
sources (the one saving path of the CLI, the API and the chat builder); find and read them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from coherex.errors import NotFound, UserError
from coherex.spec import AgentSpec, ValidationReport, load_spec, to_data, to_yaml, validate
from coherex.spec.catalogue import ToolInfo, closest, get_tool
from coherex.spec.validation import Problem
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
    """`validate` with the team's data sources, collections and each source's discovered tools;
    `use: agent` callees pinned."""
    all_sources = await session.sources.list(team_id)
    sources = {s.name: s.type for s in all_sources}
    collections = {c.name for c in await session.knowledge.list_collections(team_id)}
    discovered = {
        s.name: [ToolInfo.from_json(t, s.type) for t in s.tools] if s.tools is not None else None
        for s in all_sources
    }
    report = validate(
        source, filename=filename, data_sources=sources, collections=collections, discovered=discovered
    )
    if report.spec is not None:
        report.sub_agents = await _pin_sub_agents(session, team_id, report)
    return report


async def _pin_sub_agents(session: Session, team_id: UUID, report: ValidationReport) -> dict[str, Any]:
    """The callee version of each `use: agent` tool (given, or the callee's current one), checked:
    the callee exists in the team, has that version and those inputs, and never calls back."""
    from coherex.spec import load_spec

    caller = report.spec.metadata.name
    pins: dict[str, Any] = {}
    for i, ref in enumerate(report.spec.spec.tools or []):
        if ref.use != "agent" or not ref.agent:
            continue
        path = f"spec.tools[{i}]"

        def problem(where: str, message: str, hint: str | None = None, *, at: str = path) -> None:
            report.problems.append(Problem(f"{at}.{where}", message, hint))

        if ref.agent == caller:
            problem("agent", f"{caller!r} cannot call itself", "call another agent")
            continue
        callee = await session.agents.get_by_name(team_id, ref.agent)
        if callee is None or callee.current_version == 0:
            names = [a.name for a in await session.agents.list(team_id) if a.name != caller]
            near = closest(ref.agent, names)
            problem(
                "agent",
                f"there is no agent named {ref.agent!r} in this team",
                f"did you mean {', '.join(near)}?" if near else "save the agent it calls first",
            )
            continue
        number = ref.version or callee.current_version
        version = await session.agents.get_version(callee.id, number)
        if version is None:
            problem(
                "version",
                f"agent {ref.agent!r} has no version {number}",
                f"its versions are 1 to {callee.current_version}",
            )
            continue
        inputs = load_spec(version.spec).spec.inputs or {}
        for key in ref.with_ or {}:
            if key not in inputs:
                near = closest(key, list(inputs), 1)
                problem(
                    f"with.{key}",
                    f"agent {ref.agent!r} has no input {key!r}"
                    + (f"; did you mean {near[0]!r}?" if near else ""),
                    f"its inputs: {', '.join(inputs) or 'none'}",
                )
        chain = await _calls_back(session, version, caller, [caller, ref.agent])
        if chain:
            problem(
                "agent",
                f"calling {ref.agent!r} makes a cycle: {' → '.join(chain)}",
                "an agent may not call itself, directly or through others",
            )
            continue
        pins[ref.tool_name] = {"agent_id": str(callee.id), "agent": callee.name, "version": number}
    return pins


async def _calls_back(session: Session, version: Any, caller: str, chain: list[str]) -> list[str] | None:
    """The chain of pinned calls from `version` that reaches `caller` (any version of it), if any."""
    for pin in (version.sub_agents or {}).values():
        name = pin.get("agent", "?")
        if name == caller:
            return [*chain, caller]
        if name in chain or len(chain) > 20:
            continue
        callee = await session.agents.get(UUID(pin["agent_id"]))
        deeper = await session.agents.get_version(callee.id, pin["version"]) if callee else None
        if deeper is not None and (found := await _calls_back(session, deeper, caller, [*chain, name])):
            return found
    return None


async def apply_spec(
    session: Session,
    team_id: UUID,
    source: str | bytes | Mapping[str, Any],
    *,
    filename: str | None = None,
    message: str = "",
) -> SavedSpec:
    """Create the agent or add a version (none when unchanged). Raises SpecInvalid listing every problem."""
    report = await validate_for_team(session, team_id, source, filename=filename)
    spec = report.raise_for_errors()
    saved = await session.agents.save_spec(
        team_id, to_data(spec), to_yaml(spec), message=message, sub_agents=report.sub_agents
    )
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


# ---------------------------------------------------------------------- use-cases of the CLI and the API
async def save_spec(
    db: Database,
    who: Identity,
    team_id: UUID,
    source: str | bytes | Mapping[str, Any],
    *,
    filename: str | None = None,
    message: str = "",
) -> SavedSpec:
    """`apply_spec` in a session of its own."""
    async with db.session(who) as s:
        return await apply_spec(s, team_id, source, filename=filename, message=message)


async def check_spec(
    db: Database, who: Identity, team_id: UUID, source: str | bytes | Mapping[str, Any]
) -> ValidationReport:
    """Validate against the team's data sources and collections; stores nothing."""
    async with db.session(who) as s:
        return await validate_for_team(s, team_id, source)


async def save_version_of(
    db: Database,
    who: Identity,
    team_id: UUID,
    agent: Agent,
    source: str | Mapping[str, Any],
    message: str = "",
) -> SavedSpec:
    """A new version of `agent` (the spec must carry its name: renaming is not supported)."""
    async with db.session(who) as s:
        spec = (await validate_for_team(s, team_id, source)).raise_for_errors()
        if spec.metadata.name != agent.name:
            raise UserError(
                f"metadata.name is {spec.metadata.name!r} but this agent is {agent.name!r}.",
                hint="Renaming is not supported; create a new agent instead.",
            )
        return await apply_spec(s, team_id, source, message=message)


async def list_agents(db: Database, who: Identity, team_id: UUID) -> list[Agent]:
    async with db.session(who) as s:
        return await s.agents.list(team_id)


async def agent_in_team(db: Database, who: Identity, team_id: UUID, agent_id: UUID) -> Agent:
    """The agent `agent_id` of this team (NotFound otherwise)."""
    agent = await get_agent(db, who, agent_id)
    if agent is None or agent.team_id != team_id:
        raise NotFound(f"Agent {agent_id} was not found.")
    return agent


async def require_agent(db: Database, who: Identity, team_id: UUID, name: str) -> Agent:
    async with db.session(who) as s:
        return await s.agents.require_by_name(team_id, name)


async def version_of(
    db: Database, who: Identity, agent: Agent, version: int | None = None
) -> AgentVersion | None:
    """A version of the agent (the current one when `version` is None), or None."""
    async with db.session(who) as s:
        return await s.agents.get_version(agent.id, version)


async def require_version_of(
    db: Database, who: Identity, agent: Agent, version: int | None = None
) -> AgentVersion:
    async with db.session(who) as s:
        return await s.agents.require_version(agent, version)


async def version_history(db: Database, who: Identity, agent: Agent) -> list[AgentVersion]:
    async with db.session(who) as s:
        return await s.agents.versions(agent.id)


async def delete_agent(db: Database, who: Identity, agent: Agent, *, actor_kind: str | None = None) -> None:
    """Delete the agent with all its versions and runs (audited)."""
    async with db.session(who) as s:
        await s.agents.delete(agent.id)
        await s.audit.record(
            agent.team_id,
            "agent.delete",
            target_type="agent",
            target_id=str(agent.id),
            details={"name": agent.name},
            actor_kind=actor_kind,
        )


async def set_status(
    db: Database, who: Identity, agent: Agent, status: str, *, actor_kind: str | None = None
) -> Agent:
    """`paused`: its schedules, webhooks and events start no runs; `active` again (audited)."""
    async with db.session(who) as s:
        updated = await s.agents.set_status(agent.id, status)
        await s.audit.record(
            agent.team_id,
            f"agent.{'pause' if status == 'paused' else 'resume'}",
            target_type="agent",
            target_id=str(agent.id),
            actor_kind=actor_kind,
        )
    return updated


async def get_agent_by_name(db: Database, who: Identity, team_id: UUID, name: str) -> Agent | None:
    async with db.session(who) as s:
        return await s.agents.get_by_name(team_id, name)


async def agents_with_specs(
    db: Database, who: Identity, team_id: UUID, name: str | None = None
) -> list[tuple[Agent, AgentSpec]]:
    """The team's agents (or the one called `name`) that have a saved version, each with the spec
    of its current version: what the MCP and A2A servers offer."""
    out = []
    async with db.session(who) as s:
        agents = [await s.agents.get_by_name(team_id, name)] if name else await s.agents.list(team_id)
        for agent in agents:
            if agent is None or agent.team_id != team_id:
                continue
            version = await s.agents.get_version(agent.id)
            if version is not None:
                out.append((agent, load_spec(version.spec)))
    return out
