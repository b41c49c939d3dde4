"""Incoming events from connected services (Slack Events API, GitHub webhooks), verified with the
source's own signing secret by its tool provider's `events` hook and named with its event types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from coherex.errors import PermissionDenied
from coherex.integrations.service import open_source
from coherex.store.db import Database, Identity
from coherex.store.models import DataSource


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
    from coherex.tools.registry import provider_for_source_type

    async with db.session(Identity.system()) as s:
        source = await s.sources.get(source_id)
    provider = provider_for_source_type(source.type) if source is not None else None
    if source is None or provider is None or provider.events is None or provider.events.verify is None:
        raise PermissionDenied("No event receiver is enabled at this address.")
    creds = (await open_source(db, source, fresh=False)).call.credentials
    lower = {k.lower(): v for k, v in headers.items()}
    event = provider.events.verify(creds, lower, body)
    return IncomingEvent(source, event.type, event.data, event.delivery_id, event.reply)
