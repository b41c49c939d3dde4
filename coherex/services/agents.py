"""Saving agents: validate a spec against the team's data, store it as a new version, grant its
data sources. The one path used by the CLI, the API and the chat builder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from coherex.spec import ValidationReport, to_data, to_yaml, validate
from coherex.spec.catalogue import get_tool
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
