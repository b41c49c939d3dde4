"""The fake Gmail REST v1 API (beside coherex/tools/providers/gmail.py): messages, threads, labels,
sent mail and drafts in `GmailState`. Served by `FakeSaaS` under /gmail/."""

from __future__ import annotations

import base64
import email
from dataclasses import dataclass, field
from email import policy
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from coherex.testing.fake_saas import FakeSaaS


@dataclass
class GmailState:
    address: str = "me@example.com"
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels: list[dict[str, str]] = field(
        default_factory=lambda: [{"id": "INBOX", "name": "INBOX"}, {"id": "UNREAD", "name": "UNREAD"}]
    )
    sent: list[dict[str, Any]] = field(default_factory=list)
    #: drafts saved (never sent): to, subject, body, threadId, in_reply_to
    drafts: list[dict[str, Any]] = field(default_factory=list)

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
            {"name": "Message-ID", "value": f"<{m['id']}@mail.example>"},
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


async def _gmail(saas, request: Request) -> Response:
    rec = await saas._record("gmail", request)
    if (fault := saas._fault("gmail")) is not None:
        return fault
    if not saas._token_ok(rec, "gmail"):
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
    gm, parts = saas.gmail, request.path_params["path"].split("/")
    body = rec.body if isinstance(rec.body, dict) else {}
    if parts == ["profile"]:
        return JSONResponse({"emailAddress": gm.address, "messagesTotal": len(gm.messages), "historyId": "1"})
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
    if parts == ["drafts"] and request.method == "POST":
        message = body.get("message") or {}
        mail = email.message_from_bytes(base64.urlsafe_b64decode(message["raw"]), policy=policy.default)
        thread_id = message.get("threadId")
        if thread_id and not any(m["threadId"] == thread_id for m in gm.messages.values()):
            return JSONResponse({"error": {"code": 404, "message": "Thread not found."}}, status_code=404)
        draft = {
            "id": f"r{len(gm.drafts) + 1}",
            "to": mail["To"],
            "subject": mail["Subject"],
            "body": mail.get_content(),
            "threadId": thread_id,
            "in_reply_to": mail["In-Reply-To"],
        }
        gm.drafts.append(draft)
        return JSONResponse(
            {
                "id": draft["id"],
                "message": {"id": f"d{len(gm.drafts)}", "threadId": thread_id, "labelIds": ["DRAFT"]},
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


def routes(saas: FakeSaaS) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        return await _gmail(saas, request)

    return [Route("/gmail/gmail/v1/users/me/{path:path}", endpoint, methods=["GET", "POST"])]


def env(url: str) -> dict[str, str]:
    return {
        "COHEREX_GMAIL_API_URL": f"{url}/gmail",
        "COHEREX_GOOGLE_AUTH_URL": f"{url}/oauth/google/authorize",
        "COHEREX_GOOGLE_TOKEN_URL": f"{url}/oauth/google/token",
        "COHEREX_GOOGLE_REVOKE_URL": f"{url}/oauth/google/revoke",
    }
