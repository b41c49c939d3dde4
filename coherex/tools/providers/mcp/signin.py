"""Signing a remote MCP data source in through OAuth 2.1 from the CLI (`coherex sources login NAME`).

The SDK's authorization-code flow runs as it does for any MCP client: discovery from the server's
401, dynamic client registration (or the pre-registered client given), PKCE and state. The link
is shown to the person; their browser comes back to a one-shot listener on this machine's
loopback (`http://127.0.0.1:PORT/callback`, RFC 8252), which hands the code to the flow. Every
request the platform makes (discovery, registration, tokens, the MCP endpoint) goes through the
egress guard like any other MCP connection; the tokens are sealed into the source's credentials
in the vault as they arrive, and refreshed from there by whoever uses the source later.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

from pydantic import SecretStr

from coherex.errors import PermissionDenied, UserError
from coherex.integrations.base import Check, ServiceError

CALLBACK_PATH = "/callback"
DEFAULT_WAIT_SECONDS = 300.0


class _Callback:
    """One-shot HTTP listener on the loopback for the browser's redirect back."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self.server: asyncio.Server | None = None
        self.port = 0
        self.state: str | None = None  # of the authorization request: an answer without it is not ours

    async def start(self, port: int) -> None:
        try:
            self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        except OSError as exc:
            raise UserError(
                f"Cannot listen on 127.0.0.1:{port} for the sign-in's answer ({exc.strerror}).",
                hint="Pick another port with --port, or leave it out for a free one.",
            ) from None
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1")
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass  # the headers: nothing in them matters
            parts = line.split()
            target = urlsplit(parts[1]) if len(parts) >= 2 else urlsplit("/")
            if target.path != CALLBACK_PATH:
                await _respond(writer, 404, "Not found", "This address only takes the sign-in's answer.")
                return
            query = {k: v[0] for k, v in parse_qs(target.query).items()}
            if self.state is None or query.get("state") != self.state:  # another page's (or a forgery)
                await _respond(writer, 400, "Not this sign-in", "This answer does not belong to the sign-in.")
                return
            if self.answer.done():
                await _respond(writer, 409, "Already answered", "This sign-in was already answered.")
                return
            self.answer.set_result(query)
            if query.get("error"):
                await _respond(writer, 200, "Not signed in", f"The server said: {query['error']}.")
            else:
                await _respond(
                    writer, 200, "Signed in", "You can close this tab and go back to the terminal."
                )
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def _respond(writer: asyncio.StreamWriter, status: int, title: str, message: str) -> None:
    body = (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {title}\r\nContent-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    writer.write(head + body)
    await writer.drain()


async def sign_in(
    db: Any,
    identity: Any,
    team_id: UUID,
    name: str,
    *,
    show_link: Callable[[str], Awaitable[None] | None],
    client_id: str | None = None,
    client_secret: str | None = None,
    scope: str | None = None,
    port: int = 0,
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
) -> Check:
    """Sign the MCP source `name` in: → its connection check afterwards. `show_link(url)` tells the
    person where to allow access. Team owners and admins, like adding a source."""
    from coherex.integrations.service import check_source, get_source, open_source, save_credentials
    from coherex.tools.providers.mcp.client import open_session
    from coherex.tools.providers.mcp.config import OAuthState

    source = await get_source(db, identity, team_id, name)
    if source.type != "mcp" or not source.config.get("url"):
        raise UserError(
            f"{name!r} is not a remote MCP data source: only those sign in through OAuth here.",
            hint="Gmail, GitHub and Slack connect with `coherex sources connect TYPE NAME`.",
        )
    async with db.session(identity) as s:
        member = await s.members.get(team_id, identity.user_id)
    if member is None or member.role not in ("owner", "admin"):
        raise PermissionDenied("Only a team owner or admin can sign a data source in.")
    opened = await open_source(db, source)
    creds = opened.call.credentials
    before = creds.oauth or OAuthState()
    # a new sign-in: new tokens, and a client registered for this listener's redirect URI (the
    # pre-registered one kept unless another is given)
    creds.oauth = OAuthState(
        client_id=client_id or before.client_id,
        client_secret=SecretStr(client_secret) if client_secret else before.client_secret,
        scope=scope or before.scope,
        client_metadata_url=before.client_metadata_url,
    )
    callback = _Callback()
    await callback.start(port)

    async def redirect_handler(url: str) -> None:
        callback.state = (parse_qs(urlsplit(url).query).get("state") or [None])[0]
        shown = show_link(url)
        if shown is not None:
            await shown

    async def callback_handler() -> tuple[str, str | None]:
        try:
            answer = await asyncio.wait_for(asyncio.shield(callback.answer), wait_seconds)
        except TimeoutError:
            raise ServiceError(
                f"Nobody signed in within {int(wait_seconds)} s; run `coherex sources login {name}` again."
            ) from None
        if answer.get("error"):
            raise ServiceError(f"The MCP server {name!r} did not grant access: {answer['error']}.")
        if not answer.get("code"):
            raise ServiceError(f"The MCP server {name!r} sent no authorization code; sign in again.")
        return answer["code"], answer.get("state")

    async def save(changed: Any) -> None:  # tokens and the registered client, sealed as they come
        await save_credentials(db, source, changed)

    handlers = {
        "redirect_uri": callback.redirect_uri,
        "redirect_handler": redirect_handler,
        "callback_handler": callback_handler,
    }
    # the SDK logs a failed flow with its traceback; the error raised here says what went wrong
    sdk_log = logging.getLogger("mcp.client.auth.oauth2")
    level = sdk_log.level
    sdk_log.setLevel(logging.CRITICAL)
    try:
        async with open_session(name, opened.call.config, creds, save=save, oauth_handlers=handlers) as s:
            await s.list_tools()
    finally:
        sdk_log.setLevel(level)
        await callback.close()
    if creds.oauth is None or creds.oauth.access_token is None:
        raise ServiceError(f"The MCP server {name!r} let us in without OAuth: there was nothing to sign in.")
    async with db.session(identity) as s:
        await s.audit.record(
            team_id,
            "data_source.sign_in",
            target_type="data_source",
            target_id=str(source.id),
            details={"name": name, "type": "mcp", "via": "oauth"},
        )
    _, check = await check_source(db, identity, team_id, name)  # its status and tools, as `test` does
    return check
