"""Fake Slack Web API, GitHub REST v3, Gmail REST v1 and OAuth2 servers for tests, composed.

Each provider's fake lives beside it in its own module (fake_slack.py, fake_github.py,
fake_gmail.py, fake_http_api.py; fake_oauth.py for the sign-in servers); this module serves them
together with what they share (tokens, recorded requests, injected faults). One real HTTP server
on 127.0.0.1 (a free port, in a background thread) speaking each service's wire protocol under its
own prefix, so our real clients (slack_sdk, httpx) run unmodified:

    with FakeSaaS() as saas:
        saas.env()                      # settings that point Coherex at it (COHEREX_SLACK_API_URL, ...)
        saas.slack.add_channel("general", messages=["hello"])
        saas.github.add_issue("acme/app", "Crash on start")
        saas.gmail.add_message(sender="ann@example.com", subject="Invoice", body="...", unread=True)
        saas.fail("slack", status=429, retry_after=1)   # the next Slack request gets this
        saas.requests                   # everything received, in order

Credentials: `saas.slack_token`, `saas.github_token`, `saas.gmail_token` are valid from the start;
`saas.revoke(token)` makes a token answer like a revoked one. OAuth: `/oauth/<provider>/authorize`
redirects straight back to the redirect URI with a code (the person "clicked Allow");
`/oauth/<provider>/token` checks client credentials, redirect URI and the PKCE verifier;
`saas.google_expires_in` sets the lifetime of new Google access tokens; `saas.expire(token)` ends
one early; `saas.refuse_refresh = True` fails refreshes.
`/redirect/...?to=URL` answers 302 to URL (an API that sends clients elsewhere).
`saas.env()` also allows this server in the egress guard (COHEREX_EGRESS_ALLOW=127.0.0.1:<port>),
as an operator would allow an internal service.
Faults (`saas.fail(service, status=..., retry_after=..., malformed=True, times=n)`) are served
before any normal answer, in order, to the next requests of that service.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from coherex.testing import fake_github, fake_gmail, fake_http_api, fake_oauth, fake_slack
from coherex.testing._server import BackgroundServer, ServedApp
from coherex.testing.fake_github import GitHubState
from coherex.testing.fake_gmail import GmailState
from coherex.testing.fake_oauth import CLIENTS
from coherex.testing.fake_slack import SlackState

__all__ = ["CLIENTS", "FakeSaaS", "Recorded"]

#: one module per fake service, each with routes(saas) and env(url)
_FAKES = (fake_slack, fake_github, fake_gmail, fake_http_api, fake_oauth)


@dataclass
class Fault:
    status: int = 500
    retry_after: float | None = None
    malformed: bool = False


@dataclass(frozen=True)
class Recorded:
    service: str
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)  # when it arrived (rate-limit tests)


class FakeSaaS(ServedApp):
    server_name = "fake-saas"

    def __init__(self) -> None:
        self.slack = SlackState()
        self.github = GitHubState()
        self.gmail = GmailState()
        self.slack_token = "xoxb-fake-" + secrets.token_hex(12)
        self.github_token = "ghp_fake" + secrets.token_hex(16)
        self.gmail_token = "ya29.fake-" + secrets.token_hex(16)
        self.gmail_refresh_token = "1//fake-refresh-" + secrets.token_hex(12)
        self._lock = threading.Lock()
        #: access token → (service, expires at as time.time(), or None)
        self._tokens: dict[str, tuple[str, float | None]] = {
            self.slack_token: ("slack", None),
            self.github_token: ("github", None),
            self.gmail_token: ("gmail", None),
        }
        self._refresh: dict[str, str] = {self.gmail_refresh_token: "google"}
        self.revoked: set[str] = set()
        self._codes: dict[str, dict[str, str]] = {}
        self._faults: dict[str, deque[Fault]] = {}
        self.refuse_refresh = False
        #: lifetime Google gives new access tokens (short ones make Coherex refresh at once)
        self.google_expires_in = 3600
        self.requests: list[Recorded] = []
        self.port = 0
        self._server: BackgroundServer | None = None
        self.github_app: dict[str, Any] | None = None
        #: the person who "signs in" at the fake identity provider (/oauth/userinfo)
        self.signed_in_email = "someone@example.com"

    # --- scripting ---
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for fake in _FAKES:
            out.update(fake.env(self.url))
        return {**out, "COHEREX_EGRESS_ALLOW": f"127.0.0.1:{self.port}"}

    def fail(
        self,
        service: str,
        *,
        status: int = 500,
        retry_after: float | None = None,
        malformed: bool = False,
        times: int = 1,
    ) -> None:
        with self._lock:
            for _ in range(times):
                self._faults.setdefault(service, deque()).append(Fault(status, retry_after, malformed))

    def register_github_app(self, app_id: str, public_key_pem: str, installation_id: int) -> None:
        """Accept installation-token requests signed by this app's private key."""
        self.github_app = {"app_id": app_id, "public_key": public_key_pem, "installation_id": installation_id}

    def revoke(self, token: str) -> None:
        self.revoked.add(token)

    def expire(self, token: str) -> None:
        with self._lock:
            service, _ = self._tokens[token]
            self._tokens[token] = (service, time.time() - 1)

    def issue_token(self, service: str, expires_in: int | None = None) -> str:
        prefix = {"slack": "xoxb-", "github": "gho_", "gmail": "ya29."}[service]
        token = prefix + secrets.token_hex(16)
        with self._lock:
            self._tokens[token] = (service, time.time() + expires_in if expires_in else None)
        return token

    def of(self, service: str) -> list[Recorded]:
        return [r for r in self.requests if r.service == service]

    # --- plumbing ---
    def _app(self) -> Starlette:
        return Starlette(routes=[route for fake in _FAKES for route in fake.routes(self)])

    async def _record(self, service: str, request: Request) -> Recorded:
        raw = await request.body()
        ctype = request.headers.get("content-type", "")
        body: Any
        if "json" in ctype and raw:
            body = json.loads(raw)
        elif "form" in ctype:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        else:
            body = raw.decode(errors="replace") or None
        rec = Recorded(
            service,
            request.method,
            request.url.path,
            {k.lower(): v for k, v in request.headers.items()},
            dict(request.query_params),
            body,
        )
        with self._lock:
            self.requests.append(rec)
        return rec

    def _fault(self, service: str) -> Response | None:
        with self._lock:
            queue = self._faults.get(service)
            fault = queue.popleft() if queue else None
        if fault is None:
            return None
        if fault.malformed:
            return Response("{not json<html>", status_code=200, media_type="application/json")
        headers = {"Retry-After": str(int(fault.retry_after))} if fault.retry_after is not None else {}
        if service == "slack":
            error = "ratelimited" if fault.status == 429 else "fatal_error"
            return JSONResponse({"ok": False, "error": error}, status_code=fault.status, headers=headers)
        return JSONResponse(
            {"message": f"injected {fault.status}"}, status_code=fault.status, headers=headers
        )

    def _token_ok(self, rec: Recorded, service: str) -> bool:
        auth = rec.headers.get("authorization", "")
        token = auth.split(" ", 1)[1] if " " in auth else ""
        with self._lock:
            known = self._tokens.get(token)
        if known is None or known[0] != service or token in self.revoked:
            return False
        return known[1] is None or known[1] > time.time()
