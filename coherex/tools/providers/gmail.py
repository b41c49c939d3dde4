"""Gmail: REST v1 over httpx, with OAuth2 credentials (refreshed before expiry by the service layer).

Fake server for tests: coherex/testing/fake_gmail.py."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from typing import Any

import httpx

from coherex.integrations.base import Call, Check, Model, ServiceError, SourceType, http_client, json_of, send
from coherex.integrations.oauth import OAuthToken, provider, revoke_google, token_from_response
from coherex.spec.catalogue import ToolInfo
from coherex.tools.port import EventHooks, Provider, action
from coherex.tools.schema import integer, obj, params, string, strings

SERVICE = "Gmail"
_USER = "/gmail/v1/users/me"


class GmailConfig(Model):
    pass


def _client(call: Call) -> httpx.AsyncClient:
    return http_client(
        call.settings.gmail_api_url,
        {"Authorization": f"Bearer {call.credentials.access_token.get_secret_value()}"},
    )


async def _api(call: Call, method: str, path: str, **kwargs: Any) -> Any:
    async with _client(call) as c:
        return json_of(await send(c, SERVICE, method, _USER + path, **kwargs), SERVICE)


def _headers(payload: dict[str, Any]) -> dict[str, str]:
    return {h.get("name", "").lower(): h.get("value", "") for h in payload.get("headers", [])}


def _plain_text(payload: dict[str, Any]) -> str:
    """The text/plain body (first such part, depth first); HTML-only mail gives its raw HTML."""
    parts = [payload]
    html = ""
    while parts:
        part = parts.pop(0)
        data = (part.get("body") or {}).get("data")
        mime = part.get("mimeType", "")
        if data and mime == "text/plain":
            return _b64(data)
        if data and mime == "text/html" and not html:
            html = _b64(data)
        parts[0:0] = part.get("parts", [])
    return html


def _b64(data: str) -> str:
    try:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode("utf-8", "replace")
    except ValueError:
        raise ServiceError("Gmail sent a message body that is not valid base64.") from None


def _message(m: dict[str, Any], *, body: bool) -> dict[str, Any]:
    h = _headers(m.get("payload") or {})
    out = {
        "id": m.get("id"),
        "thread_id": m.get("threadId"),
        "from": h.get("from", ""),
        "to": h.get("to", ""),
        "subject": h.get("subject", ""),
        "date": h.get("date", ""),
        "snippet": m.get("snippet", ""),
        "labels": m.get("labelIds", []),
    }
    if body:
        out["body"] = _plain_text(m.get("payload") or {})
    return out


_MSG = obj(
    id={"type": "string"},
    thread_id={"type": "string"},
    **{"from": {"type": "string"}},
    subject={"type": "string"},
    date={"type": "string"},
    snippet={"type": "string"},
)


@action(
    ToolInfo(
        "gmail.search_messages",
        "gmail",
        "Search the mailbox with Gmail query syntax (e.g. 'is:unread newer_than:1d'); returns "
        "message ids, senders, subjects and snippets.",
        needs_data_source=True,
        parameters=params(
            {"query": string("Gmail search query"), "max_results": integer("maximum messages", 1, 500)},
            ["query"],
        ),
    ),
    obj(messages={"type": "array", "items": _MSG}, total_estimate={"type": "integer"}),
)
async def search_messages(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    found = await _api(
        call, "GET", "/messages", params={"q": args["query"], "maxResults": args.get("max_results", 20)}
    )
    messages = []
    for ref in found.get("messages", []):
        m = await _api(
            call,
            "GET",
            f"/messages/{ref['id']}",
            params=[
                ("format", "metadata"),
                ("metadataHeaders", "From"),
                ("metadataHeaders", "To"),
                ("metadataHeaders", "Subject"),
                ("metadataHeaders", "Date"),
            ],
        )
        messages.append(_message(m, body=False))
    return {"messages": messages, "total_estimate": found.get("resultSizeEstimate", len(messages))}


@action(
    ToolInfo(
        "gmail.read_message",
        "gmail",
        "Read one message: headers and plain-text body.",
        needs_data_source=True,
        parameters=params({"message_id": string("id from gmail.search_messages")}, ["message_id"]),
    ),
    {**_MSG, "properties": {**_MSG["properties"], "body": {"type": "string"}}},
)
async def read_message(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    return _message(
        await _api(call, "GET", f"/messages/{args['message_id']}", params={"format": "full"}), body=True
    )


@action(
    ToolInfo(
        "gmail.read_thread",
        "gmail",
        "Read a whole conversation: every message's headers and plain-text body.",
        needs_data_source=True,
        parameters=params({"thread_id": string("thread id from a message")}, ["thread_id"]),
    ),
    obj(thread_id={"type": "string"}, messages={"type": "array", "items": _MSG}),
)
async def read_thread(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    t = await _api(call, "GET", f"/threads/{args['thread_id']}", params={"format": "full"})
    return {"thread_id": t.get("id"), "messages": [_message(m, body=True) for m in t.get("messages", [])]}


@action(
    ToolInfo(
        "gmail.send_message",
        "gmail",
        "Send an email from the connected mailbox.",
        access="write",
        needs_data_source=True,
        parameters=params(
            {
                "to": strings("recipient addresses"),
                "subject": string("subject line"),
                "body": string("plain-text body"),
                "cc": strings("cc addresses"),
                "thread_id": string("reply inside this thread"),
            },
            ["to", "subject", "body"],
        ),
    ),
    obj(id={"type": "string"}, thread_id={"type": "string"}),
)
async def send_message(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    mail = EmailMessage()
    mail["To"] = ", ".join(args["to"])
    if args.get("cc"):
        mail["Cc"] = ", ".join(args["cc"])
    mail["Subject"] = args["subject"]
    mail.set_content(args["body"])
    body: dict[str, Any] = {"raw": base64.urlsafe_b64encode(mail.as_bytes()).decode()}
    if args.get("thread_id"):
        body["threadId"] = args["thread_id"]
    sent = await _api(call, "POST", "/messages/send", json=body)
    return {"id": sent.get("id"), "thread_id": sent.get("threadId")}


_DRAFT_HEADERS = [("format", "metadata")] + [
    ("metadataHeaders", h) for h in ("From", "Reply-To", "Subject", "Message-ID", "References")
]


@action(
    ToolInfo(
        "gmail.create_draft",
        "gmail",
        "Write a draft reply in a conversation, for a person to review and send (it is not sent). "
        "By default it answers the sender of the thread's last message, with its subject.",
        access="write",
        needs_data_source=True,
        parameters=params(
            {
                "thread_id": string("the conversation to reply in (thread id from a message)"),
                "body": string("plain-text body of the reply"),
                "to": strings("recipient addresses (default: the sender of the last message)"),
                "cc": strings("cc addresses"),
                "subject": string("subject line (default: Re: the thread's subject)"),
            },
            ["thread_id", "body"],
        ),
    ),
    obj(draft_id={"type": "string"}, message_id={"type": "string"}, thread_id={"type": "string"}),
)
async def create_draft(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    thread = await _api(call, "GET", f"/threads/{args['thread_id']}", params=_DRAFT_HEADERS)
    messages = thread.get("messages") or []
    if not messages:
        raise ServiceError(f"Gmail has no messages in thread {args['thread_id']!r}.")
    last = _headers(messages[-1].get("payload") or {})
    to = args.get("to") or [last.get("reply-to") or last.get("from", "")]
    if not any(to):
        raise ServiceError("The thread's last message has no sender to reply to; give `to`.")
    subject = args.get("subject") or last.get("subject", "")
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}".strip()
    mail = EmailMessage()
    mail["To"] = ", ".join(to)
    if args.get("cc"):
        mail["Cc"] = ", ".join(args["cc"])
    mail["Subject"] = subject
    if last.get("message-id"):  # threads the reply in the recipient's mail program too
        mail["In-Reply-To"] = last["message-id"]
        mail["References"] = f"{last.get('references', '')} {last['message-id']}".strip()
    mail.set_content(args["body"])
    raw = base64.urlsafe_b64encode(mail.as_bytes()).decode()
    draft = await _api(call, "POST", "/drafts", json={"message": {"raw": raw, "threadId": args["thread_id"]}})
    message = draft.get("message") or {}
    return {
        "draft_id": draft.get("id"),
        "message_id": message.get("id"),
        "thread_id": message.get("threadId") or args["thread_id"],
        "to": to,
        "subject": subject,
        "sent": False,
    }


@action(
    ToolInfo(
        "gmail.add_label",
        "gmail",
        "Add a label to a message (creating the label if needed).",
        access="write",
        needs_data_source=True,
        parameters=params(
            {"message_id": string("message id"), "label": string("label name")}, ["message_id", "label"]
        ),
    ),
    obj(id={"type": "string"}, labels={"type": "array", "items": {"type": "string"}}),
)
async def add_label(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    labels = (await _api(call, "GET", "/labels")).get("labels", [])
    match = next((lb for lb in labels if lb.get("name", "").lower() == args["label"].lower()), None)
    if match is None:
        match = await _api(
            call,
            "POST",
            "/labels",
            json={"name": args["label"], "labelListVisibility": "labelShow", "messageListVisibility": "show"},
        )
    m = await _api(
        call, "POST", f"/messages/{args['message_id']}/modify", json={"addLabelIds": [match["id"]]}
    )
    return {"id": m.get("id"), "labels": m.get("labelIds", [])}


async def test_connection(call: Call) -> Check:
    profile = await _api(call, "GET", "/profile")
    scopes = call.credentials.scope or "unknown scopes"
    return Check(
        True,
        f"Connected to Gmail as {profile.get('emailAddress')} ({profile.get('messagesTotal', '?')} "
        f"messages); granted: {scopes}.",
        {"email": profile.get("emailAddress"), "scope": scopes},
    )


async def revoke(call: Call) -> None:
    await revoke_google(provider("google"), call.credentials)


GMAIL = SourceType(
    name="gmail",
    title="Gmail (Google sign-in)",
    config_model=GmailConfig,
    credentials_model=OAuthToken,
    test_connection=test_connection,
    revoke=revoke,
    connect="oauth",
    oauth_provider="google",
    credentials_from_oauth=token_from_response,
    rate_per_second=10.0,
    rate_burst=20,  # Gmail: 250 quota units/s per user; a read costs 5
)

PROVIDER = Provider(
    "gmail",
    (search_messages, read_message, read_thread, send_message, create_draft, add_label),
    source_type=GMAIL,
    # new mail is found by polling (the trigger's schedule), not a webhook
    events=EventHooks(("gmail.message_received",)),
)
