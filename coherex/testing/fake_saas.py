"""Fake Slack Web API, GitHub REST v3, Gmail REST v1 and OAuth2 servers for tests.

One real HTTP server on 127.0.0.1 (a free port, in a background thread) speaking each service's
wire protocol under its own prefix, so our real clients (slack_sdk, httpx) run unmodified:

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

import base64
import email
import hashlib
import itertools
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email import policy
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from coherex.testing._server import BackgroundServer, ServedApp

CLIENTS = {
    "google": ("google-client", "google-secret"),
    "github": ("github-client", "github-secret"),
    "slack": ("slack-client", "slack-secret"),
}


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


@dataclass
class SlackState:
    channels: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))

    def add_channel(self, name: str, messages: list[str] = (), private: bool = False) -> str:
        cid = f"C{len(self.channels) + 1:08d}"
        self.channels.append({"id": cid, "name": name, "is_private": private, "num_members": 3})
        self.messages[cid] = []
        for text in messages:
            self.post(cid, text, user="U00000001")
        return cid

    def post(self, cid: str, text: str, user: str = "B0BOT", thread_ts: str | None = None) -> dict[str, Any]:
        ts = f"{1700000000 + next(self._ts)}.000100"
        msg = {"type": "message", "ts": ts, "user": user, "text": text}
        if thread_ts:
            msg["thread_ts"] = thread_ts
        self.messages[cid].insert(0, msg)
        return msg

    def find(self, channel: str) -> str | None:
        for ch in self.channels:
            if channel in (ch["id"], ch["name"], "#" + ch["name"]):
                return ch["id"]
        return None


@dataclass
class GitHubState:
    issues: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    comments: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    diffs: dict[tuple[str, int], str] = field(default_factory=dict)
    commits: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # repo -> path -> text

    def add_file(self, repo: str, path: str, text: str) -> None:
        self.files.setdefault(repo, {})[path] = text
        self.issues.setdefault(repo, [])

    def add_issue(
        self,
        repo: str,
        title: str,
        body: str = "",
        labels: list[str] = (),
        pull: bool = False,
        diff: str = "",
    ) -> int:
        items = self.issues.setdefault(repo, [])
        number = len(items) + 1
        issue = {
            "number": number,
            "title": title,
            "body": body,
            "state": "open",
            "user": {"login": "octocat"},
            "labels": [{"name": n} for n in labels],
            "comments": 0,
            "updated_at": "2026-11-20T10:00:00Z",
            "html_url": f"https://github.example/{repo}/issues/{number}",
            "draft": False,
            "head": {"ref": "feature"},
            "base": {"ref": "main"},
        }
        if pull:
            issue["pull_request"] = {"url": "..."}
            self.diffs[(repo, number)] = diff
        items.append(issue)
        return number

    def add_commit(self, repo: str, message: str, author: str = "Ann") -> None:
        sha = hashlib.sha1(f"{repo}{message}{len(self.commits.get(repo, []))}".encode()).hexdigest()
        self.commits.setdefault(repo, []).insert(
            0,
            {
                "sha": sha,
                "commit": {"message": message, "author": {"name": author, "date": "2026-11-20T10:00:00Z"}},
            },
        )


@dataclass
class GmailState:
    address: str = "me@example.com"
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: list[dict[str, str]] = field(
        default_factory=lambda: [{"id": "INBOX", "name": "INBOX"}, {"id": "UNREAD", "name": "UNREAD"}]
    )
    sent: list[dict[str, Any]] = field(default_factory=list)

    def add_message(
        self,
        *,
        sender: str,
        subject: str,
        body: str,
        unread: bool = True,
        thread_id: str | None = None,
        to: str | None = None,
    ) -> str:
        mid = f"m{len(self.messages) + 1:04d}"
        self.messages[mid] = {
            "id": mid,
            "threadId": thread_id or f"t{mid}",
            "from": sender,
            "to": to or self.address,
            "subject": subject,
            "body": body,
            "labelIds": ["INBOX"] + (["UNREAD"] if unread else []),
        }
        return mid

    def matches(self, m: dict[str, Any], q: str) -> bool:
        for term in q.split():
            if term == "is:unread":
                if "UNREAD" not in m["labelIds"]:
                    return False
            elif ":" in term:
                continue  # newer_than:, in:… — everything is recent in the fake
            elif term.lower() not in (m["subject"] + m["body"] + m["from"]).lower():
                return False
        return True

    def resource(self, m: dict[str, Any], fmt: str) -> dict[str, Any]:
        headers = [
            {"name": "From", "value": m["from"]},
            {"name": "To", "value": m["to"]},
            {"name": "Subject", "value": m["subject"]},
            {"name": "Date", "value": "Fri, 20 Nov 2026 10:00:00 +0000"},
        ]
        payload: dict[str, Any] = {"mimeType": "multipart/alternative", "headers": headers}
        if fmt == "full":
            enc = base64.urlsafe_b64encode(m["body"].encode()).decode().rstrip("=")
            payload["parts"] = [
                {"mimeType": "text/plain", "body": {"data": enc, "size": len(m["body"])}},
                {"mimeType": "text/html", "body": {"data": enc}},
            ]
        return {
            "id": m["id"],
            "threadId": m["threadId"],
            "labelIds": m["labelIds"],
            "snippet": m["body"][:80],
            "payload": payload,
        }


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
        u = self.url
        return {
            "COHEREX_SLACK_API_URL": f"{u}/slack/api/",
            "COHEREX_GITHUB_API_URL": f"{u}/github",
            "COHEREX_GMAIL_API_URL": f"{u}/gmail",
            "COHEREX_GOOGLE_AUTH_URL": f"{u}/oauth/google/authorize",
            "COHEREX_GOOGLE_TOKEN_URL": f"{u}/oauth/google/token",
            "COHEREX_GOOGLE_REVOKE_URL": f"{u}/oauth/google/revoke",
            "COHEREX_GITHUB_AUTH_URL": f"{u}/oauth/github/authorize",
            "COHEREX_GITHUB_TOKEN_URL": f"{u}/oauth/github/token",
            "COHEREX_SLACK_AUTH_URL": f"{u}/oauth/slack/authorize",
            "GOOGLE_CLIENT_ID": CLIENTS["google"][0],
            "GOOGLE_CLIENT_SECRET": CLIENTS["google"][1],
            "GITHUB_CLIENT_ID": CLIENTS["github"][0],
            "GITHUB_CLIENT_SECRET": CLIENTS["github"][1],
            "SLACK_CLIENT_ID": CLIENTS["slack"][0],
            "SLACK_CLIENT_SECRET": CLIENTS["slack"][1],
            "COHEREX_EGRESS_ALLOW": f"127.0.0.1:{self.port}",
        }

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
        return Starlette(
            routes=[
                Route("/slack/api/{method}", self._slack, methods=["GET", "POST"]),
                Route("/github/{path:path}", self._github, methods=["GET", "POST", "PATCH", "DELETE", "PUT"]),
                Route("/gmail/gmail/v1/users/me/{path:path}", self._gmail, methods=["GET", "POST"]),
                Route("/oauth/{provider}/authorize", self._authorize, methods=["GET"]),
                Route("/oauth/{provider}/token", self._token, methods=["POST"]),
                Route("/oauth/google/revoke", self._google_revoke, methods=["POST"]),
                Route("/oauth/userinfo", self._userinfo, methods=["GET"]),
                Route("/api/{path:path}", self._plain_api, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
                Route("/redirect/{path:path}", self._redirect, methods=["GET", "POST"]),
            ]
        )

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

    # --- Slack Web API ---
    async def _slack(self, request: Request) -> Response:
        rec = await self._record("slack", request)
        method = request.path_params["method"]
        args = {**rec.query, **(rec.body if isinstance(rec.body, dict) else {})}
        if method == "oauth.v2.access":
            return self._slack_oauth(args, rec)
        if (fault := self._fault("slack")) is not None:
            return fault
        if not self._token_ok(rec, "slack"):
            auth = rec.headers.get("authorization", "")
            error = "token_revoked" if auth.split(" ")[-1] in self.revoked else "invalid_auth"
            return JSONResponse({"ok": False, "error": error})
        s = self.slack
        if method == "auth.test":
            return JSONResponse(
                {
                    "ok": True,
                    "url": "https://acme.slack.example/",
                    "team": "Acme",
                    "user": "coherex",
                    "team_id": "T0001",
                    "user_id": "U0BOT",
                    "bot_id": "B0BOT",
                },
                headers={"x-oauth-scopes": "chat:write,channels:read,channels:history"},
            )
        if method == "auth.revoke":
            self.revoke(rec.headers["authorization"].split(" ")[-1])
            return JSONResponse({"ok": True, "revoked": True})
        if method == "conversations.list":
            limit = int(args.get("limit", 100))
            return JSONResponse(
                {"ok": True, "channels": s.channels[:limit], "response_metadata": {"next_cursor": ""}}
            )
        if method == "conversations.history":
            cid = args.get("channel", "")
            if cid not in s.messages:
                return JSONResponse({"ok": False, "error": "channel_not_found"})
            oldest = float(args.get("oldest") or 0)
            msgs = [m for m in s.messages[cid] if float(m["ts"]) > oldest][: int(args.get("limit", 100))]
            return JSONResponse({"ok": True, "messages": msgs, "has_more": False})
        if method == "chat.postMessage":
            cid = s.find(args.get("channel", ""))
            if cid is None:
                return JSONResponse({"ok": False, "error": "channel_not_found"})
            msg = s.post(cid, args.get("text", ""), thread_ts=args.get("thread_ts"))
            return JSONResponse({"ok": True, "channel": cid, "ts": msg["ts"], "message": msg})
        return JSONResponse({"ok": False, "error": "unknown_method"}, status_code=404)

    def _slack_oauth(self, args: dict[str, str], rec: Recorded) -> Response:
        error = self._check_code("slack", args, rec)
        if error:
            return JSONResponse({"ok": False, "error": error})
        token = self.issue_token("slack")
        return JSONResponse(
            {
                "ok": True,
                "access_token": token,
                "token_type": "bot",
                "scope": "chat:write,channels:read",
                "team": {"id": "T0001", "name": "Acme"},
                "bot_user_id": "U0BOT",
            }
        )

    # --- GitHub REST v3 ---
    async def _github(self, request: Request) -> Response:
        rec = await self._record("github", request)
        path = "/" + request.path_params["path"]
        parts = path.strip("/").split("/")
        if parts[0] == "applications" and request.method == "DELETE":  # revoke an OAuth app token
            body = rec.body if isinstance(rec.body, dict) else {}
            self.revoke(body.get("access_token", ""))
            return Response(status_code=204)
        if (fault := self._fault("github")) is not None:
            return fault
        if parts[:2] == ["app", "installations"] and parts[-1] == "access_tokens":
            return self._github_app_token(rec, int(parts[2]))
        if not self._token_ok(rec, "github"):
            return JSONResponse(
                {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"},
                status_code=401,
            )
        g = self.github
        if path == "/installation/repositories":
            return JSONResponse(
                {
                    "total_count": len(g.issues),
                    "repositories": [{"full_name": name} for name in sorted(g.issues)],
                }
            )
        if path == "/user":
            return JSONResponse({"login": "octocat", "id": 1}, headers={"x-oauth-scopes": "repo, read:org"})
        if parts[0] != "repos" or len(parts) < 4:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        repo, rest = f"{parts[1]}/{parts[2]}", parts[3:]
        issues = g.issues.get(repo)
        if issues is None and rest[0] != "commits":
            return JSONResponse({"message": "Not Found"}, status_code=404)
        body = rec.body if isinstance(rec.body, dict) else {}
        if rest == ["issues"] and request.method == "GET":
            state = rec.query.get("state", "open")
            return JSONResponse([i for i in issues if state == "all" or i["state"] == state])
        if rest == ["issues"] and request.method == "POST":
            n = g.add_issue(repo, body["title"], body.get("body", ""), body.get("labels", []))
            return JSONResponse(issues[n - 1], status_code=201)
        if rest[0] in ("issues", "pulls") and len(rest) >= 2:
            n = int(rest[1])
            if n > len(issues):
                return JSONResponse({"message": "Not Found"}, status_code=404)
            issue = issues[n - 1]
            if len(rest) == 2 and rest[0] == "pulls" and "diff" in rec.headers.get("accept", ""):
                return PlainTextResponse(g.diffs.get((repo, n), ""), media_type="text/x-diff")
            if len(rest) == 2:
                return JSONResponse(issue)
            if rest[2] == "comments" and request.method == "GET":
                return JSONResponse(g.comments.get((repo, n), []))
            if rest[2] == "comments":
                c = {
                    "id": 1000 + len(g.comments.get((repo, n), [])),
                    "body": body["body"],
                    "user": {"login": "coherex"},
                    "html_url": f"https://github.example/{repo}/issues/{n}#c",
                    "created_at": "2026-11-25T10:00:00Z",
                }
                g.comments.setdefault((repo, n), []).append(c)
                issue["comments"] += 1
                return JSONResponse(c, status_code=201)
            if rest[2] == "labels":
                issue["labels"] += [
                    {"name": n_} for n_ in body["labels"] if {"name": n_} not in issue["labels"]
                ]
                return JSONResponse(issue["labels"])
        if rest == ["pulls"]:
            return JSONResponse([i for i in issues if "pull_request" in i])
        if rest == ["commits"]:
            return JSONResponse(g.commits.get(repo, []))
        files = g.files.get(repo, {})
        if rest[:2] == ["git", "trees"]:
            return JSONResponse(
                {
                    "sha": "head",
                    "truncated": False,
                    "tree": [
                        {
                            "path": p,
                            "type": "blob",
                            "sha": hashlib.sha1(t.encode()).hexdigest(),
                            "size": len(t),
                        }
                        for p, t in sorted(files.items())
                    ],
                }
            )
        if rest[0] == "contents" and "/".join(rest[1:]) in files:
            path = "/".join(rest[1:])
            return JSONResponse(
                {
                    "path": path,
                    "type": "file",
                    "encoding": "base64",
                    "content": base64.b64encode(files[path].encode()).decode(),
                }
            )
        return JSONResponse({"message": "Not Found"}, status_code=404)

    def _github_app_token(self, rec: Recorded, installation_id: int) -> Response:
        """A GitHub App asks for an installation token with a JWT signed by its private key."""
        import jwt

        app = self.github_app
        assertion = rec.headers.get("authorization", "").removeprefix("Bearer ")
        try:
            claims = jwt.decode(assertion, app["public_key"], algorithms=["RS256"]) if app else None
        except jwt.PyJWTError:
            claims = None
        if not claims or claims.get("iss") != app["app_id"] or installation_id != app["installation_id"]:
            return JSONResponse({"message": "A JSON web token could not be decoded"}, status_code=401)
        token = self.issue_token("github", expires_in=3600)
        return JSONResponse({"token": token, "expires_at": "2099-01-01T00:00:00Z"}, status_code=201)

    # --- Gmail REST v1 ---
    async def _gmail(self, request: Request) -> Response:
        rec = await self._record("gmail", request)
        if (fault := self._fault("gmail")) is not None:
            return fault
        if not self._token_ok(rec, "gmail"):
            return JSONResponse(
                {
                    "error": {
                        "code": 401,
                        "message": "Request had invalid authentication credentials.",
                        "status": "UNAUTHENTICATED",
                    }
                },
                status_code=401,
            )
        gm, parts = self.gmail, request.path_params["path"].split("/")
        body = rec.body if isinstance(rec.body, dict) else {}
        if parts == ["profile"]:
            return JSONResponse(
                {"emailAddress": gm.address, "messagesTotal": len(gm.messages), "historyId": "1"}
            )
        if parts == ["messages"]:
            hits = [m for m in gm.messages.values() if gm.matches(m, rec.query.get("q", ""))]
            hits = hits[: int(rec.query.get("maxResults", 100))]
            return JSONResponse(
                {
                    "messages": [{"id": m["id"], "threadId": m["threadId"]} for m in hits],
                    "resultSizeEstimate": len(hits),
                }
            )
        if parts == ["messages", "send"]:
            mail = email.message_from_bytes(base64.urlsafe_b64decode(body["raw"]), policy=policy.default)
            sent = {
                "to": mail["To"],
                "subject": mail["Subject"],
                "body": mail.get_content(),
                "threadId": body.get("threadId"),
            }
            gm.sent.append(sent)
            return JSONResponse(
                {
                    "id": f"s{len(gm.sent)}",
                    "threadId": body.get("threadId") or f"ts{len(gm.sent)}",
                    "labelIds": ["SENT"],
                }
            )
        if parts[0] == "messages" and len(parts) >= 2:
            m = gm.messages.get(parts[1])
            if m is None:
                return JSONResponse(
                    {"error": {"code": 404, "message": "Requested entity was not found."}}, status_code=404
                )
            if len(parts) == 3 and parts[2] == "modify":
                m["labelIds"] = [
                    *m["labelIds"],
                    *[x for x in body.get("addLabelIds", []) if x not in m["labelIds"]],
                ]
                return JSONResponse({"id": m["id"], "threadId": m["threadId"], "labelIds": m["labelIds"]})
            return JSONResponse(gm.resource(m, rec.query.get("format", "full")))
        if parts[0] == "threads" and len(parts) == 2:
            msgs = [gm.resource(m, "full") for m in gm.messages.values() if m["threadId"] == parts[1]]
            if not msgs:
                return JSONResponse(
                    {"error": {"code": 404, "message": "Requested entity was not found."}}, status_code=404
                )
            return JSONResponse({"id": parts[1], "messages": msgs})
        if parts == ["labels"] and request.method == "GET":
            return JSONResponse({"labels": gm.labels})
        if parts == ["labels"]:
            label = {"id": f"Label_{len(gm.labels)}", "name": body["name"]}
            gm.labels.append(label)
            return JSONResponse(label)
        return JSONResponse({"error": {"code": 404, "message": "Not found"}}, status_code=404)

    # --- a plain JSON API (for the http_api source type) ---
    async def _plain_api(self, request: Request) -> Response:
        rec = await self._record("api", request)
        if (fault := self._fault("api")) is not None:
            return fault
        if request.url.path.endswith("/echo-key"):  # a service that quotes part of a bad credential back
            key = rec.headers.get("authorization", "").removeprefix("Bearer ")
            if rec.query.get("as") == "text":  # as JSON inside a text body: the key JSON-escaped
                return PlainTextResponse(
                    "upstream said: " + json.dumps({"detail": f"Invalid API key: {key}"}), status_code=403
                )
            return JSONResponse({"error": f"Invalid API key: {key}"}, status_code=403)
        return JSONResponse(
            {
                "path": request.url.path,
                "method": request.method,
                "query": rec.query,
                "json": rec.body,
                "auth": rec.headers.get("x-api-key"),
            }
        )

    async def _redirect(self, request: Request) -> Response:
        await self._record("redirect", request)
        return RedirectResponse(request.query_params.get("to", "/"), status_code=302)

    # --- OAuth2 ---
    async def _authorize(self, request: Request) -> Response:
        """The person signs in and clicks Allow: redirect back with a code bound to this request."""
        rec = await self._record("oauth", request)
        q = rec.query
        provider = request.path_params["provider"]
        if q.get("client_id") != CLIENTS[provider][0]:
            return PlainTextResponse("unknown client", status_code=400)
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = {
                "provider": provider,
                "redirect_uri": q["redirect_uri"],
                "challenge": q.get("code_challenge", ""),
                "method": q.get("code_challenge_method", ""),
            }
        return RedirectResponse(
            f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q.get('state', '')})}", status_code=302
        )

    def _check_code(self, provider: str, form: dict[str, str], rec: Recorded) -> str | None:
        if (form.get("client_id"), form.get("client_secret")) != CLIENTS[provider]:
            return "invalid_client"
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant["provider"] != provider:
            return "invalid_grant"
        if grant["redirect_uri"] != form.get("redirect_uri"):
            return "redirect_uri_mismatch"
        if grant["challenge"]:
            verifier = form.get("code_verifier", "")
            digest = (
                base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            )
            if grant["method"] != "S256" or digest != grant["challenge"]:
                return "invalid_grant"
        return None

    async def _userinfo(self, request: Request) -> Response:
        """OpenID-style user info for a Google access token: who signed in (`saas.signed_in_email`)."""
        rec = await self._record("oauth", request)
        if not self._token_ok(rec, "gmail"):
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"email": self.signed_in_email, "name": self.signed_in_email.split("@")[0]})

    async def _token(self, request: Request) -> Response:
        rec = await self._record("oauth", request)
        provider = request.path_params["provider"]
        form = rec.body if isinstance(rec.body, dict) else {}
        if (fault := self._fault("oauth")) is not None:
            return fault
        service = {"google": "gmail", "github": "github"}[provider]
        if form.get("grant_type") == "refresh_token":
            if (form.get("client_id"), form.get("client_secret")) != CLIENTS[provider]:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            if (
                self.refuse_refresh
                or form.get("refresh_token") not in self._refresh
                or form.get("refresh_token") in self.revoked
            ):
                return JSONResponse(
                    {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
                    status_code=400,
                )
            return JSONResponse(
                {
                    "access_token": self.issue_token(service, self.google_expires_in),
                    "expires_in": self.google_expires_in,
                    "token_type": "Bearer",
                    "scope": "https://www.googleapis.com/auth/gmail.modify",
                }
            )
        error = self._check_code(provider, form, rec)
        if error:
            # Google answers 400; GitHub answers 200 with an error field
            return JSONResponse({"error": error}, status_code=400 if provider == "google" else 200)
        body: dict[str, Any] = {
            "access_token": self.issue_token(
                service, self.google_expires_in if provider == "google" else None
            ),
            "token_type": "Bearer",
        }
        if provider == "google":
            refresh = "1//fake-refresh-" + secrets.token_hex(12)
            self._refresh[refresh] = "google"
            body.update(
                expires_in=self.google_expires_in,
                refresh_token=refresh,
                scope="https://www.googleapis.com/auth/gmail.modify",
            )
        else:
            body["scope"] = "repo"
        return JSONResponse(body)

    async def _google_revoke(self, request: Request) -> Response:
        rec = await self._record("oauth", request)
        token = (rec.body or {}).get("token", "")
        if token not in self._refresh and token not in self._tokens:
            return JSONResponse({"error": "invalid_token"}, status_code=400)
        self.revoke(token)
        return Response(status_code=200)
