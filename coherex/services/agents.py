"""Saving agents: validate a spec against the team's data, store it as a new version, grant its
data sources. The one path used by the CLI, the API and the chat builder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from coherex.spec import ValidationReport, to_data, to_yaml, validate
from coherex.spec.catalogue import closest, get_tool
from coherex.spec.validation import Problem
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
    report = validate(source, filename=filename, data_sources=sources, collections=collections)
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
