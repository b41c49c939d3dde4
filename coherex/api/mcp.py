"""Every saved agent as an MCP tool: `/mcp` (Streamable HTTP) on `coherex web`, and stdio for
desktop clients (`coherex mcp serve --stdio`). The `mcp` SDK (1.x) is used only here.

- A tool per agent the caller's team has: its name, description, an input schema from the spec's
  `inputs`, and `readOnlyHint` when every tool the agent uses only reads.
- A call is an execution like any other (`trigger: mcp`): created with the caller's identity, so
  inputs, quotas (team and key) and the audit log apply as on the HTTP API, and run by a worker.
  The call follows it to its end, sends each step as a progress notification when the client
  asked for progress, and returns the answer (text, structured content, citations as embedded
  resources). A client's `notifications/cancelled` stops the run. Every failure is a tool error
  (`isError`) carrying the platform's message.
- HTTP auth: an API key as bearer token, resolved and rate-limited exactly as `/api` does; a 401
  names the OAuth protected-resource metadata (RFC 9728) in `WWW-Authenticate`. Host and Origin
  are checked first (DNS rebinding). A session belongs to the key that opened it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from coherex import __version__
from coherex.api.deps import (
    ApiState,
    Caller,
    Unauthorized,
    bearer_caller,
    error_response,
    key_caller,
    take_rate_token,
)
from coherex.errors import BackendError, CoherexError
from coherex.runtime.citations import format_sources
from coherex.services.follow import follow
from coherex.spec import AgentSpec
from coherex.spec.catalogue import get_tool
from coherex.store.models import Agent, Event, Execution

PATH = "/mcp"
#: sessions whose owner is remembered (well above what the SDK keeps open at once)
_MAX_OWNERS = 100_000
METADATA_PATH = "/.well-known/oauth-protected-resource"
INSTRUCTIONS = (
    "Each tool runs one of your team's Coherex agents to its end and returns its answer. "
    "Runs count against your team's quotas like any other run."
)

#: (the caller, the open database/runtime/settings) of the request being handled
Resolve = Callable[[], Awaitable[tuple[Caller, ApiState]]]


# ---------------------------------------------------------------------------- tools
def input_schema(spec: AgentSpec) -> dict[str, Any]:
    """The spec's `inputs` as the JSON Schema of the tool's arguments."""
    properties: dict[str, Any] = {}
    required = []
    for name, decl in (spec.spec.inputs or {}).items():
        prop: dict[str, Any] = {"type": decl.type}
        if decl.description:
            prop["description"] = decl.description
        if decl.enum:
            prop["enum"] = decl.enum
        if decl.default is not None:
            prop["default"] = decl.default
        else:
            required.append(name)
        properties[name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def read_only(spec: AgentSpec) -> bool:
    """Whether every tool the agent uses only reads (per the catalogue; an unknown tool may write)."""
    for ref in spec.spec.tools or []:
        info = get_tool(ref.use)
        if info is None or info.access != "read":
            return False
    return True


def agent_tool(agent: Agent, spec: AgentSpec) -> types.Tool:
    ro = read_only(spec)
    return types.Tool(
        name=agent.name,
        title=agent.name,
        description=agent.description or spec.metadata.description or f"Run the Coherex agent {agent.name}.",
        inputSchema=input_schema(spec),
        annotations=types.ToolAnnotations(
            title=agent.name,
            readOnlyHint=ro,
            destructiveHint=None if ro else True,
            idempotentHint=False,
            openWorldHint=not ro,
        ),
    )


async def list_agent_tools(who: Caller, st: ApiState) -> list[types.Tool]:
    from coherex.services.agents import agents_with_specs

    return [
        agent_tool(agent, spec) for agent, spec in await agents_with_specs(st.db, who.identity, who.team_id)
    ]


def tool_error(message: str, hint: str | None = None, **structured: Any) -> types.CallToolResult:
    text = message + (f"\n{hint}" if hint else "")
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        isError=True,
        structuredContent=structured or None,
    )


def step_message(event: Event) -> str:
    """One line per step, for a progress notification."""
    p = event.payload or {}
    if event.type == "llm_call":
        calls = [c.get("name") for c in p.get("tool_calls") or []]
        return f"model {event.name}: " + (f"calls {', '.join(calls)}" if calls else "answers")
    if event.type == "tool_call":
        return f"tool {event.name}"
    if event.type == "tool_result":
        return f"tool {event.name} {'done' if p.get('ok') else 'failed'}"
    if event.type == "status":
        return f"run {p.get('status') or event.name}"
    if event.type == "error":
        return f"error: {p.get('message', '')}"[:500]
    return f"{event.type}: {str(p.get('message', event.name))[:500]}"


def result_of(execution: Execution) -> types.CallToolResult:
    """The finished run as the tool's result: its answer, or a tool error saying why it has none."""
    summary = {
        "execution_id": str(execution.id),
        "agent_version": execution.agent_version,
        "status": execution.status,
        "cost_usd": float(execution.cost_usd),
        "tokens_in": execution.tokens_in,
        "tokens_out": execution.tokens_out,
    }
    if execution.status != "completed":
        why = {"failed": "failed", "timed_out": "timed out", "cancelled": "was cancelled"}.get(
            execution.status, execution.status
        )
        return tool_error(
            f"The run {why}: {execution.error or 'no reason was recorded'}",
            f"Execution {execution.id}; see `coherex logs {execution.id}`.",
            **summary,
        )
    output = execution.output if isinstance(execution.output, dict) else {"text": str(execution.output or "")}
    text = str(output.get("text") or "")
    sources = output.get("sources") or []
    content: list[types.ContentBlock] = [types.TextContent(type="text", text=text)]
    for source in sources:
        content.append(
            types.EmbeddedResource(
                type="resource",
                resource=types.TextResourceContents(
                    uri="coherex://documents/"
                    f"{source.get('document_id')}#{source.get('chunk_id', source.get('ref'))}",
                    mimeType="text/markdown",
                    text=format_sources([source]).split("\n", 1)[-1],
                ),
            )
        )
    return types.CallToolResult(
        content=content, isError=False, structuredContent={**summary, "text": text, "sources": sources}
    )


async def call_agent(
    who: Caller,
    st: ApiState,
    name: str,
    arguments: dict[str, Any],
    progress: Callable[[int, str], Awaitable[None]] | None,
) -> types.CallToolResult:
    from coherex.services.agents import get_agent_by_name

    agent = await get_agent_by_name(st.db, who.identity, who.team_id, name)
    if agent is None or agent.team_id != who.team_id:
        return tool_error(f"There is no agent {name!r} in this team.", "List the tools again: tools/list.")
    try:
        execution = await st.runtime.create(
            who.identity, who.team_id, agent, trigger="mcp", inputs=arguments, queue=True
        )
    except CoherexError as exc:
        return tool_error(exc.message, exc.hint, code=exc.code)
    try:
        steps = 0
        async for item in follow(st.db, who.identity, execution.id):
            if isinstance(item, Execution):
                return result_of(item)
            steps += 1
            if progress is not None:
                await progress(steps, step_message(item))
        raise BackendError("The run's events ended without its end.")  # follow() always ends with the row
    except anyio.get_cancelled_exc_class():
        # the client cancelled the call (or went away): the run stops too
        with anyio.CancelScope(shield=True):
            with contextlib.suppress(Exception):
                await st.runtime.stop(who.identity, execution.id)
        raise
    except CoherexError as exc:
        return tool_error(exc.message, exc.hint, code=exc.code, execution_id=str(execution.id))


def build_server(resolve: Resolve) -> Server:
    """The MCP server; `resolve` says who is calling and with what (per request on HTTP, fixed on stdio)."""
    server: Server = Server("coherex", version=__version__, instructions=INSTRUCTIONS)

    @server.list_tools()
    async def _list_tools() -> list[types.Tool]:
        who, st = await resolve()
        return await list_agent_tools(who, st)

    @server.call_tool(validate_input=True)
    async def _call_tool(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        who, st = await resolve()
        ctx = server.request_context
        token = ctx.meta.progressToken if ctx.meta is not None else None
        progress = None
        if token is not None:

            async def progress(n: int, message: str) -> None:
                await ctx.session.send_progress_notification(
                    token, progress=n, message=message, related_request_id=str(ctx.request_id)
                )

        return await call_agent(who, st, name, arguments, progress)

    @server.set_logging_level()
    async def _set_level(level: types.LoggingLevel) -> None:
        # runs report through progress notifications; the level is accepted (nothing else is logged)
        return None

    return server


# ---------------------------------------------------------------------------- HTTP
def public_base(st: ApiState, request: Request) -> str:
    """Where clients reach us: COHEREX_PUBLIC_URL, else the request's own scheme and host."""
    if st.settings.public_url:
        return st.settings.public_url.rstrip("/")
    return f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}"


def security_settings(public_url: str | None) -> TransportSecuritySettings:
    """Hosts and Origins that may reach /mcp: this machine, and COHEREX_PUBLIC_URL's."""
    hosts = ["127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*", "[::1]", "[::1]:*"]
    origins = [
        "http://127.0.0.1",
        "http://127.0.0.1:*",
        "http://localhost",
        "http://localhost:*",
        "http://[::1]",
        "http://[::1]:*",
    ]
    if public_url:
        parts = urlsplit(public_url)
        hosts.append(parts.netloc)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


class McpEndpoint:
    """The ASGI app at /mcp: Host/Origin check, API key and rate limit, then the SDK's transport."""

    def __init__(self, public_url: str | None):
        self.security = TransportSecurityMiddleware(security_settings(public_url))
        self.server = build_server(self._resolve)
        self.manager = StreamableHTTPSessionManager(
            self.server, security_settings=security_settings(public_url)
        )
        self._owners: dict[str, str] = {}  # session id → the API key that opened it

    async def _resolve(self) -> tuple[Caller, ApiState]:
        request = self.server.request_context.request
        return request.state.coherex_caller, request.app.state.coherex

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        refused = await self.security.validate_request(request, is_post=request.method == "POST")
        if refused is not None:
            await refused(scope, receive, send)
            return
        st: ApiState = request.app.state.coherex
        try:
            who = await self._authenticate(st, request)
        except CoherexError as exc:
            await self._refusal(st, request, exc)(scope, receive, send)
            return
        session = request.headers.get("mcp-session-id")
        if session and self._owners.get(session, str(who.key_id)) != str(who.key_id):
            # someone else's session: answered as an unknown one (the spec's 404), nothing revealed
            await JSONResponse(
                {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Session not found"}},
                status_code=404,
            )(scope, receive, send)
            return
        scope.setdefault("state", {})["coherex_caller"] = who

        async def remember_owner(message: dict) -> None:
            if message["type"] == "http.response.start":
                for k, v in message.get("headers", []):
                    if k.lower() == b"mcp-session-id":
                        self._owners.setdefault(v.decode(), str(who.key_id))
                        while len(self._owners) > _MAX_OWNERS:  # the oldest sessions have long expired
                            del self._owners[next(iter(self._owners))]
            await send(message)

        await self.manager.handle_request(scope, receive, remember_owner)

    async def _authenticate(self, st: ApiState, request: Request) -> Caller:
        return await bearer_caller(st, request, "/mcp")

    def _refusal(self, st: ApiState, request: Request, exc: CoherexError) -> Response:
        challenge = None
        if isinstance(exc, Unauthorized):  # where a client learns how to authenticate (RFC 9728)
            metadata = f"{public_base(st, request)}{METADATA_PATH}{PATH}"
            challenge = {"WWW-Authenticate": f'Bearer realm="coherex", resource_metadata="{metadata}"'}
        return error_response(exc, headers=challenge)


def protected_resource_metadata(st: ApiState, request: Request) -> dict[str, Any]:
    """RFC 9728: what /mcp is and how to authenticate to it. Keys are API keys (`coherex keys
    create`); an OAuth authorization server is named when COHEREX_OAUTH_ISSUER is set."""
    base = public_base(st, request)
    out: dict[str, Any] = {
        "resource": f"{base}{PATH}",
        "resource_name": "Coherex agents (MCP)",
        "bearer_methods_supported": ["header"],
        "resource_documentation": f"{base}/docs",
    }
    if st.settings.oauth_issuer:
        out["authorization_servers"] = [st.settings.oauth_issuer]
    return out


def mount(app: Any, public_url: str | None) -> None:
    """Serve /mcp and its metadata on the web app; the SDK's session manager runs with the app."""
    from starlette.routing import Route

    endpoint = McpEndpoint(public_url)

    async def metadata(request: Request) -> JSONResponse:
        return JSONResponse(
            protected_resource_metadata(request.app.state.coherex, request),
            headers={"Cache-Control": "max-age=3600"},
        )

    app.router.routes.append(Route(PATH, endpoint, include_in_schema=False))
    for path in (METADATA_PATH, METADATA_PATH + PATH):
        app.router.routes.append(Route(path, metadata, methods=["GET"], include_in_schema=False))

    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as maybe_state, endpoint.manager.run():
            yield maybe_state

    app.router.lifespan_context = lifespan


# ---------------------------------------------------------------------------- stdio
async def serve_stdio(key: str) -> None:
    """`coherex mcp serve --stdio`: the same tools for the API key's team, talking to the database."""
    from mcp.server.stdio import stdio_server

    from coherex.runtime import Runtime
    from coherex.settings import get_settings
    from coherex.store.db import Database

    settings = get_settings()
    async with Database.from_settings(settings) as db:
        st = ApiState(db=db, runtime=Runtime(db, settings=settings), settings=settings, queue=None)
        who = await key_caller(db, key)  # a bad key stops here, with a clear message

        async def resolve() -> tuple[Caller, ApiState]:
            await take_rate_token(db, settings, who)  # the key's bucket, shared with the web
            return who, st

        server = build_server(resolve)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
