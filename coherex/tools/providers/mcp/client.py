"""The MCP client: one session with one server, over Streamable HTTP, SSE or stdio in a sandbox box.

    async with open_session(config, credentials, sandbox=box_opener) as session:
        tools = await session.list_tools()            # [RemoteTool]
        result = await session.call_tool("echo", {"message": "hi"})   # Result

Every HTTP connection (the MCP endpoint, OAuth discovery, registration, token requests) goes
through the egress guard; a local server runs inside a sandbox box. The only module of Coherex that
speaks MCP as a client (the SDK's `ClientSession` and transports are used as they are).

Errors: `ServiceError` (the server answered badly, the caller's settings are wrong, the sign-in
needs renewing: a clear tool error), `McpServerDown` (the server is dead, crashed or unreachable: a
BackendError, so a run that depends on it is retried).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import anyio
import httpx
from mcp import ClientSession, types
from mcp.client.auth import OAuthFlowError, OAuthTokenError
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

from coherex import __version__, egress
from coherex.errors import BackendError
from coherex.integrations.base import ServiceError
from coherex.integrations.vault import redact
from coherex.tools.providers.mcp.box import BoxedServer, box_stdio_client
from coherex.tools.providers.mcp.config import McpConfig, McpCredentials
from coherex.tools.providers.mcp.errors import McpServerDown
from coherex.tools.providers.mcp.oauth import Save, auth_provider

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 30.0  # reaching the server and the initialize handshake
STDIO_START_TIMEOUT_S = 120.0  # a first `npx -y` may download the package
SandboxOpener = Callable[[bool], Awaitable[Any]]  # allow_network → a Sandbox (killed by the caller)


@dataclass(frozen=True)
class RemoteTool:
    name: str
    description: str
    input_schema: dict[str, Any]
    read_only: bool
    title: str | None = None
    annotations: dict[str, Any] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None


@dataclass
class Result:
    """One tool call's result, in the port's `ToolResult` fields: `text` holds the text contents only
    (whoever shows the result renders the images and resources beside it)."""

    text: str = ""
    data: Any = None
    images: list[tuple[str, bytes]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    is_error: bool = False


def _leaf(exc: BaseException) -> BaseException:
    """The error that matters inside anyio's exception groups (not the cancellations it caused)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        real = [
            e for e in exc.exceptions if not isinstance(e, (anyio.get_cancelled_exc_class(), GeneratorExit))
        ]
        exc = (real or list(exc.exceptions))[0]
    return exc


class Session:
    """An initialized session. `name` is the source's name for messages."""

    def __init__(
        self,
        session: ClientSession,
        info: types.InitializeResult,
        name: str,
        config: McpConfig,
        secrets: list[str],
        server: BoxedServer | None,
    ):
        self._s, self.info, self.name, self.config = session, info, name, config
        self._secrets, self._server = secrets, server
        self.closed = False
        self.box: Any = None  # the sandbox box a local server runs in

    @property
    def server_name(self) -> str:
        return self.info.serverInfo.name

    async def list_tools(self) -> list[RemoteTool]:
        out: list[RemoteTool] = []
        cursor: str | None = None
        for _ in range(100):  # a server whose cursor never ends is cut off, not followed for ever
            page = await self._request(
                lambda c=cursor: self._s.list_tools(
                    params=types.PaginatedRequestParams(cursor=c) if c else None
                ),
                "list its tools",
            )
            out.extend(_remote_tool(t) for t in page.tools)
            cursor = page.nextCursor
            if not cursor:
                break
        return out

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> Result:
        result = await self._request(
            lambda: self._s.call_tool(
                name, arguments, read_timeout_seconds=timedelta(seconds=self.config.timeout)
            ),
            f"run {name!r}",
        )
        return convert_result(result, self._secrets)

    async def _request(self, fn: Callable[[], Awaitable[Any]], what: str) -> Any:
        try:
            return await fn()
        except McpError as exc:
            err = exc.error
            if err.code == types.CONNECTION_CLOSED:
                self.closed = True
                raise McpServerDown(self._gone(what)) from None
            if "timed out" in err.message.lower() or err.code == httpx.codes.REQUEST_TIMEOUT:
                raise ServiceError(
                    f"The MCP server {self.name!r} did not answer within {self.config.timeout:g} s "
                    f"when asked to {what} (setting `timeout` of the data source).",
                    retryable=True,
                ) from None
            raise ServiceError(
                f"The MCP server {self.name!r} refused to {what}: {redact(err.message, self._secrets)[:500]}"
            ) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream):
            self.closed = True
            raise McpServerDown(self._gone(what)) from None

    def _gone(self, what: str) -> str:
        why = self._server.describe_end() if self._server is not None else "the connection was closed"
        return f"The MCP server {self.name!r} went away while asked to {what} ({why})."


def _remote_tool(t: types.Tool) -> RemoteTool:
    ann = t.annotations.model_dump(exclude_none=True) if t.annotations else {}
    return RemoteTool(
        name=t.name,
        title=t.title or ann.get("title"),
        description=t.description or "",
        input_schema=dict(t.inputSchema or {"type": "object"}),
        read_only=bool(ann.get("readOnlyHint")),
        annotations=ann,
        output_schema=dict(t.outputSchema) if t.outputSchema else None,
    )


def convert_result(r: types.CallToolResult, secrets: list[str] = ()) -> Result:  # type: ignore[assignment]
    out = Result(is_error=bool(r.isError), data=r.structuredContent)
    texts: list[str] = []
    for c in r.content:
        if isinstance(c, types.TextContent):
            texts.append(c.text)
        elif isinstance(c, (types.ImageContent, types.AudioContent)):
            raw = base64.b64decode(c.data)
            if isinstance(c, types.ImageContent):
                out.images.append((c.mimeType, raw))
            else:
                out.resources.append({"uri": "", "mimeType": c.mimeType, "blob": c.data})
        elif isinstance(c, types.EmbeddedResource):
            res = c.resource
            item: dict[str, Any] = {"uri": str(res.uri), "mimeType": res.mimeType}
            if isinstance(res, types.TextResourceContents):
                item["text"] = res.text
            else:
                item["blob"] = res.blob
            out.resources.append(item)
        elif isinstance(c, types.ResourceLink):
            out.resources.append({"uri": str(c.uri), "name": c.name, "mimeType": c.mimeType, "link": True})
    out.text = "\n".join(texts)
    if not out.text and out.data is not None:
        out.text = json.dumps(out.data)
    if secrets:
        out.text = redact(out.text, secrets)
    return out


def http_factory(extra_headers: dict[str, str]) -> Callable[..., httpx.AsyncClient]:
    """The SDK's `McpHttpClientFactory`, building clients whose every connection passes the egress guard."""

    def factory(
        headers: dict[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.AsyncClient:
        return egress.async_client(
            headers={**extra_headers, **(headers or {})},
            timeout=timeout or httpx.Timeout(CONNECT_TIMEOUT_S, read=300.0),
            auth=auth,
            follow_redirects=False,
        )

    return factory


@asynccontextmanager
async def open_session(
    name: str,
    config: McpConfig,
    credentials: McpCredentials,
    *,
    sandbox: SandboxOpener | None = None,
    save: Save | None = None,
    oauth_handlers: dict[str, Any] | None = None,
) -> AsyncIterator[Session]:
    """Connect, initialize and yield a `Session`; everything is closed (the box killed) on exit."""
    secrets = credentials.secrets()
    stack = AsyncExitStack()
    server: BoxedServer | None = None
    box: Any = None
    try:
        if config.command:
            if sandbox is None:
                raise ServiceError(f"The MCP server {name!r} runs in a sandbox, and none is available here.")
            box = await sandbox(config.network)
            stack.push_async_callback(box.kill)
            server = BoxedServer(secrets)
            streams = await stack.enter_async_context(
                box_stdio_client(
                    box, config.command, credentials.env_values(), secrets=secrets, server=server
                )
            )
            start_timeout = STDIO_START_TIMEOUT_S
        else:
            streams = await stack.enter_async_context(
                _http_streams(config, credentials, save, oauth_handlers or {})
            )
            start_timeout = CONNECT_TIMEOUT_S
        session = await stack.enter_async_context(
            ClientSession(
                streams[0],
                streams[1],
                read_timeout_seconds=timedelta(seconds=max(config.timeout, start_timeout)),
                client_info=types.Implementation(name="coherex", version=__version__),
            )
        )
        with anyio.fail_after(start_timeout):
            info = await session.initialize()
    except BaseException as exc:  # noqa: BLE001 -- every failure becomes one clear error
        cause: BaseException = exc
        try:
            await stack.aclose()  # a transport's task group raises the real cause here
        except BaseException as closing:  # noqa: BLE001
            cause = (
                closing if isinstance(_leaf(exc), (anyio.get_cancelled_exc_class(), TimeoutError)) else exc
            )
        raise _connect_error(name, config, _leaf(cause), secrets, server) from None
    try:
        out = Session(session, info, name, config, secrets, server)
        out.box = box
        yield out
    finally:
        try:
            await stack.aclose()
        except Exception as exc:  # noqa: BLE001 -- a server that dies while closing is closed
            log.debug("closing an MCP session: %s", type(_leaf(exc)).__name__)


@asynccontextmanager
async def _http_streams(
    config: McpConfig, credentials: McpCredentials, save: Save | None, handlers: dict[str, Any]
) -> AsyncIterator[tuple[Any, Any]]:
    assert config.url
    auth = auth_provider(config.url, credentials, save, **handlers)
    factory = http_factory(credentials.header_values())
    kind: Literal["streamable-http", "sse"] = config.transport or (
        "sse" if config.url.rstrip("/").endswith("/sse") else "streamable-http"
    )
    if kind == "sse":
        async with sse_client(
            config.url, httpx_client_factory=factory, auth=auth, timeout=CONNECT_TIMEOUT_S
        ) as (read, write):
            yield read, write
        return
    async with (
        factory(auth=auth) as client,
        streamable_http_client(config.url, http_client=client) as (read, write, _),
    ):
        yield read, write


def _connect_error(
    name: str, config: McpConfig, exc: BaseException, secrets: list[str], server: BoxedServer | None
) -> Exception:
    where = config.url or f"`{config.command}` in a sandbox"
    if isinstance(exc, (ServiceError, BackendError)):
        return exc
    if isinstance(exc, egress.EgressDenied):
        return ServiceError(exc.message)
    if isinstance(exc, ValueError) and config.url:  # the SDK refuses a bad OAuth setting this way
        return ServiceError(
            f"The OAuth settings of MCP server {name!r} are not usable: {redact(str(exc), secrets)[:300]}"
        )
    if isinstance(exc, (OAuthFlowError, OAuthTokenError)):
        return ServiceError(
            f"The MCP server {name!r} needs a (new) OAuth sign-in: {redact(str(exc), secrets)[:300]}. "
            f"Sign in with `coherex sources login {name}` (or add the source again with working "
            f"credentials: `coherex sources add mcp {name} --url … --header 'Authorization=Bearer …'`).",
            auth=True,
        )
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        if status in (401, 403):
            return ServiceError(
                f"The MCP server {name!r} ({where}) refused the credentials (HTTP {status}); check the "
                f"data source's headers, or sign in through OAuth with `coherex sources login {name}`.",
                status=status,
                auth=True,
            )
        if status >= 500:
            return McpServerDown(f"The MCP server {name!r} ({where}) had an internal error (HTTP {status}).")
        return ServiceError(
            f"The MCP server {name!r} ({where}) refused the connection (HTTP {status}); is `url` the "
            "server's MCP endpoint (and `transport` right)?",
            status=status,
        )
    if isinstance(exc, McpError):
        if exc.error.code == types.CONNECTION_CLOSED:
            why = server.describe_end() if server else "the connection was closed"
            return McpServerDown(f"The MCP server {name!r} ({where}) stopped before it answered ({why}).")
        return ServiceError(
            f"The MCP server {name!r} refused to start a session: {redact(exc.error.message, secrets)}"
        )
    if isinstance(exc, TimeoutError):
        why = f"; {server.describe_end()}" if server and server.exit_code is not None else ""
        return McpServerDown(f"The MCP server {name!r} ({where}) did not answer the handshake in time{why}.")
    if isinstance(
        exc,
        (
            httpx.TransportError,
            OSError,
            anyio.ClosedResourceError,
            anyio.BrokenResourceError,
            anyio.EndOfStream,
        ),
    ):
        why = server.describe_end() if server else type(exc).__name__
        return McpServerDown(
            f"Cannot reach the MCP server {name!r} ({where}): {redact(str(exc) or why, secrets)[:300]}"
        )
    log.warning("unexpected error connecting to an MCP server: %s", type(exc).__name__)
    return McpServerDown(f"Connecting to the MCP server {name!r} ({where}) failed: {type(exc).__name__}.")
