"""Typed rows returned by the repositories (one model per table, fields = columns)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

Role = Literal["owner", "admin", "member", "viewer"]
ExecutionStatus = Literal[
    "pending", "running", "waiting_approval", "completed", "failed", "cancelled", "timed_out"
]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled", "timed_out"})
EventType = Literal[
    "llm_call",
    "tool_call",
    "tool_result",
    "code",
    "stdout",
    "stderr",
    "log",
    "error",
    "status",
    "approval_requested",
    "approval_decided",
]


class Row(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class User(Row):
    id: UUID
    email: str
    display_name: str = ""
    #: IANA name (Europe/Berlin); None until the browser or the person says
    timezone: str | None = None
    created_at: datetime


class Team(Row):
    id: UUID
    slug: str
    name: str
    quota_executions_month: int | None = None
    quota_cost_month_usd: Decimal | None = None
    max_concurrent_runs: int | None = None
    network_min_role: Role = "admin"  # who may save agents whose sandbox has network
    created_at: datetime


class MyTeam(Team):
    """A team of the caller, with the caller's role in it."""

    role: Role


class Member(Row):
    team_id: UUID
    user_id: UUID
    role: Role
    email: str | None = None
    timezone: str | None = None
    created_at: datetime


class Agent(Row):
    id: UUID
    team_id: UUID
    name: str
    description: str
    labels: dict[str, Any]
    status: Literal["active", "paused", "archived"]
    current_version: int
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


class AgentVersion(Row):
    id: UUID
    agent_id: UUID
    team_id: UUID
    version: int
    spec: dict[str, Any]
    spec_yaml: str
    checksum: str
    message: str
    created_by: UUID | None
    created_at: datetime
    #: the sub-agents this version calls, pinned when it was saved: tool name → {agent_id, version}
    sub_agents: dict[str, Any] = {}


class DataSource(Row):
    id: UUID
    team_id: UUID
    name: str
    type: str
    config: dict[str, Any]
    credentials_key_id: str | None
    status: Literal["active", "failing", "disconnected"]
    last_error: str | None
    failing_since: datetime | None
    last_checked_at: datetime | None
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    #: tools discovered at the source's last check (MCP, OpenAPI): ToolInfo fields as JSON; None: never read
    tools: list[dict[str, Any]] | None = None
    tools_checked_at: datetime | None = None


class AgentDataSource(Row):
    agent_id: UUID
    data_source_id: UUID
    team_id: UUID
    access: Literal["read", "write"]


class Execution(Row):
    id: UUID
    team_id: UUID
    agent_id: UUID
    agent_version: int
    status: ExecutionStatus
    trigger: str
    inputs: dict[str, Any]
    output: Any | None
    error: str | None
    sandbox_id: str | None
    worker_id: str | None
    attempts: int
    heartbeat_at: datetime | None
    cancel_requested: bool
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    #: failed tool calls of the run, and the error of its last tool call (None when that one succeeded)
    tool_errors: int = 0
    last_tool_error: str | None = None
    #: the status, or 'completed_with_errors' for a completed run whose last tool call failed
    #: (computed by the database; see migration 20261201000400)
    outcome: str | None = None
    #: a sub-agent's run: the run that called it and the tool step it runs under; its depth (root: 0)
    parent_execution_id: UUID | None = None
    parent_event_seq: int | None = None
    depth: int = 0

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def shown_status(self) -> str:
        """What a person is told: 'completed with errors' rather than a plain 'completed'."""
        return (self.outcome or self.status).replace("_", " ")


class Event(Row):
    id: int
    execution_id: UUID
    team_id: UUID
    seq: int
    type: EventType
    name: str
    parent_seq: int | None
    payload: dict[str, Any]
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal
    duration_ms: int | None
    created_at: datetime

    @property
    def sub_agent_execution_id(self) -> UUID | None:
        """The run this step started as a sub-agent (the `log` step `sub_agent` a tool call records
        when it calls an agent), else None."""
        if self.type == "log" and self.name == "sub_agent" and "execution_id" in self.payload:
            return UUID(str(self.payload["execution_id"]))
        return None


class Collection(Row):
    id: UUID
    team_id: UUID
    name: str
    description: str
    embedding_model: str
    embedding_dim: int
    created_at: datetime


class Document(Row):
    id: UUID
    team_id: UUID
    collection_id: UUID
    source: str
    title: str
    mime_type: str
    content_hash: str
    size_bytes: int
    metadata: dict[str, Any]
    status: Literal["pending", "processing", "ready", "failed"]
    error: str | None
    chunk_count: int
    created_at: datetime


class Chunk(Row):
    id: UUID
    team_id: UUID
    collection_id: UUID
    document_id: UUID
    chunk_index: int
    content: str
    content_hash: str
    metadata: dict[str, Any]


class ApiKey(Row):
    id: UUID
    team_id: UUID
    name: str
    prefix: str
    user_id: UUID
    scopes: list[str]
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class AuditEntry(Row):
    id: int
    team_id: UUID | None
    actor_id: UUID | None
    actor_kind: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]
    created_at: datetime


class Usage(Row):
    team_id: UUID
    period: date
    executions: int
    tokens: int
    cost_usd: Decimal
