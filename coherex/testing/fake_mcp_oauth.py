"""A remote MCP server behind OAuth 2.1, for tests of MCP data sources: protected-resource metadata,
authorization-server metadata, dynamic client registration, an authorization endpoint that consents
at once (it redirects to the client's redirect URI with a code, as a person clicking "Allow" would),
a token endpoint (authorization_code with PKCE, refresh_token) and a Streamable HTTP MCP endpoint
(the SDK's FastMCP) that accepts only the access token it issued last.

    with FakeOAuthMcp() as fake:
        fake.issue("at-1", "rt-1")   # the tokens a sign-in would have given
        fake.expires_in = 30         # how long the tokens it issues last
        fake.base_url, fake.token_requests, fake.seen_tokens, fake.authorize_requests
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
from typing import Any
from urllib.parse import urlencode

from mcp.server.fastmcp import FastMCP
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Mount, Route

from coherex.testing._server import BackgroundServer, ServedApp

CLIENT_ID = "coherex-test-client"


class FakeOAuthMcp(ServedApp):
    server_name = "fake-oauth-mcp"

    def __init__(self) -> None:
        self.valid: str | None = None
        self.refresh: str | None = None
        self.token_requests: list[dict[str, str]] = []
        self.seen_tokens: list[str | None] = []
        self.authorize_requests: list[dict[str, str]] = []
        self.clients: dict[str, list[str]] = {CLIENT_ID: []}  # client id → its redirect URIs
        self.codes: dict[str, dict[str, str]] = {}  # code → the authorization request it answers
        self.expires_in = 3600
        self.deny = False  # the person clicks "Deny"
        self._n = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def issue(self, access: str, refresh: str) -> None:
        self.valid, self.refresh = access, refresh

    def start(self):
        self._server = BackgroundServer(self._app(), self.server_name, lifespan="on").start()
        self.port = self._server.port
        return self

    def _app(self) -> Any:
        mcp = FastMCP("oauth-protected", stateless_http=True, json_response=True)

        @mcp.tool(annotations={"readOnlyHint": True})
        def whoami() -> str:
            """Says that the caller is signed in."""
            return "signed in"

        inner = mcp.streamable_http_app()

        async def protected(scope, receive, send):
            if scope["type"] == "http":
                auth = dict(scope["headers"]).get(b"authorization", b"").decode()
                token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
                self.seen_tokens.append(token)
                if token is None or token != self.valid:
                    meta = f"{self.base_url}/.well-known/oauth-protected-resource/mcp"
                    await JSONResponse(
                        {"error": "invalid_token"},
                        status_code=401,
                        headers={
                            "WWW-Authenticate": f'Bearer error="invalid_token", resource_metadata="{meta}"'
                        },
                    )(scope, receive, send)
                    return
            await inner(scope, receive, send)

        async def resource_metadata(request: Request) -> JSONResponse:
            return JSONResponse(
                {"resource": f"{self.base_url}/mcp", "authorization_servers": [self.base_url]}
            )

        async def server_metadata(request: Request) -> JSONResponse:
            return JSONResponse(
                {
                    "issuer": self.base_url,
                    "authorization_endpoint": f"{self.base_url}/authorize",
                    "token_endpoint": f"{self.base_url}/oauth/token",  # not the origin's /token
                    "registration_endpoint": f"{self.base_url}/oauth/register",
                    "response_types_supported": ["code"],
                    "grant_types_supported": ["authorization_code", "refresh_token"],
                    "code_challenge_methods_supported": ["S256"],
                }
            )

        async def register(request: Request) -> JSONResponse:
            body = await request.json()
            client_id = f"dyn-{len(self.clients)}"
            self.clients[client_id] = list(body.get("redirect_uris") or [])
            return JSONResponse({**body, "client_id": client_id}, status_code=201)

        async def authorize(request: Request) -> Any:
            q = dict(request.query_params)
            self.authorize_requests.append(q)
            uris = self.clients.get(q.get("client_id", ""))
            if uris is None or (uris and q.get("redirect_uri") not in uris):
                return JSONResponse({"error": "invalid_client"}, status_code=400)
            back = {"state": q.get("state", "")}
            if self.deny:
                back["error"] = "access_denied"
            else:
                code = secrets.token_urlsafe(16)
                self.codes[code] = q
                back["code"] = code
            return RedirectResponse(f"{q['redirect_uri']}?{urlencode(back)}", status_code=302)

        def _code_ok(form: dict[str, str]) -> bool:
            asked = self.codes.pop(form.get("code", ""), None)
            if asked is None or asked.get("redirect_uri") != form.get("redirect_uri"):
                return False
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == asked.get("code_challenge")

        async def token(request: Request) -> JSONResponse:
            form = dict(await request.form())
            self.token_requests.append(form)
            grant = form.get("grant_type")
            if grant == "authorization_code":
                if not _code_ok(form):
                    return JSONResponse({"error": "invalid_grant"}, status_code=400)
            elif grant != "refresh_token" or form.get("refresh_token") != self.refresh:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            self._n += 1
            self.valid, self.refresh = f"at-fresh-{self._n}", f"rt-fresh-{self._n}"
            return JSONResponse(
                {
                    "access_token": self.valid,
                    "token_type": "Bearer",
                    "expires_in": self.expires_in,
                    "refresh_token": self.refresh,
                }
            )

        @contextlib.asynccontextmanager
        async def lifespan(app):
            async with mcp.session_manager.run():
                yield

        return Starlette(
            routes=[
                Route("/.well-known/oauth-protected-resource/mcp", resource_metadata),
                Route("/.well-known/oauth-authorization-server", server_metadata),
                Route("/oauth/token", token, methods=["POST"]),
                Route("/oauth/register", register, methods=["POST"]),
                Route("/authorize", authorize),
                Mount("/", app=protected),
            ],
            lifespan=lifespan,
        )
