"""The web process: the HTTP API (/api), OAuth callbacks (/oauth) and the Chainlit chat (/chat),
served by one FastAPI app (`coherex web`, the Procfile's `web`).

Chainlit is mounted into our app (`mount_chainlit`) rather than our routes added to Chainlit's:
the API then also runs alone (`create_app(chat=False)`, used by API tests and schemathesis), and
no Chainlit catch-all route can shadow an API path.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse

from coherex import resources
from coherex.api.deps import error_body
from coherex.errors import UserError

log = logging.getLogger(__name__)


def _chat_app_root() -> str:
    """Chainlit's app root: it reads its config (.chainlit/), translations and logos (public/) and
    chainlit.md from there, and writes the chat's uploads into `.files/` of it. The project's files
    are linked into the data dir's `chat/`, so uploads land beside the rest of the data — not in a
    checkout's working tree or an installed wheel's site-packages."""
    from coherex.settings import get_settings

    bundle = resources.root()
    try:
        target = get_settings().data_path / "chat"
        target.mkdir(parents=True, exist_ok=True)
        for name in (".chainlit", "public", "chainlit.md"):
            link = target / name
            if link.is_symlink() and link.resolve() == (bundle / name).resolve():
                continue
            if link.is_symlink():
                link.unlink()  # linked to another install's files
            if not link.exists():
                try:
                    link.symlink_to(bundle / name)
                except FileExistsError:
                    pass  # another process of this install made it
        return str(target)
    except (OSError, ValueError):  # a data dir that cannot be written: read from the bundle
        return str(bundle)


os.environ.setdefault("CHAINLIT_APP_ROOT", _chat_app_root())


CSRF_HEADER = "x-coherex-csrf"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def public_origin(url: str | None) -> str | None:
    """`scheme://host[:port]` of COHEREX_PUBLIC_URL (None when unset)."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(
            f"COHEREX_PUBLIC_URL is {url!r}; it must be the http(s) address people open, "
            "e.g. https://coherex.example.com"
        )
    return f"{parts.scheme}://{parts.netloc}".lower()


class ClientGone:
    """A request whose client hung up (a page navigated away mid-load) can end in an error deep in
    a mounted app — Chainlit's middleware raises when it has no response to pass on. Nobody is
    there to answer, so such an error is dropped with a debug line instead of logged as a server
    error; an error while the client is still there goes on as usual."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = False

        async def watched_receive() -> dict:
            nonlocal gone
            message = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        try:
            await self.app(scope, watched_receive, send)
        except Exception:
            if not gone:
                raise
            log.debug("%s %s: the client left before the answer", scope.get("method"), scope.get("path"))


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
                await self._refuse(scope, receive, send, headers)
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

    async def _refuse(self, scope: dict, receive: Any, send: Any, headers: Headers) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: the handshake gets 403
            return
        sent = headers.get("origin") or headers.get("referer") or "none"
        body = error_body(
            "csrf_refused",
            "Refused: this request carries the chat's sign-in cookie but comes from "
            f"another site (Origin {sent}).",
            "Scripts: use an API key (Authorization: Bearer …) or send the X-Coherex-CSRF: "
            "1 header. If Coherex is served at another address, set COHEREX_PUBLIC_URL to it.",
        )
        await JSONResponse(body, status_code=403)(scope, receive, send)


def create_app(*, chat: bool = True) -> FastAPI:
    from coherex import __version__
    from coherex.api import a2a as a2a_server
    from coherex.api import install_error_handlers, lifespan
    from coherex.api import mcp as mcp_server
    from coherex.api import router as api_router
    from coherex.api.deps import caller, db
    from coherex.api.oauth import build_router
    from coherex.api.pages import router as pages_router
    from coherex.settings import get_settings

    settings = get_settings()

    app = FastAPI(
        title="Coherex API",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Create, version, run and watch AI agents. Authenticate with `Authorization: Bearer "
        "<API key>`.",
    )
    install_error_handlers(app)
    _local_docs(app)
    app.include_router(api_router, prefix="/api")
    app.include_router(build_router(get_db=db, get_caller=caller))
    app.include_router(pages_router)
    mcp_server.mount(app, settings.public_url)  # /mcp for MCP clients
    a2a_server.mount(app)  # A2A agent cards and JSON-RPC

    if chat:
        from chainlit.utils import mount_chainlit

        from coherex.chat.session import ChatCallerMiddleware
        from coherex.chat.uploads import EmptyUploadMiddleware

        @app.get("/", include_in_schema=False)
        async def home() -> RedirectResponse:
            return RedirectResponse("/chat")

        # Chainlit answers CORS with credentials allowed: only for our own public origin (none when
        # unset — the chat is same-origin). In place: Chainlit's CORS middleware holds this list.
        from chainlit.config import config as chainlit_config

        origin = public_origin(settings.public_url)
        chainlit_config.project.allow_origins[:] = [origin] if origin else []
        mount_chainlit(app=app, target=str(resources.path("chat_app.py")), path="/chat")
        # Chainlit's HTTP routes (e.g. feedback) run as the signed-in caller, not as the thread's author
        app.add_middleware(ChatCallerMiddleware, prefix="/chat")
        # an empty attachment gets "… is empty", not Chainlit's server error ("Upload failed")
        app.add_middleware(EmptyUploadMiddleware, prefix="/chat")
    app.add_middleware(CookieCsrfGuard, public_url=settings.public_url)
    app.add_middleware(ClientGone)
    return app


def _local_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc from files installed with the platform (the
    `fastapi-standalone-docs` package ships them): FastAPI's defaults load them from a CDN, which
    leaves the pages blank offline."""
    import fastapi_standalone_docs
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    assets = Path(fastapi_standalone_docs.__file__).parent / "static"
    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} — Swagger UI",
            swagger_js_url="/docs-assets/swagger/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger/swagger-ui.css",
            swagger_favicon_url="/docs-assets/fastapi/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc():
        return get_redoc_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} — ReDoc",
            redoc_js_url="/docs-assets/redoc/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/fastapi/favicon.png",
            with_google_fonts=False,
        )
