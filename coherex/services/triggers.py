"""Triggers: cron schedules and signed webhooks that start executions.

Schedules live in `agent_schedules`, rebuilt whenever a version is saved; any number of
schedulers may run `fire_due_schedules` at once (rows are claimed with SKIP LOCKED), and a
missed window fires once, not once per missed tick.

Webhooks are signed Stripe-style: header `X-Coherex-Signature: t=<unix time>,v1=<hex HMAC-SHA256
of "<t>.<delivery id>.<body>">` with the agent's secret, and header `X-Coherex-Delivery: <delivery
id>` (required). The signature covers the delivery id, so a captured request cannot be replayed
under a new id. A request is refused when the header is not exactly `t=…,v1=…`, the signature is
wrong, the timestamp is more than 5 minutes away, or the same delivery was seen before (replay).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from croniter import croniter

from coherex.errors import PermissionDenied, UserError
from coherex.runtime.engine import QuotaExceeded, check_inputs, check_quota
from coherex.spec import AgentSpec, load_spec
from coherex.store.db import Database, Identity
from coherex.store.models import Agent, Execution
from coherex.store.repos import Session

SIGNATURE_HEADER = "x-coherex-signature"
DELIVERY_HEADER = "x-coherex-delivery"
TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 1_000_000
# exactly one scheme (no `,v0=…` appended, no repeated keys); the delivery id has no dots, so
# "<t>.<delivery>.<body>" cannot be split another way
_SIGNATURE = re.compile(r"t=(\d{1,12}),v1=([0-9a-f]{64})")
_DELIVERY = re.compile(r"[A-Za-z0-9_:-]{1,200}")


# ---------------------------------------------------------------------- schedules
def next_fire(cron: str, tz: str, after: datetime) -> datetime:
    """The first time strictly after `after` that the cron expression matches in `tz`, in UTC."""
    local = after.astimezone(ZoneInfo(tz))
    return croniter(cron, local).get_next(datetime).astimezone(UTC)


async def sync_schedules(
    session: Session, agent: Agent, spec: AgentSpec, now: datetime | None = None
) -> None:
    now = now or datetime.now(UTC)
    schedules = [
        (i, t.schedule.cron, t.schedule.timezone, next_fire(t.schedule.cron, t.schedule.timezone, now))
        for i, t in enumerate(spec.spec.triggers or [])
        if t.schedule is not None
    ]
    await session.triggers.replace_schedules(agent.id, agent.team_id, schedules)


async def fire_due_schedules(db: Database, now: datetime | None = None) -> list[Execution]:
    """Create one queued execution for every schedule due at `now`; returns them."""
    now = now or datetime.now(UTC)
    created = []
    async with db.session(Identity.system()) as s:
        for due in await s.triggers.claim_due(now):
            agent = await s.agents.get(due.agent_id)
            version = await s.agents.get_version(due.agent_id)
            try:
                await check_quota(s, due.team_id)
                inputs = check_inputs(load_spec(version.spec), {})
            except (QuotaExceeded, UserError) as exc:
                await s.audit.record(
                    due.team_id,
                    "schedule.skipped",
                    target_type="agent",
                    target_id=str(due.agent_id),
                    details={"reason": str(exc)},
                    actor_kind="system",
                )
            else:
                created.append(
                    await s.executions.create(
                        due.team_id,
                        due.agent_id,
                        agent.current_version,
                        trigger="schedule",
                        inputs=inputs,
                        queue=True,
                    )
                )
            await s.triggers.mark_fired(due, now, next_fire(due.cron, due.timezone, now))
    return created


# ---------------------------------------------------------------------- webhooks
def sign(secret: str, body: bytes, delivery_id: str, timestamp: int | None = None) -> str:
    """The `X-Coherex-Signature` value for a delivery (what a sender computes)."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{delivery_id}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def signed_headers(
    secret: str, body: bytes, delivery_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """Both headers of a webhook call (a fresh delivery id unless one is given)."""
    delivery_id = delivery_id or secrets.token_hex(16)
    return {
        "X-Coherex-Signature": sign(secret, body, delivery_id, timestamp),
        "X-Coherex-Delivery": delivery_id,
    }


def verify_signature(
    secret: str, body: bytes, header: str | None, delivery_id: str | None, now: float | None = None
) -> None:
    if not header:
        raise PermissionDenied(f"Missing {SIGNATURE_HEADER} header: webhook calls must be signed.")
    if not delivery_id or not _DELIVERY.fullmatch(delivery_id):
        raise PermissionDenied(
            f"Missing or malformed {DELIVERY_HEADER} header: every webhook call needs a "
            "delivery id of 1-200 letters, digits, '_', ':' or '-', covered by the signature."
        )
    match = _SIGNATURE.fullmatch(header.strip())
    if match is None:
        raise PermissionDenied(
            f"Malformed {SIGNATURE_HEADER} header: expected exactly t=<unix time>,v1=<64 hex digits>."
        )
    t, given = int(match[1]), match[2]
    now = time.time() if now is None else now
    if abs(now - t) > TOLERANCE_SECONDS:
        raise PermissionDenied(
            "The webhook signature's timestamp is too old or in the future (replay refused)."
        )
    expected = sign(secret, body, delivery_id, t).split("v1=", 1)[1]
    if not hmac.compare_digest(expected, given):
        raise PermissionDenied("The webhook signature does not match.")


async def webhook_secret(
    session: Session, agent: Agent, *, rotate: bool = False, api_key_id: UUID | None = None
) -> str:
    """The agent's webhook secret (created on first use, or anew with `rotate`). A new secret
    remembers `api_key_id`, the key asking: the webhook's runs count against its quotas."""
    from coherex.integrations.vault import Vault

    vault = Vault.from_settings()
    context = f"webhook:{agent.id}"
    ciphertext, _ = await session.triggers.webhook_secret(agent.id)
    if ciphertext and not rotate:
        return vault.decrypt(ciphertext, context=context, what="This webhook secret").decode()
    secret = "whsec_" + secrets.token_urlsafe(32)
    sealed, key_id = vault.encrypt(secret.encode(), context=context)
    await session.triggers.set_webhook_secret(agent.id, sealed, key_id, api_key_id)
    return secret


async def reveal_webhook_secret(
    db: Database, agent: Agent, *, rotate: bool = False, api_key_id: UUID | None = None
) -> str:
    """`webhook_secret` for an API key (the caller is checked to be an admin first): read as the
    platform, audited as the key's read or rotation."""
    async with db.session(Identity.system()) as s:
        secret = await webhook_secret(s, agent, rotate=rotate, api_key_id=api_key_id)
        await s.audit.record(
            agent.team_id,
            "webhook.secret_rotated" if rotate else "webhook.secret_read",
            target_type="agent",
            target_id=str(agent.id),
            actor_kind="api_key",
        )
    return secret


async def receive_webhook(db: Database, agent_id: UUID, body: bytes, headers: dict[str, str]) -> Execution:
    """Verify a webhook call and create the (queued) execution it asks for."""
    if len(body) > MAX_BODY_BYTES:
        raise UserError(f"Webhook body is larger than {MAX_BODY_BYTES:,} bytes.")
    async with db.session(Identity.system()) as s:
        agent = await s.agents.get(agent_id)
        ciphertext = (await s.triggers.webhook_secret(agent_id))[0] if agent else None
        if agent is None or not ciphertext:
            # one answer for "no such agent" and "no webhook": ids are not to be probed
            raise PermissionDenied("No webhook is enabled at this address.")
        delivery = headers.get(DELIVERY_HEADER)
        verify_signature(await webhook_secret(s, agent), body, headers.get(SIGNATURE_HEADER), delivery)
        if agent.status != "active":
            raise UserError(f"Agent {agent.name} is {agent.status}; its webhook starts no runs.")
        version = await s.agents.get_version(agent.id)
        spec = load_spec(version.spec)
        hooks = [t.webhook for t in spec.spec.triggers or [] if t.webhook is not None]
        if not hooks:
            raise PermissionDenied("No webhook is enabled at this address.")
        if not await s.triggers.record_delivery(agent.id, agent.team_id, delivery):
            raise PermissionDenied("This webhook delivery was already received (replay refused).")
        payload = _json_body(body)
        inputs = (
            {hooks[0].input: payload} if hooks[0].input else (payload if isinstance(payload, dict) else {})
        )
        await check_quota(s, agent.team_id)
        execution = await s.executions.create(
            agent.team_id,
            agent.id,
            agent.current_version,
            trigger="webhook",
            inputs=check_inputs(spec, inputs),
            queue=True,
            api_key_id=await s.triggers.webhook_api_key(agent.id),
        )
        await s.audit.record(
            agent.team_id,
            "webhook.received",
            target_type="execution",
            target_id=str(execution.id),
            actor_kind="system",
        )
        return execution


# ---------------------------------------------------------------------- events
async def route_event(
    db: Database, team_id: UUID, source_name: str, event_type: str, data: dict[str, Any], delivery_id: str
) -> list[Execution]:
    """One execution per active agent of the team whose current version waits for this event
    (same source, same type, every `filter` field equal). A redelivered event starts nothing new."""
    created = []
    async with db.session(Identity.system()) as s:
        for agent in await s.agents.list(team_id):
            if agent.status != "active" or not agent.current_version:
                continue
            spec = load_spec((await s.agents.get_version(agent.id)).spec)
            wanted = [
                t.event
                for t in spec.spec.triggers or []
                if t.event
                and t.event.source == source_name
                and t.event.type == event_type
                and all(data.get(k) == v for k, v in (t.event.filter or {}).items())
            ]
            if not wanted:
                continue
            if delivery_id and not await s.triggers.record_delivery(
                agent.id, team_id, f"event:{delivery_id}"[:200]
            ):
                continue
            declared = spec.spec.inputs or {}
            inputs = (
                {"event": data} if "event" in declared else {k: v for k, v in data.items() if k in declared}
            )
            try:
                await check_quota(s, team_id)
                inputs = check_inputs(spec, inputs)
            except (QuotaExceeded, UserError) as exc:
                await s.audit.record(
                    team_id,
                    "event.skipped",
                    target_type="agent",
                    target_id=str(agent.id),
                    details={"reason": str(exc), "event": event_type},
                    actor_kind="system",
                )
                continue
            created.append(
                await s.executions.create(
                    team_id, agent.id, agent.current_version, trigger="event", inputs=inputs, queue=True
                )
            )
    return created


def _json_body(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UserError("The webhook body is not valid JSON.") from None
