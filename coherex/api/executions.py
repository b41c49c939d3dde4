"""/api/executions, /api/hooks (webhook receiver), /api/health, /api/sandbox/health."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from coherex.api.deps import ApiState, AuthFirstRoute, Caller, caller, capped, state
from coherex.services import runs
from coherex.store.db import Identity
from coherex.store.models import Event, Execution

router = APIRouter(tags=["executions"], route_class=AuthFirstRoute)


class Health(BaseModel):
    status: str
    version: str
    database: str


async def _execution(st: ApiState, who: Caller, execution_id: UUID) -> Execution:
    return await runs.run_in_team(st.db, who.identity, who.team_id, execution_id)


@router.get("/executions", response_model=list[Execution])
async def list_executions(
    agent_id: UUID | None = None,
    status: str | None = Query(
        None, pattern="^(pending|running|waiting_approval|completed|failed|cancelled|timed_out)$"
    ),
    limit: int = Query(50, ge=1, le=500),
    st: ApiState = Depends(state),
    who: Caller = Depends(caller),
) -> Any:
    return await runs.list_runs(
        st.db, who.identity, who.team_id, agent_id=agent_id, status=status, limit=limit
    )


@router.get("/executions/{execution_id}", response_model=Execution)
async def get_execution(
    execution_id: UUID, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> Any:
    return await _execution(st, who, execution_id)


@router.get("/executions/{execution_id}/events", response_model=list[Event])
async def events(
    execution_id: UUID,
    after_seq: int = Query(0, ge=0, le=2**31 - 1),
    limit: int = Query(1000, ge=1, le=5000),
    st: ApiState = Depends(state),
    who: Caller = Depends(caller),
) -> Any:
    execution = await _execution(st, who, execution_id)
    return await runs.events(st.db, who.identity, execution.id, after_seq=after_seq, limit=limit)


@router.post("/executions/{execution_id}/stop", response_model=Execution)
async def stop_execution(
    execution_id: UUID, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> Any:
    execution = await _execution(st, who, execution_id)
    return await st.runtime.stop(who.identity, execution.id)


@router.post(
    "/hooks/{agent_id}", response_model=Execution, status_code=202, name="receive_webhook", tags=["webhooks"]
)
async def receive_webhook(agent_id: UUID, request: Request, st: ApiState = Depends(state)) -> Any:
    """Start a run from a signed webhook call (no API key: the signature is the credential)."""
    from coherex.services.triggers import MAX_BODY_BYTES
    from coherex.services.triggers import receive_webhook as receive

    body = await capped(request, MAX_BODY_BYTES, "The webhook body").body()
    return await receive(st.db, agent_id, body, dict(request.headers))


class EventOut(BaseModel):
    event: str | None
    started: list[UUID]
    challenge: str | None = None


@router.post("/events/{source_id}", response_model=EventOut, tags=["webhooks"])
async def receive_event(source_id: UUID, request: Request, st: ApiState = Depends(state)) -> Any:
    """Slack Events API / GitHub webhooks of a data source: starts the agents that wait for the event.
    Signed with the source's own secret (Slack signing secret, GitHub webhook secret)."""
    from coherex.integrations.events import verify_event
    from coherex.services.triggers import MAX_BODY_BYTES, route_event

    body = await capped(request, MAX_BODY_BYTES, "The event body").body()
    incoming = await verify_event(st.db, source_id, dict(request.headers), body)
    if incoming.reply is not None:
        return EventOut(event=None, started=[], challenge=incoming.reply.get("challenge"))
    started = []
    if incoming.type is not None:
        started = await route_event(
            st.db,
            incoming.source.team_id,
            incoming.source.name,
            incoming.type,
            incoming.data,
            incoming.delivery_id,
        )
    return EventOut(event=incoming.type, started=[x.id for x in started])


@router.get("/health", response_model=Health, tags=["system"])
async def health(st: ApiState = Depends(state)) -> Any:
    from coherex import __version__

    try:
        async with st.db.session(Identity.system()) as s:
            await s.teams.list()
        database = "ok"
    except Exception:
        database = "unavailable"
    return Health(status="ok" if database == "ok" else "degraded", version=__version__, database=database)


@router.get("/sandbox/health", tags=["system"])
async def sandbox_health(who: Caller = Depends(caller)) -> dict[str, Any]:
    """The sandbox backend's state; like /api/health, a backend that is down is reported, not an error."""
    from coherex.errors import BackendError
    from coherex.sandbox import health as sandbox_health_check

    try:
        return await sandbox_health_check()
    except BackendError as exc:
        return {"status": "unavailable", "message": exc.message, "hint": exc.hint}
