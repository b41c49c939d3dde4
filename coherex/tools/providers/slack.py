"""Slack through the official `slack_sdk` (AsyncWebClient, base URL from settings). The SDK and
aiohttp are imported inside the functions that use them: `coherex validate` never loads them.
Fake server for tests: coherex/testing/fake_slack.py.

The SDK's own retry handlers are switched off (`retry_handlers=[]`): retries and 429 backoff
happen in `base.call_service`, the one place for all integrations. The SDK gets a logger of its
own held at INFO, because at DEBUG it logs request headers, bot token included.
"""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field, SecretStr

from coherex.errors import PermissionDenied, UserError
from coherex.integrations.base import Call, Check, Model, ServiceError, SourceType, retry_after_seconds
from coherex.spec.catalogue import ToolInfo
from coherex.tools.port import EventHooks, Provider, Verified, action
from coherex.tools.schema import integer, obj, params, string

if TYPE_CHECKING:
    import aiohttp
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

SERVICE = "Slack"
_sdk_log = logging.getLogger("coherex.tools.providers.slack.sdk")
_sdk_log.setLevel(logging.INFO)

_AUTH_ERRORS = {
    "invalid_auth",
    "not_authed",
    "token_revoked",
    "token_expired",
    "account_inactive",
    "missing_scope",
    "no_permission",
    "ekm_access_denied",
}
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")


class SlackConfig(Model):
    pass


class SlackCredentials(Model):
    bot_token: SecretStr
    #: the app's signing secret, needed only to receive Events API webhooks
    signing_secret: SecretStr | None = None
    #: obtained through `sources connect` (OAuth): revoked at the provider when the source is removed
    from_oauth: bool = Field(False, json_schema_extra={"x-internal": True})  # set by the sign-in flow


def client(call: Call, session: aiohttp.ClientSession) -> AsyncWebClient:
    from slack_sdk.web.async_client import AsyncWebClient

    return AsyncWebClient(
        token=call.credentials.bot_token.get_secret_value(),
        base_url=call.settings.slack_api_url,
        timeout=int(call.settings.integration_timeout),
        logger=_sdk_log,
        retry_handlers=[],
        session=session,
    )


async def api(call: Call, method: str, **params: Any) -> dict[str, Any]:
    """Call one Web API method; every SDK failure becomes a `ServiceError`."""
    import aiohttp
    from slack_sdk.errors import SlackApiError, SlackClientError

    from coherex import egress

    try:
        # the session's connector resolves through the egress guard (coherex/egress.py)
        async with aiohttp.ClientSession(connector=egress.aiohttp_connector()) as session:
            response = await client(call, session).api_call(
                method, data={k: _form(v) for k, v in params.items() if v is not None}
            )
        return dict(response.validate().data)
    except egress.EgressDenied as exc:
        raise ServiceError(exc.message) from None
    except SlackApiError as exc:
        raise _service_error(method, exc) from None
    except SlackClientError as exc:
        raise ServiceError(f"Slack client error in {method}: {type(exc).__name__}.") from None
    except (OSError, TimeoutError) as exc:
        raise ServiceError(f"Cannot reach Slack ({type(exc).__name__}).", retryable=True) from None


def _form(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _service_error(method: str, exc: SlackApiError) -> ServiceError:
    response = exc.response
    status = getattr(response, "status_code", None)
    data = getattr(response, "data", None)
    code = data.get("error") if isinstance(data, dict) else None
    if status == 429 or code == "ratelimited":
        return ServiceError(
            "Slack is rate limiting these requests.",
            status=429,
            retry_after=retry_after_seconds(getattr(response, "headers", None)),
        )
    if code in _AUTH_ERRORS:
        needed = data.get("needed") if isinstance(data, dict) else None
        extra = f" (needs scope {needed})" if needed else ""
        return ServiceError(
            f"Slack refused the bot token: {code}{extra}.", status=status, auth=code != "missing_scope"
        )
    if status is not None and status >= 500:
        return ServiceError(
            f"Slack had an internal error (HTTP {status}) in {method}.", status=status, retryable=True
        )
    if code:
        return ServiceError(f"Slack answered {method} with error {code!r}.", status=status)
    if not isinstance(data, dict) or not data:  # the SDK found no JSON body (an HTML error page, ...)
        return ServiceError(
            f"Slack answered {method} with something that is not a Slack API response.",
            status=status,
            retryable=True,
        )
    return ServiceError(f"Slack refused {method} (HTTP {status}).", status=status)


async def channel_id(call: Call, channel: str) -> str:
    """Accept `#general`, `general` or an id; reading history needs the id."""
    if _CHANNEL_ID.match(channel):
        return channel
    name = channel.lstrip("#")
    cursor = None
    while True:
        page = await api(
            call,
            "conversations.list",
            limit=200,
            cursor=cursor,
            exclude_archived=True,
            types="public_channel,private_channel",
        )
        for ch in page.get("channels", []):
            if ch.get("name") == name:
                return ch["id"]
        cursor = (page.get("response_metadata") or {}).get("next_cursor")
        if not cursor:
            raise ServiceError(
                f"Slack has no channel {channel!r} that the bot can see (invite the bot to it)."
            )


def _message(m: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "ts": m.get("ts"),
        "user": m.get("user") or m.get("bot_id"),
        "text": m.get("text", ""),
        "thread_ts": m.get("thread_ts"),
        "reply_count": m.get("reply_count", 0),
    }


_MESSAGES = obj(
    channel={"type": "string"},
    messages={
        "type": "array",
        "items": obj(
            ts={"type": "string"},
            user={"type": "string"},
            text={"type": "string"},
            thread_ts={"type": "string"},
        ),
    },
)
_POSTED = obj(channel={"type": "string"}, ts={"type": "string"})


@action(
    ToolInfo(
        "slack.read_channel",
        "slack",
        "Read recent messages of a channel, newest first.",
        needs_data_source=True,
        parameters=params(
            {
                "channel": string("channel name (#general) or id"),
                "limit": integer("maximum messages", 1, 1000),
                "oldest": string("only messages after this Slack timestamp"),
            },
            ["channel"],
        ),
    ),
    _MESSAGES,
)
async def read_channel(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    cid = await channel_id(call, args["channel"])
    data = await api(
        call, "conversations.history", channel=cid, limit=args.get("limit", 50), oldest=args.get("oldest")
    )
    return {"channel": cid, "messages": [_message(m) for m in data.get("messages", [])]}


@action(
    ToolInfo(
        "slack.post_message",
        "slack",
        "Post a message to a channel.",
        access="write",
        needs_data_source=True,
        parameters=params(
            {"channel": string("channel name or id"), "text": string("message, Slack mrkdwn")},
            ["channel", "text"],
        ),
    ),
    _POSTED,
)
async def post_message(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    data = await api(call, "chat.postMessage", channel=args["channel"], text=args["text"])
    return {"channel": data.get("channel"), "ts": data.get("ts")}


@action(
    ToolInfo(
        "slack.reply_in_thread",
        "slack",
        "Reply in the thread of a message.",
        access="write",
        needs_data_source=True,
        parameters=params(
            {
                "channel": string("channel name or id"),
                "thread_ts": string("timestamp of the parent message"),
                "text": string("reply, Slack mrkdwn"),
            },
            ["channel", "thread_ts", "text"],
        ),
    ),
    _POSTED,
)
async def reply_in_thread(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    data = await api(
        call, "chat.postMessage", channel=args["channel"], text=args["text"], thread_ts=args["thread_ts"]
    )
    return {"channel": data.get("channel"), "ts": data.get("ts")}


@action(
    ToolInfo(
        "slack.list_channels",
        "slack",
        "List the channels the connected workspace can see.",
        needs_data_source=True,
        parameters=params({"limit": integer("maximum channels", 1, 1000)}),
    ),
    obj(
        channels={
            "type": "array",
            "items": obj(
                id={"type": "string"},
                name={"type": "string"},
                is_private={"type": "boolean"},
                num_members={"type": "integer"},
            ),
        }
    ),
)
async def list_channels(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    data = await api(
        call,
        "conversations.list",
        limit=args.get("limit", 200),
        exclude_archived=True,
        types="public_channel,private_channel",
    )
    return {
        "channels": [
            {
                "id": c.get("id"),
                "name": c.get("name"),
                "is_private": c.get("is_private", False),
                "num_members": c.get("num_members"),
            }
            for c in data.get("channels", [])
        ]
    }


async def test_connection(call: Call) -> Check:
    data = await api(call, "auth.test")
    who = f"bot {data.get('user')!r} in workspace {data.get('team')!r}"
    return Check(
        True,
        f"Connected to Slack as {who}.",
        {"team": data.get("team"), "user": data.get("user"), "url": data.get("url")},
    )


async def revoke(call: Call) -> None:
    # a pasted token may serve other tools too: only revoke what our OAuth flow created
    if call.credentials.from_oauth:
        await api(call, "auth.revoke")


# ---------------------------------------------------------------- Events API receiver


def verify_slack_event(signing_secret: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """Check an Events API request (signature with the signing secret, timestamp within 5 minutes
    against replays) and return its JSON payload. Answer `{"challenge": ...}` for `url_verification`.

    Raises PermissionDenied for a request Slack did not sign."""
    from slack_sdk.signature import SignatureVerifier

    lower = {k.lower(): v for k, v in headers.items()}
    timestamp = lower.get("x-slack-request-timestamp", "")
    signature = lower.get("x-slack-signature", "")
    if not timestamp.isdigit() or not SignatureVerifier(signing_secret).is_valid(body, timestamp, signature):
        raise PermissionDenied("This Slack event is not signed with the app's signing secret, or is too old.")
    try:
        payload = json.loads(body)
    except ValueError:
        raise PermissionDenied("This Slack event has no JSON body.") from None
    if not isinstance(payload, dict):
        raise PermissionDenied("This Slack event has no JSON object body.")
    return payload


async def channel_history(call: Call, channel: str, limit: int = 1000) -> tuple[str, list[dict[str, Any]]]:
    """(channel id, messages oldest first) for knowledge sync; not an agent tool."""
    cid = await channel_id(call, channel)
    data = await api(call, "conversations.history", channel=cid, limit=min(limit, 1000))
    return cid, [_message(m) for m in reversed(data.get("messages", []))]


def verify(credentials: SlackCredentials, headers: Mapping[str, str], body: bytes) -> Verified:
    """An Events API request of this source's app, named with the catalogue's event types."""
    if credentials.signing_secret is None:
        raise PermissionDenied("This Slack source has no signing secret, so it cannot receive events.")
    payload = verify_slack_event(credentials.signing_secret.get_secret_value(), headers, body)
    if payload.get("type") == "url_verification":
        return Verified(None, {}, "", reply={"challenge": payload.get("challenge", "")})
    event = payload.get("event") or {}
    kind = _EVENT_TYPES.get(event.get("type"))
    return Verified(kind, event, str(payload.get("event_id") or event.get("ts", "")))


_EVENT_TYPES = {"message": "slack.message", "app_mention": "slack.app_mention"}


async def sync(call: Call, options: dict[str, Any]) -> tuple[str, list[Any]]:
    """A channel's history as knowledge documents: one per day."""
    from coherex.knowledge import SourceDocument

    channel = options.get("channel")
    if not channel:
        raise UserError("Syncing a Slack source needs the channel (name or id).")
    cid, messages = await channel_history(call, channel)
    days: dict[str, list[str]] = defaultdict(list)
    for m in messages:
        day = datetime.fromtimestamp(float(m["ts"] or 0), UTC).date().isoformat()
        days[day].append(f"{m['user'] or 'someone'}: {m['text']}")
    docs = [
        SourceDocument(
            f"slack:{cid}/{day}",
            f"#{channel.lstrip('#')} {day}",
            "\n\n".join(lines),
            {"channel": cid, "day": day},
            kind="text",
        )
        for day, lines in sorted(days.items())
    ]
    return f"slack:{cid}/", docs


SLACK = SourceType(
    name="slack",
    title="Slack (bot token)",
    config_model=SlackConfig,
    credentials_model=SlackCredentials,
    test_connection=test_connection,
    revoke=revoke,
    connect="secret",
    oauth_provider="slack",
    # Slack's tier-3 methods allow ~50/min; chat.postMessage about 1/s per channel
    rate_per_second=1.0,
    rate_burst=5,
    credentials_from_oauth=lambda b: SlackCredentials(
        bot_token=SecretStr(b["access_token"]), from_oauth=True
    ),
)


PROVIDER = Provider(
    "slack",
    (read_channel, post_message, reply_in_thread, list_channels),
    source_type=SLACK,
    # an event run gets the Events API's `event` object: its fields fill inputs of the same name
    events=EventHooks(
        tuple(_EVENT_TYPES.values()),
        verify,
        dict.fromkeys(_EVENT_TYPES.values(), ("type", "channel", "user", "text", "ts", "thread_ts")),
    ),
    sync=sync,
)
