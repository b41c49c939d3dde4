"""Agents and their versions. Saving a changed spec makes a new version; old ones stay."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from coherex.errors import NotFound
from coherex.store.models import Agent, AgentDataSource, AgentVersion
from coherex.store.repos._base import Jsonb, Repo, require

_AGENT_COLS = (
    "id, team_id, name, description, labels, status, current_version, created_by, created_at, updated_at"
)
_VERSION_COLS = (
    "id, agent_id, team_id, version, spec, spec_yaml, checksum, message, created_by, created_at, sub_agents"
)


def spec_checksum(spec: dict[str, Any]) -> str:
    """Identity of a spec's content, independent of key order and YAML formatting."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class SavedSpec:
    agent: Agent
    version: AgentVersion
    created_agent: bool
    created_version: bool  # False when the spec was identical to the current version


class AgentRepo(Repo):
    async def get(self, agent_id: UUID) -> Agent | None:
        return await self._one(Agent, f"select {_AGENT_COLS} from public.agents where id = %s", (agent_id,))

    async def get_by_name(self, team_id: UUID, name: str) -> Agent | None:
        return await self._one(
            Agent,
            f"select {_AGENT_COLS} from public.agents where team_id = %s and name = %s",
            (team_id, name),
        )

    async def require_by_name(self, team_id: UUID, name: str) -> Agent:
        return require(await self.get_by_name(team_id, name), f"Agent {name!r}")

    async def list(self, team_id: UUID | None = None, *, include_archived: bool = False) -> list[Agent]:
        return await self._all(
            Agent,
            f"select {_AGENT_COLS} from public.agents where (%(team)s::uuid is null or team_id = %(team)s) "
            "and (%(archived)s or status <> 'archived') order by name",
            {"team": team_id, "archived": include_archived},
        )

    async def save_spec(
        self,
        team_id: UUID,
        spec: dict[str, Any],
        spec_yaml: str,
        *,
        message: str = "",
        sub_agents: dict[str, Any] | None = None,
    ) -> SavedSpec:
        """Create the agent named in `spec.metadata.name` or add a version to it (if it changed).
        `sub_agents`: the callee versions a new version pins (tool name → {agent_id, version})."""
        meta = spec.get("metadata", {})
        name = meta["name"]
        description = meta.get("description", "") or ""
        labels = meta.get("labels", {}) or {}
        agent = await self._one(
            Agent,
            f"select {_AGENT_COLS} from public.agents where team_id = %s and name = %s for update",
            (team_id, name),
        )
        created_agent = agent is None
        if agent is None:
            agent = require(
                await self._one(
                    Agent,
                    f"insert into public.agents (team_id, name, description, labels, created_by) "
                    f"values (%s, %s, %s, %s, %s) returning {_AGENT_COLS}",
                    (team_id, name, description, Jsonb(labels), self.identity.user_id),
                ),
                "agent",
            )
        checksum = spec_checksum(spec)
        if agent.current_version:
            current = require(await self.get_version(agent.id, agent.current_version), "current version")
            if current.checksum == checksum:
                return SavedSpec(agent, current, created_agent=False, created_version=False)
        number = agent.current_version + 1
        version = require(
            await self._one(
                AgentVersion,
                "insert into public.agent_versions (agent_id, team_id, version, spec, spec_yaml, checksum, "
                "message, created_by, sub_agents) values (%s, %s, %s, %s, %s, %s, %s, %s, %s) returning "
                f"{_VERSION_COLS}",
                (
                    agent.id,
                    team_id,
                    number,
                    Jsonb(spec),
                    spec_yaml,
                    checksum,
                    message,
                    self.identity.user_id,
                    Jsonb(sub_agents or {}),
                ),
            ),
            "version",
        )
        agent = require(
            await self._one(
                Agent,
                f"update public.agents set current_version = %s, description = %s, labels = %s "
                f"where id = %s returning {_AGENT_COLS}",
                (number, description, Jsonb(labels), agent.id),
            ),
            "agent",
        )
        return SavedSpec(agent, version, created_agent=created_agent, created_version=True)

    async def get_version(self, agent_id: UUID, version: int | None = None) -> AgentVersion | None:
        """A given version, or the current one when `version` is None."""
        if version is None:
            return await self._one(
                AgentVersion,
                f"select {', '.join('v.' + c for c in _VERSION_COLS.split(', '))} from "
                "public.agent_versions v "
                "join public.agents a on a.id = v.agent_id and a.current_version = v.version where a.id = %s",
                (agent_id,),
            )
        return await self._one(
            AgentVersion,
            f"select {_VERSION_COLS} from public.agent_versions where agent_id = %s and version = %s",
            (agent_id, version),
        )

    async def require_version(self, agent: Agent, version: int | None = None) -> AgentVersion:
        found = await self.get_version(agent.id, version)
        if found is None:
            have = agent.current_version
            raise NotFound(
                f"Agent {agent.name!r} has no version {version}.",
                hint=f"It has versions 1 to {have}." if have else "It has no saved version yet.",
            )
        return found

    async def versions(self, agent_id: UUID) -> list[AgentVersion]:
        return await self._all(
            AgentVersion,
            f"select {_VERSION_COLS} from public.agent_versions where agent_id = %s order by version",
            (agent_id,),
        )

    async def set_status(self, agent_id: UUID, status: str) -> Agent:
        return require(
            await self._one(
                Agent,
                f"update public.agents set status = %s where id = %s returning {_AGENT_COLS}",
                (status, agent_id),
            ),
            "agent",
        )

    async def delete(self, agent_id: UUID) -> bool:
        return await self._exec("delete from public.agents where id = %s", (agent_id,)) > 0

    async def set_data_sources(self, agent: Agent, grants: list[tuple[UUID, str]]) -> list[AgentDataSource]:
        """Replace the sources the agent may use with `grants` = [(data_source_id, access)]."""
        await self._exec("delete from public.agent_data_sources where agent_id = %s", (agent.id,))
        for source_id, access in grants:
            await self._exec(
                "insert into public.agent_data_sources (agent_id, data_source_id, team_id, access) "
                "values (%s, %s, %s, %s)",
                (agent.id, source_id, agent.team_id, access),
            )
        return await self.data_sources(agent.id)

    async def data_sources(self, agent_id: UUID) -> list[AgentDataSource]:
        return await self._all(
            AgentDataSource,
            "select agent_id, data_source_id, team_id, access from public.agent_data_sources where agent_id "
            "= %s",
            (agent_id,),
        )
