"""Recording the steps of a run: one `execution_events` row per step, written as it happens
(the database NOTIFYs followers), secrets redacted, and handed to in-process listeners (the chat,
`coherex run`) at the same moment."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from coherex.integrations.vault import known_secrets, redact
from coherex.store.db import Database, Identity
from coherex.store.models import Event, Execution

if TYPE_CHECKING:
    from coherex.store.repos import Session

log = logging.getLogger(__name__)

#: called with each stored event; the chat and the CLI render steps from these
EventListener = Callable[[Event], Awaitable[None] | None]

_MAX_TEXT = 20_000  # characters of one payload string kept in an event (outputs can be huge)


def _truncate(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_TEXT:
        return value[:_MAX_TEXT] + f"… [{len(value) - _MAX_TEXT} more characters]"
    if isinstance(value, dict):  # a result's images are stored whole (capped where they are made)
        return {k: x if k == "images" else _truncate(x) for k, x in value.items()}
    if isinstance(value, list):
        return [_truncate(x) for x in value]
    return value


@dataclass
class EventRecorder:
    db: Database
    execution: Execution
    secrets: list[str] = field(default_factory=list)
    listeners: list[EventListener] = field(default_factory=list)

    async def record(
        self,
        type: str,
        *,
        name: str = "",
        payload: dict[str, Any] | None = None,
        parent_seq: int | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost_usd: float | Decimal = 0,
        duration_ms: float | None = None,
    ) -> Event:
        async with self.db.session(Identity.system()) as s:
            event = await self.add(
                s,
                type,
                name=name,
                payload=payload,
                parent_seq=parent_seq,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost_usd=cost_usd,
                duration_ms=duration_ms,
            )
        await self.announce(event)
        return event

    async def add(
        self,
        session: Session,
        type: str,
        *,
        name: str = "",
        payload: dict[str, Any] | None = None,
        parent_seq: int | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost_usd: float | Decimal = 0,
        duration_ms: float | None = None,
    ) -> Event:
        """Store an event in the caller's transaction (announce it once that commits)."""
        clean = _truncate(self.redact(payload or {}))
        return await session.executions.add_event(
            self.execution,
            type,
            name=name,
            payload=clean,
            parent_seq=parent_seq,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost_usd,
            duration_ms=int(duration_ms) if duration_ms is not None else None,
        )

    def redact(self, value: Any) -> Any:
        """`value` with the platform's own secrets, and every credential this process has
        decrypted, hidden: for events, and for the run's output and error."""
        return redact(value, [*self.secrets, *known_secrets()])

    async def announce(self, event: Event) -> None:
        for listener in self.listeners:
            try:
                result = listener(event)
                if result is not None:
                    await result
            except Exception:  # a broken viewer must not break the run
                log.exception("event listener failed")
