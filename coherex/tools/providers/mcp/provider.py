"""MCP servers as data sources (`type: mcp`): the tool provider.

    coherex sources add mcp docs --url https://mcp.example.com/mcp --header "Authorization=Bearer …"
    coherex sources add mcp fs --command "npx -y @modelcontextprotocol/server-filesystem /home/user"

    tools:
      - use: mcp
        dataSource: fs
        tools: [read_text_file, list_directory]     # all the server's tools when omitted

`discover` lists the server's tools (cached with the source by `coherex sources check` and the
maintenance job); `call` runs one. The calls of one run to one source share a live session (a
stdio server keeps its state and is started once per run, in a box of its own with the source's
network policy); it is closed when idle. Results carry text, structured content, images and
embedded resources; an MCP error result is the tool's error, told to the model; a dead server is a
`McpServerDown` (BackendError): the run is retried.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from coherex.integrations.base import Call, Check, ServiceError, SourceType
from coherex.spec.catalogue import ToolInfo
from coherex.tools.port import Provider, ToolCall, ToolResult
from coherex.tools.providers.mcp.config import McpConfig, McpCredentials
from coherex.tools.providers.mcp.errors import McpServerDown
from coherex.tools.providers.mcp.pool import SessionPool

if TYPE_CHECKING:
    from coherex.tools.providers.mcp.client import RemoteTool, Session

NAME = "mcp"
POOL = SessionPool()


async def _open_box(allow_network: bool) -> Any:
    from coherex.sandbox import open_sandbox  # the E2B SDK is slow to import: only when a box is needed

    # lives as long as the session (killed with it); the pool closes idle sessions well before this
    return await open_sandbox(timeout=3600, allow_network=allow_network, metadata={"purpose": "mcp-server"})


def _session(c: Call, *, save=None):
    from coherex.tools.providers.mcp.client import open_session  # the SDK loads with the first session

    return open_session(c.source.name, c.config, c.credentials, sandbox=_open_box, save=save)


def tool_info(t: RemoteTool) -> ToolInfo:
    description = t.description or t.title or t.name
    return ToolInfo(
        t.name,
        NAME,
        description,
        access="read" if t.read_only else "write",
        needs_data_source=True,
        parameters=t.input_schema
        if t.input_schema.get("type") == "object"
        else {"type": "object", "properties": {}},
    )


def _own_saver(c: Call) -> Any:
    """Discovery and the connection check get no database handle (the port's hooks take the source
    only): a refresh during them is stored through a connection of its own (a server may rotate the
    refresh token, so the new one must be kept or the next sign-in fails)."""

    async def save(credentials: McpCredentials) -> None:
        from coherex.integrations.service import save_credentials
        from coherex.store.db import Database, resolve_urls

        async with Database(resolve_urls().app, min_size=1, max_size=1) as db:
            await save_credentials(db, c.source, credentials)

    return save


async def _discover(opened: Any) -> list[ToolInfo]:
    c: Call = opened.call
    async with _session(c, save=_own_saver(c)) as s:
        return [tool_info(t) for t in await s.list_tools()]


async def _test_connection(c: Call) -> Check:
    # a refresh here is stored too: the server may have rotated the refresh token
    async with _session(c, save=_own_saver(c)) as s:
        tools = await s.list_tools()
        version = s.info.serverInfo.version
    where = c.config.url or "a sandbox box"
    return Check(
        True,
        f"Connected to {s.server_name} {version} ({where}); it offers {len(tools)} tool(s).",
        {"server": s.server_name, "version": version, "tools": [t.name for t in tools]},
    )


def _destinations(config: McpConfig, credentials: McpCredentials) -> list[tuple[str, int]]:
    if not config.url:
        return []  # a local server runs in a box, behind the box's own network filter
    from coherex.egress import destination

    return [destination(config.url)]


def _key(call: ToolCall, source: Any, credentials: McpCredentials) -> tuple:
    # a change of the source's settings or credentials opens a new session
    digest = hashlib.sha256(
        (source.config.__repr__() + "|" + "|".join(sorted(credentials.secrets()))).encode()
    ).hexdigest()[:16]
    return (str(call.execution_id), str(source.id), digest)


async def _call(call: ToolCall, args: dict[str, Any]) -> ToolResult:
    assert call.source is not None, "an MCP tool runs with its data source opened"
    c: Call = call.source.call
    source = c.source

    async def save(credentials: McpCredentials) -> None:  # refreshed OAuth tokens go back to the vault
        from coherex.integrations.service import save_credentials

        await save_credentials(call.db, source, credentials)

    key = _key(call, source, c.credentials)
    session: Session = await POOL.session(key, lambda: _session(c, save=save))
    try:
        r = await session.call_tool(call.tool.name, args)
    except McpServerDown:
        await POOL.forget(key)  # the retried run (or the next call) starts the server again
        raise
    except ServiceError:
        if session.closed:
            await POOL.forget(key)
        raise
    return ToolResult(text=r.text, data=r.data, images=r.images, resources=r.resources, is_error=r.is_error)


SOURCE_TYPE = SourceType(
    name=NAME,
    title="MCP server",
    config_model=McpConfig,
    credentials_model=McpCredentials,
    test_connection=_test_connection,
    destinations=_destinations,
    rate_per_second=20.0,
    rate_burst=40,
)


class McpProvider(Provider):
    async def call(self, call: ToolCall, args: dict[str, Any]) -> ToolResult:  # type: ignore[override]
        return await _call(call, args)


PROVIDER = McpProvider(NAME, source_type=SOURCE_TYPE, discover=_discover)
