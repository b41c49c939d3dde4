"""The tool catalogue: every `use` name a spec may list.

The tools come from the tool providers listed in `coherex.tools.registry` (each provider module
holds its own `ToolInfo` entries); this module keeps the `ToolInfo` shape and the lookups that
validation, the builder and the runtime use. Validation checks specs against it; the runtime
exposes `parameters` (minus the arguments a spec fixes with `with:`) to the LLM as tool schemas.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

Access = Literal["read", "write"]


@dataclass(frozen=True)
class ToolInfo:
    name: str
    #: the integration the tool belongs to; for tools that need a data source this is also the
    #: data source type they need (gmail, slack, github, http_api, postgres)
    integration: str
    description: str
    #: the access the tool needs on its data source: a `write` tool changes something outside
    access: Access = "read"
    needs_data_source: bool = False
    #: the tool reads a knowledge collection (`collection:` in the spec)
    uses_collection: bool = False
    #: JSON Schema of the arguments (an object schema)
    parameters: dict[str, Any] = field(default_factory=lambda: _obj({}))

    def llm_parameters(self, fixed: dict[str, Any] | None = None) -> dict[str, Any]:
        """The argument schema the LLM sees: arguments fixed by the spec's `with:` removed (other
        keywords, such as a discovered tool's `$defs`, kept)."""
        if not fixed:
            return self.parameters
        schema = {**self.parameters}
        schema["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k not in fixed}
        required = [r for r in schema.pop("required", []) if r not in fixed]
        if required:
            schema["required"] = required
        return schema

    def to_json(self) -> dict[str, Any]:
        """What a data source's cache of discovered tools keeps of one (data_sources.tools)."""
        return {
            "name": self.name,
            "description": self.description,
            "access": self.access,
            "parameters": self.parameters,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], integration: str) -> ToolInfo:
        """A discovered tool from the cache; it always runs against its data source."""
        return cls(
            str(data["name"]),
            integration,
            str(data.get("description") or ""),
            access="read" if data.get("access") == "read" else "write",
            needs_data_source=True,
            parameters=data.get("parameters") or _obj({}),
        )


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


# coherex.tools.registry is imported when used: the providers import ToolInfo from here


def get_tool(name: str) -> ToolInfo | None:
    from coherex.tools.registry import catalogue

    return catalogue().get(name)


def tools() -> list[ToolInfo]:
    from coherex.tools.registry import catalogue

    return sorted(catalogue().values(), key=lambda t: t.name)


def event_types() -> dict[str, str]:
    """Event type a trigger may wait for → the data source type that emits it."""
    from coherex.tools.registry import event_types as of_providers

    return of_providers()


def event_fields(event_type: str) -> tuple[str, ...]:
    """The top-level fields of an event type's payload; an event run fills the inputs named like
    them, or an input `event` with the whole payload (coherex/services/triggers.py, route_event)."""
    from coherex.tools.registry import event_fields as of_providers

    return of_providers().get(event_type, ())


def discovering() -> dict[str, str]:
    """`use` names whose tools are discovered per data source (`use: mcp`) → the data source type."""
    from coherex.tools.registry import discovering as of_providers

    return of_providers()


def data_source_types() -> set[str]:
    return {t.integration for t in tools() if t.needs_data_source}


def closest(name: str, candidates: list[str] | set[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(name, sorted(candidates), n=n, cutoff=0.5)
