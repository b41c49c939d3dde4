"""The one list of tool providers. Adding a provider: its module under providers/ (and its fake
server in coherex/testing/), plus one line in BUILTIN below.

Everything else reads the providers from here: the catalogue (coherex.spec.catalogue), the data
source types (config and credential models, connection checks, OAuth), event types and webhook
verification, knowledge sync, and the runtime's dispatch of each tool call.

Tests that add a provider do it with `use([...])`, which replaces the list for the process until
the block ends (the API, the runtime and validation all see it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from coherex.errors import UserError
from coherex.spec.catalogue import ToolInfo, closest
from coherex.tools.port import ToolProvider
from coherex.tools.providers import (
    agent,
    github,
    gmail,
    http_api,
    knowledge,
    model,
    openapi,
    postgres,
    python,
    slack,
)
from coherex.tools.providers.mcp import provider as mcp

if TYPE_CHECKING:
    from coherex.integrations.base import SourceType

BUILTIN: tuple[ToolProvider, ...] = (
    python.PROVIDER,  # python, csv.summarize (in the run's sandbox)
    knowledge.PROVIDER,  # knowledge.search, knowledge.answer
    agent.PROVIDER,  # another agent of the team (a sub-agent run)
    gmail.PROVIDER,
    slack.PROVIDER,
    github.PROVIDER,
    http_api.PROVIDER,
    openapi.PROVIDER,  # the operations of an http_api source's OpenAPI document (discovered)
    postgres.PROVIDER,
    model.PROVIDER,  # a team's LLM (OpenAI or compatible): a source type, no tools
    mcp.PROVIDER,  # MCP servers (type: mcp): tools discovered per data source
)

_active: tuple[ToolProvider, ...] = BUILTIN


def providers() -> tuple[ToolProvider, ...]:
    return _active


@contextmanager
def use(providers: Iterable[ToolProvider]) -> Iterator[None]:
    """Serve exactly these providers until the block ends (tests: `use([*BUILTIN, mine])`)."""
    global _active
    before, _active = _active, tuple(providers)
    try:
        yield
    finally:
        _active = before


_Index = tuple[dict[str, ToolInfo], dict[str, ToolProvider], dict[str, ToolProvider]]
_built: tuple[tuple[ToolProvider, ...], _Index] | None = None


def _index() -> _Index:
    """Lookups over the active providers, built once per list."""
    global _built
    if _built is None or _built[0] is not _active:
        _built = (_active, _build(_active))
    return _built[1]


def _build(active: tuple[ToolProvider, ...]) -> _Index:
    tools: dict[str, ToolInfo] = {}
    by_tool: dict[str, ToolProvider] = {}
    by_source: dict[str, ToolProvider] = {}
    for p in active:
        if p.source_type is not None and not (p.discover is not None and p.source_type.name in by_source):
            # (a provider that only discovers more tools of a type another one owns, e.g. openapi on
            # http_api, leaves the type to its owner)
            assert p.source_type.name not in by_source, f"two providers serve {p.source_type.name}"
            by_source[p.source_type.name] = p
        for info in p.tools():
            assert info.name not in tools, f"two providers offer {info.name}"
            tools[info.name] = info
            by_tool[info.name] = p
    return tools, by_tool, by_source


def catalogue() -> dict[str, ToolInfo]:
    """Every static tool by name (discovered tools live per data source: see ToolBox)."""
    return _index()[0]


def provider_for_tool(name: str) -> ToolProvider | None:
    return _index()[1].get(name)


def provider_named(name: str) -> ToolProvider | None:
    return next((p for p in _active if p.name == name), None)


def provider_for_source_type(name: str) -> ToolProvider | None:
    return _index()[2].get(name)


def source_types() -> dict[str, SourceType]:
    return {name: p.source_type for name, p in _index()[2].items()}


def source_type(name: str) -> SourceType:
    """The data source type `name`, or UserError naming the closest ones."""
    provider = provider_for_source_type(name)
    if provider is None:
        names = list(source_types())
        near = closest(name, names)
        raise UserError(
            f"There is no data source type {name!r}.",
            hint=(f"Did you mean {near[0]!r}? " if near else "") + f"Types: {', '.join(names)}.",
        )
    return provider.source_type


def event_types() -> dict[str, str]:
    """Event type → the data source type that emits it."""
    return {
        t: p.source_type.name
        for p in _active
        if p.events is not None and p.source_type is not None
        for t in p.events.types
    }


def event_fields() -> dict[str, tuple[str, ...]]:
    """Event type → the top-level fields of its payload (the inputs an event run can fill)."""
    return {t: f for p in _active if p.events is not None for t, f in p.events.fields.items()}


def discoverer_for(source_type: str) -> ToolProvider | None:
    """The provider that discovers the tools of this data source type (its owner, or one that
    discovers more tools of a type another owns: openapi for http_api)."""
    return next(
        (
            p
            for p in _active
            if p.discover is not None and p.source_type is not None and p.source_type.name == source_type
        ),
        None,
    )


def discovering() -> dict[str, str]:
    """Provider name (a spec's `use`) → data source type, for providers that discover their tools."""
    return {
        p.name: p.source_type.name for p in _active if p.discover is not None and p.source_type is not None
    }
