"""Incoming events from connected services (Slack Events API, GitHub webhooks), verified with the
source's own signing secret and named with the event types of the tool catalogue."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from coherex.errors import PermissionDenied, UserError
from coherex.integrations.github import verify_github_webhook
from coherex.integrations.service import _open
from coherex.integrations.slack import verify_slack_event
from coherex.store.db import Database, Identity
from coherex.store.models import DataSource

_GITHUB_TYPES = {
    ("issues", "opened"): "github.issue_opened",
    ("issue_comment", "created"): "github.issue_comment",
    ("pull_request", "opened"): "github.pull_request_opened",
}


@dataclass(frozen=True)
class IncomingEvent:
    source: DataSource
    type: str | None  # None: a well-signed event no trigger can subscribe to (ignored)
    data: dict[str, Any]
    delivery_id: str
    reply: dict[str, Any] | None = None  # an answer the service expects (Slack's url_verification)


async def verify_event(
    db: Database, source_id: UUID, headers: Mapping[str, str], body: bytes
) -> IncomingEvent:
    """Check the signature with the source's secret and name the event. PermissionDenied if unsigned."""
    async with db.session(Identity.system()) as s:
        source = await s.sources.get(source_id)
    if source is None or source.type not in ("slack", "github"):
        raise PermissionDenied("No event receiver is enabled at this address.")
    creds = (await _open(db, source, fresh=False)).call.credentials
    lower = {k.lower(): v for k, v in headers.items()}
    if source.type == "slack":
        if creds.signing_secret is None:
            raise PermissionDenied("This Slack source has no signing secret, so it cannot receive events.")
        payload = verify_slack_event(creds.signing_secret.get_secret_value(), lower, body)
        if payload.get("type") == "url_verification":
            return IncomingEvent(source, None, {}, "", reply={"challenge": payload.get("challenge", "")})
        event = payload.get("event") or {}
        kind = {"message": "slack.message", "app_mention": "slack.app_mention"}.get(event.get("type"))
        return IncomingEvent(source, kind, event, str(payload.get("event_id") or event.get("ts", "")))
    if creds.webhook_secret is None:
        raise PermissionDenied("This GitHub source has no webhook secret, so it cannot receive webhooks.")
    verify_github_webhook(creds.webhook_secret.get_secret_value(), lower, body)
    try:
        payload = json.loads(body)
    except ValueError:
        raise UserError("The GitHub webhook body is not JSON.") from None
    kind = _GITHUB_TYPES.get((lower.get("x-github-event", ""), payload.get("action")))
    return IncomingEvent(source, kind, payload, lower.get("x-github-delivery", ""))
