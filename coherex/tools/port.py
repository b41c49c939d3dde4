"""The tool-provider port: the one protocol every source of tools implements.

The catalogue that validation, the builder and the runtime see is the union of the providers
listed in `coherex.tools.registry`. A provider says which data-source type it serves (if any),
lists its tools (`ToolInfo`: name, description, JSON-Schema parameters, read/write), runs one call,
and may offer hooks: `discover` (tools found per data source: MCP, OpenAPI), `events` (webhook
verification) and `sync` (knowledge sync from the source).

Errors a provider raises: `ServiceError` (coherex.integrations.base: the service answered badly, a
clear tool error), `ToolFailed` (bad use, told to the model) or a `BackendError` subclass (the
platform or a server is down: the run is retried like any backend failure).

Kept import-light: `coherex validate` imports every provider module to build the catalogue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from uuid import UUID

from coherex.errors import ExecutionError
from coherex.spec.catalogue import ToolInfo

if TYPE_CHECKING:
    from coherex.integrations.base import Call, SourceType
    from coherex.integrations.service import Opened
    from coherex.knowledge import SourceDocument
    from coherex.runtime.tools import RunContext
    from coherex.spec.models import ToolRef
    from coherex.store.db import Database


class ToolFailed(ExecutionError):
    """A tool call failed; the message goes back to the model (it may try something else). An
    ExecutionError: one that reached the run's end would fail the run with this message."""


@dataclass
class ToolCall:
    """What one call of a tool gets."""

    db: Database
    team_id: UUID
    agent_id: UUID | None  # None when the platform calls a tool itself (approval notices)
    execution_id: UUID | None
    tool: ToolInfo
    #: the spec's entry for the tool (None when the platform calls a tool itself)
    ref: ToolRef | None = None
    #: the run calling it: sandbox, recorder, citations, uploaded files (None outside a run)
    run: RunContext | None = None
    #: the data source with its parsed config and decrypted credentials, for tools that need one;
    #: opened by `coherex.integrations.service` after the grant check (rate limit and audit wrap the call)
    source: Opened | None = None
    #: the run event of this call: events the tool records (output lines) hang under it
    parent_seq: int | None = None


@dataclass
class ToolResult:
    """A result richer than plain JSON. `text` is what the model reads (the JSON of `data` if empty)."""

    text: str = ""
    data: Any = None
    #: (mime type, bytes) shown in the chat
    images: list[tuple[str, bytes]] = field(default_factory=list)
    #: embedded resources (MCP): dicts with at least `uri`, and `text` or `blob`
    resources: list[dict[str, Any]] = field(default_factory=list)
    #: the tool reports a failure: the text goes to the model as a tool error
    is_error: bool = False


@dataclass(frozen=True)
class Verified:
    """An incoming event whose signature checked out, named with one of the provider's event types."""

    type: str | None  # None: well signed, but no trigger can subscribe to it (ignored)
    data: dict[str, Any]
    delivery_id: str
    reply: dict[str, Any] | None = None  # an answer the service expects (Slack's url_verification)


@dataclass(frozen=True)
class EventHooks:
    #: event types a trigger may wait for (`slack.message`, ...)
    types: tuple[str, ...]
    #: (decrypted credentials, headers with lower-case names, raw body) → Verified; raises
    #: PermissionDenied for an event the service did not sign. None: events arrive another way (polling)
    verify: Callable[[Any, Mapping[str, str], bytes], Verified] | None = None
    #: event type → the top-level fields of its payload: an event run fills the inputs named like
    #: them (or an input `event` with the whole payload); a type not listed fills only `event`
    fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


#: (the source's call, options such as repo/path/channel) → (id prefix the source owns, documents)
SyncHook = Callable[["Call", dict[str, Any]], Awaitable[tuple[str, "list[SourceDocument]"]]]
#: the tools one data source offers now (MCP tools/list, an OpenAPI document's operations)
DiscoverHook = Callable[["Opened"], Awaitable[list[ToolInfo]]]


@runtime_checkable
class ToolProvider(Protocol):
    name: str
    #: the data-source type it serves (config/credentials models, connect, check, oauth, revoke, ...)
    source_type: SourceType | None
    discover: DiscoverHook | None
    events: EventHooks | None
    sync: SyncHook | None

    def tools(self) -> list[ToolInfo]:
        """The static tools ([] for a provider that only discovers them)."""
        ...

    async def call(self, call: ToolCall, args: dict[str, Any]) -> ToolResult | dict[str, Any] | str: ...


# ---------------------------------------------------------------- a ready-made implementation

ActionFn = Callable[[Any, dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class Action:
    """One tool and the function that runs it."""

    info: ToolInfo
    run: ActionFn
    #: JSON Schema of what it returns (documentation; the model reads the JSON)
    output: dict[str, Any] | None = None


def action(info: ToolInfo, output: dict[str, Any] | None = None) -> Callable[[ActionFn], Action]:
    """Decorate the function that runs `info`: the tool's description and code stay together."""

    def wrap(fn: ActionFn) -> Action:
        return Action(info, fn, output)

    return wrap


@dataclass(frozen=True)
class Provider:
    """A provider made of static actions. A provider with a `source_type` runs each action with the
    source's `Call` (config + credentials: `call.source.call`); one without, with the `ToolCall`."""

    name: str
    actions: tuple[Action, ...] = ()
    source_type: SourceType | None = None
    discover: DiscoverHook | None = None
    events: EventHooks | None = None
    sync: SyncHook | None = None

    def tools(self) -> list[ToolInfo]:
        return [a.info for a in self.actions]

    async def call(self, call: ToolCall, args: dict[str, Any]) -> ToolResult | dict[str, Any] | str:
        act = next((a for a in self.actions if a.info.name == call.tool.name), None)
        if act is None:
            raise ToolFailed(f"{self.name} has no tool {call.tool.name!r}.")
        if self.source_type is not None:
            assert call.source is not None, f"{call.tool.name} runs with its data source opened"
            return await act.run(call.source.call, args)
        return await act.run(call, args)
