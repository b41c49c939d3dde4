"""The web process: the HTTP API (/api), OAuth callbacks (/oauth) and the Chainlit chat (/chat),
served by one FastAPI app (`coherex web`, the Procfile's `web`).

Chainlit is mounted into our app (`mount_chainlit`) rather than our routes added to Chainlit's:
the API then also runs alone (`create_app(chat=False)`, used by API tests and schemathesis), and
no Chainlit catch-all route can shadow an API path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.datastructures import Headers
from starlette.requests import cookie_parser

from coherex.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
# Chainlit reads its config (.chainlit/), translations and logos (public/) from its app root, which
# defaults to the working directory — where it would otherwise write a default config of its own
os.environ.setdefault("CHAINLIT_APP_ROOT", str(ROOT))


CSRF_HEADER = "x-coherex-csrf"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def public_origin(url: str | None) -> str | None:
    """`scheme://host[:port]` of COHEREX_PUBLIC_URL (None when unset)."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"COHEREX_PUBLIC_URL is {url!r}; it must be the http(s) address people open, "
                        "e.g. https://coherex.example.com")
    return f"{parts.scheme}://{parts.netloc}".lower()


class CookieCsrfGuard:
    """Refuses cross-site use of the chat's sign-in cookie (CSRF, and cross-site WebSockets).

    A browser sends the cookie with any request to this host, also one a foreign page makes
    (a `text/plain` POST needs no CORS preflight). So a state-changing request or a WebSocket
    that carries the cookie must come from the platform's own origin (`Origin`, else `Referer`:
    COHEREX_PUBLIC_URL, or the request's own host when that is unset) or carry an
    `X-Coherex-CSRF` header (a foreign page cannot add one without a preflight, which is refused).
    Requests with `Authorization: Bearer` (API keys) and without the cookie are not affected."""

    def __init__(self, app: Any, public_url: str | None = None) -> None:
        self.app, self.origin = app, public_origin(public_url)
        self.cookie = os.environ.get("CHAINLIT_AUTH_COOKIE_NAME", "access_token")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" or (scope["type"] == "http" and scope["method"] not in _SAFE_METHODS):
            headers = Headers(scope=scope)
            if self._signed_in_by_cookie(headers) and not self._same_site(headers):
                await self._refuse(scope, send, headers)
                return
        await self.app(scope, receive, send)

    def _signed_in_by_cookie(self, headers: Headers) -> bool:
        if headers.get("authorization", "").lower().startswith("bearer "):
            return False
        cookies = cookie_parser(headers.get("cookie", ""))
        return self.cookie in cookies or f"{self.cookie}_0" in cookies

    def _same_site(self, headers: Headers) -> bool:
        if headers.get(CSRF_HEADER):
            return True
        sent = headers.get("origin") or headers.get("referer") or ""
        parts = urlsplit(sent)
        if not parts.scheme or not parts.netloc:  # none, or "null" (a sandboxed frame, a redirect)
            return False
        if self.origin:
            return f"{parts.scheme}://{parts.netloc}".lower() == self.origin
        return parts.netloc.lower() == headers.get("host", "").lower()

    async def _refuse(self, scope: dict, send: Any, headers: Headers) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: the handshake gets 403
            return
        sent = headers.get("origin") or headers.get("referer") or "none"
        body = json.dumps({"error": {
            "code": "csrf_refused",
            "message": f"Refused: this request carries the chat's sign-in cookie but comes from another site "
                       f"(Origin {sent}).",
            "hint": "Scripts: use an API key (Authorization: Bearer …) or send the X-Coherex-CSRF: 1 header. "
                    "If Coherex is served at another address, set COHEREX_PUBLIC_URL to it."}}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def create_app(*, chat: bool = True) -> FastAPI:
    from coherex import __version__
    from coherex.api import install_error_handlers, lifespan, router as api_router
    from coherex.api.deps import caller, db
    from coherex.api.oauth import build_router
    from coherex.settings import get_settings

    settings = get_settings()

    app = FastAPI(
        title="Coherex API", version=__version__, lifespan=lifespan,
        description="Create, version, run and watch AI agents. Authenticate with `Authorization: Bearer <API key>`.",
    )
    install_error_handlers(app)
    app.include_router(api_router, prefix="/api")
    app.include_router(build_router(get_db=db, get_caller=caller))
    from coherex.api import mcp; mcp.mount(app, settings.public_url)  # /mcp for MCP clients  # noqa: E702
    from coherex.api import a2a; a2a.mount(app)  # A2A agent cards and JSON-RPC  # noqa: E702

    if chat:
        from chainlit.utils import mount_chainlit

        from coherex.chat.session import ChatCallerMiddleware

        @app.get("/", include_in_schema=False)
        async def home() -> RedirectResponse:
            return RedirectResponse("/chat")

        # Chainlit answers CORS with credentials allowed: only for our own public origin (none when
        # unset — the chat is same-origin). In place: Chainlit's CORS middleware holds this list.
        from chainlit.config import config as chainlit_config

        origin = public_origin(settings.public_url)
        chainlit_config.project.allow_origins[:] = [origin] if origin else []
        mount_chainlit(app=app, target=str(ROOT / "chat_app.py"), path="/chat")
        # Chainlit's HTTP routes (e.g. feedback) run as the signed-in caller, not as the thread's author
        app.add_middleware(ChatCallerMiddleware, prefix="/chat")
    app.add_middleware(CookieCsrfGuard, public_url=settings.public_url)
    return app
