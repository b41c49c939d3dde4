"""Pydantic models of the agent spec `coherex/v1` (see DESIGN.md, "The agent spec").

Strict and closed: unknown fields and wrong types are errors. Field order here is the order
files are written in. Checks that need only one field live here (cron, timezone, name);
checks across fields and against the tool catalogue live in `validation.py`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_serializer, field_validator
from pydantic_core import PydanticCustomError

API_VERSION = "coherex/v1"
KIND = "Agent"

#: the rule the database enforces on agent names (a DNS label)
NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
#: names of inputs, usable as `{{name}}` placeholders in instructions
INPUT_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
#: a name the LLM may see as a function name (OpenAI: letters, digits, _ and -)
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
#: a pip requirement: name, optional extras and version constraint, no URLs or options
PACKAGE_PATTERN = (
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?\s*((==|>=|<=|~=|!=|>|"
    r"<)\s*[A-Za-z0-9.*+!_-]+\s*,?\s*)*$"
)


def _compact_number(value: float | None) -> float | int | None:
    """Write 1.0 as 1, so a file that said 1 round-trips unchanged (strict floats accept ints)."""
    return int(value) if value is not None and value.is_integer() else value


class _Model(BaseModel):
    model_config = ConfigDict(
        strict=True, extra="forbid", populate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )


class Metadata(_Model):
    name: str = Field(
        pattern=NAME_PATTERN,
        description="DNS-label style (lowercase letters, digits, '-'; at most 63); unique per team",
    )
    description: str | None = Field(None, max_length=2000)
    labels: dict[str, str] | None = None


class ModelConfig(_Model):
    name: str = Field(min_length=1, max_length=200, description="model name, e.g. gpt-4o-mini")
    temperature: float | None = Field(None, ge=0, le=2)
    maxTokens: int | None = Field(None, ge=1, le=1_000_000, description="maximum tokens per answer")

    _compact = field_serializer("temperature")(lambda self, v: _compact_number(v))


InputName = Annotated[str, StringConstraints(pattern=INPUT_NAME_PATTERN)]
JsonType = Literal["string", "integer", "number", "boolean", "array", "object"]


class InputSpec(_Model):
    """A parameter of a run: a small JSON Schema. An input without `default` must be given."""

    type: JsonType = "string"
    description: str | None = None
    default: Any = None
    enum: list[Any] | None = Field(None, min_length=1)


ApprovalMode = Literal["always", "never", "writes"]
#: argument name → glob pattern (`*`, `?`, `[...]`; case-insensitive), e.g. {sql: "delete*"}
ArgPatterns = dict[str, str]


class ApprovalRules(_Model):
    """Approval decided by the call's arguments: `deny` first (the call is refused, the model is
    told), then `when` (a person must approve), then `allow` (runs), else `otherwise`. Each rule is
    a mapping argument → pattern that matches when every listed argument matches, or a list of such
    mappings that matches when any does."""

    deny: ArgPatterns | list[ArgPatterns] | None = Field(
        None, description="refuse calls whose arguments match"
    )
    when: ArgPatterns | list[ArgPatterns] | None = Field(
        None, description="ask a person when the arguments match"
    )
    allow: ArgPatterns | list[ArgPatterns] | None = Field(
        None, description="run without asking when they match"
    )
    otherwise: ApprovalMode | None = Field(
        None, description="when no rule matches; default never, or always when only allow is given"
    )

    def rules(self, name: str) -> list[ArgPatterns]:
        value = getattr(self, name)
        return [] if value is None else [value] if isinstance(value, dict) else list(value)

    @property
    def fallback(self) -> ApprovalMode:
        if self.otherwise is not None:
            return self.otherwise
        return "always" if self.allow is not None and self.when is None else "never"


class ToolRef(_Model):
    use: str = Field(
        description="a tool of the catalogue, e.g. gmail.search_messages, or a provider whose tools are "
        "discovered from the data source (mcp, openapi)"
    )
    name: str | None = Field(
        None,
        pattern=TOOL_NAME_PATTERN,
        description="the name the model sees; needed when the same tool is listed twice",
    )
    dataSource: str | None = Field(
        None, pattern=NAME_PATTERN, description="a data source of the team, by name"
    )
    access: Literal["read", "write"] | None = Field(
        None, description="access granted on the data source; tools that change something need write"
    )
    with_: dict[str, Any] | None = Field(
        None, alias="with", description="arguments fixed by the spec; the model cannot change them"
    )
    collection: str | None = Field(None, min_length=1, description="knowledge collection (knowledge.* tools)")
    agent: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="the agent this tool calls (`use: agent`), by name in the team",
    )
    version: int | None = Field(
        None,
        ge=1,
        description="the callee's version (`use: agent`); default: its current version when this spec is "
        "saved",
    )
    tools: list[Annotated[str, StringConstraints(min_length=1)]] | None = Field(
        None,
        description="for discovered tools (use: mcp, openapi): the ones the agent may use, by the "
        "source's names; all when omitted",
    )
    approval: ApprovalMode | ApprovalRules | None = Field(
        None,
        description="whether a person approves each call before it runs: always, never, writes (only "
        "tools that change data), or rules on its arguments; default never (a team may make it writes)",
    )

    @field_validator("approval", mode="before")
    @classmethod
    def _approval(cls, value: Any) -> Any:
        # checked here, with one clear message, instead of one error per member of the unions
        if value is None or (isinstance(value, str) and value in ("always", "never", "writes")):
            return value
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "approval",
                "should be always, never, writes or a mapping of rules "
                "(deny, when, allow, otherwise), found {value}",
                {"value": repr(value)},
            )
        for key, rule in value.items():
            if key == "otherwise":
                if rule not in ("always", "never", "writes"):
                    raise PydanticCustomError(
                        "approval",
                        "otherwise should be always, never or writes, found {value}",
                        {"value": repr(rule)},
                    )
            elif key not in ("deny", "when", "allow"):
                raise PydanticCustomError(
                    "approval",
                    "unknown rule {key}: rules are deny, when, allow and otherwise",
                    {"key": repr(key)},
                )
            elif not all(
                isinstance(m, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in m.items())
                for m in (rule if isinstance(rule, list) else [rule])
            ):
                raise PydanticCustomError(
                    "approval",
                    "{key} should map argument names to patterns, e.g. {example}, or be a list of such "
                    "mappings; found {value}",
                    {"key": key, "example": "sql: 'delete*'", "value": repr(rule)},
                )
        return value

    @property
    def tool_name(self) -> str:
        """The function name the LLM sees (dots are not allowed there)."""
        if self.name:
            return self.name
        if self.use == "agent" and self.agent:  # a sub-agent is offered under its own name
            return self.agent.replace("-", "_")
        return self.use.replace(".", "_")


class Schedule(_Model):
    cron: str = Field(description="five-field cron expression, e.g. '0 8 * * 1-5'")
    timezone: str = Field("UTC", description="IANA time zone, e.g. Europe/Berlin")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise PydanticCustomError(
                "cron",
                "not a valid five-field cron expression: {value} (minute hour day month weekday)",
                {"value": repr(value)},
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone",
                "unknown time zone {value}: use an IANA name such as UTC or Europe/Berlin",
                {"value": repr(value)},
            ) from None
        return value


class Webhook(_Model):
    input: str | None = Field(
        None,
        pattern=INPUT_NAME_PATTERN,
        description="the input that receives the whole JSON body; by default body fields fill inputs by name",
    )


class Event(_Model):
    source: str = Field(pattern=NAME_PATTERN, description="the data source that emits the event")
    type: str = Field(description="event type, e.g. slack.message")
    filter: dict[str, Any] | None = Field(None, description="only events whose fields equal these values")


class Trigger(_Model):
    """Exactly one of `schedule`, `webhook`, `event`."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})

    schedule: Schedule | None = None
    webhook: Webhook | None = None
    event: Event | None = None


class Limits(_Model):
    maxSteps: int = Field(20, ge=1, le=500, description="LLM calls per run")
    timeoutSeconds: int = Field(300, ge=1, le=86_400)
    maxCostUsd: float = Field(1.0, ge=0, le=1000, description="the run stops when its LLM cost reaches this")
    approvalTimeoutSeconds: int = Field(
        86_400, ge=1, le=30 * 86_400, description="how long a tool call waits for a person's approval"
    )
    onApprovalTimeout: Literal["reject", "fail"] = Field(
        "reject",
        description="when nobody decided in time: reject the call (the model is told) or fail the run",
    )

    _compact = field_serializer("maxCostUsd")(lambda self, v: _compact_number(v))


class Runtime(_Model):
    packages: list[str] | None = Field(None, description="pip packages installed in the sandbox")
    template: str | None = Field(None, min_length=1, description="sandbox template")
    network: bool = Field(False, description="whether code in the sandbox may reach the internet")

    @field_validator("packages")
    @classmethod
    def _packages(cls, value: list[str] | None) -> list[str] | None:
        for package in value or []:
            if not re.match(PACKAGE_PATTERN, package):
                raise PydanticCustomError(
                    "package",
                    "{package} is not a package requirement like 'pandas' or 'pandas==2.2.3'",
                    {"package": repr(package)},
                )
        return value


class AgentBody(_Model):
    model: ModelConfig | None = Field(None, description="the LLM; the platform default when omitted")
    instructions: str = Field(min_length=1, max_length=100_000)
    inputs: dict[InputName, InputSpec] | None = Field(
        None, description="parameters of a run; instructions refer to them as {{name}}"
    )
    tools: list[ToolRef] | None = None
    triggers: list[Trigger] | None = None
    limits: Limits | None = None
    runtime: Runtime | None = None


class AgentSpec(_Model):
    apiVersion: Literal["coherex/v1"]
    kind: Literal["Agent"]
    metadata: Metadata
    spec: AgentBody

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def limits(self) -> Limits:
        return self.spec.limits or Limits()
