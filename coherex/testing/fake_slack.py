"""The fake Slack Web API (beside coherex/tools/providers/slack.py): channels and messages in
`SlackState`, `oauth.v2.access` for the sign-in flow. Served by `FakeSaaS` under /slack/api/."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from coherex.testing.fake_saas import FakeSaaS, Recorded

from coherex.testing.fake_oauth import check_code


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


async def _slack(saas, request: Request) -> Response:
    rec = await saas._record("slack", request)
    method = request.path_params["method"]
    args = {**rec.query, **(rec.body if isinstance(rec.body, dict) else {})}
    if method == "oauth.v2.access":
        return _slack_oauth(saas, args, rec)
    if (fault := saas._fault("slack")) is not None:
        return fault
    if not saas._token_ok(rec, "slack"):
        auth = rec.headers.get("authorization", "")
        error = "token_revoked" if auth.split(" ")[-1] in saas.revoked else "invalid_auth"
        return JSONResponse({"ok": False, "error": error})
    s = saas.slack
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
        saas.revoke(rec.headers["authorization"].split(" ")[-1])
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


def _slack_oauth(saas, args: dict[str, str], rec: Recorded) -> Response:
    error = check_code(saas, "slack", args, rec)
    if error:
        return JSONResponse({"ok": False, "error": error})
    token = saas.issue_token("slack")
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


def routes(saas: FakeSaaS) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        return await _slack(saas, request)

    return [Route("/slack/api/{method}", endpoint, methods=["GET", "POST"])]


def env(url: str) -> dict[str, str]:
    return {
        "COHEREX_SLACK_API_URL": f"{url}/slack/api/",
        "COHEREX_SLACK_AUTH_URL": f"{url}/oauth/slack/authorize",
    }
