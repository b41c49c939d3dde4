"""/api/agents: create, validate, version, run, stop and follow agents."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from coherex.api.deps import ApiState, AuthFirstRoute, Caller, caller, require_role, state
from coherex.api.follow import is_sub_agent_link, sub_agent_events
from coherex.errors import NotFound, UserError
from coherex.services.agents import apply_spec, validate_for_team
from coherex.store.db import Identity, Listener
from coherex.store.models import Agent, AgentVersion, Event, Execution

router = APIRouter(prefix="/agents", tags=["agents"], route_class=AuthFirstRoute)

SpecText = str | dict[str, Any]


class SpecBody(BaseModel):
    spec: SpecText = Field(description="A coherex/v1 spec: YAML or JSON text, or the parsed object.")
    message: str = Field("", max_length=1000, description="What changed, kept with the version.")


class ValidateBody(BaseModel):
    spec: SpecText


class ProblemOut(BaseModel):
    path: str
    message: str
    hint: str | None = None
    severity: str


class ValidationOut(BaseModel):
    valid: bool
    problems: list[ProblemOut]


class AgentOut(BaseModel):
    agent: Agent
    version: AgentVersion | None = None


class SavedOut(AgentOut):
    created_agent: bool
    created_version: bool


class ExecuteBody(BaseModel):
    inputs: dict[str, Any] = Field(default_factory=dict)
    version: int | None = Field(None, ge=1, description="Run this version instead of the current one.")


class StopOut(BaseModel):
    stopped: list[UUID]


class WebhookOut(BaseModel):
    url: str
    secret: str
    signature_header: str = "X-Coherex-Signature"
    delivery_header: str = "X-Coherex-Delivery"
    signature_format: str = (
        "t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<delivery id>.<raw body>' with the "
        "secret>; the delivery id (required, 1-200 of A-Z a-z 0-9 _ : -) is unique per call"
    )


def _spec_source(spec: SpecText) -> str | dict[str, Any]:
    return spec


async def _agent(st: ApiState, who: Caller, agent_id: UUID) -> Agent:
    async with st.db.session(who.identity) as s:
        agent = await s.agents.get(agent_id)
    if agent is None or agent.team_id != who.team_id:
        raise NotFound(f"Agent {agent_id} was not found.")
    return agent


@router.post("/validate", response_model=ValidationOut)
async def validate(body: ValidateBody, st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    """Check a spec against the schema and the team's data sources and collections. Stores nothing."""
    async with st.db.session(who.identity) as s:
        report = await validate_for_team(s, who.team_id, _spec_source(body.spec))
    return report.to_dict()


@router.get("", response_model=list[Agent])
async def list_agents(st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    async with st.db.session(who.identity) as s:
        return await s.agents.list(who.team_id)


@router.post("", response_model=SavedOut, status_code=201)
async def apply(
    body: SpecBody, response: Response, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> Any:
    """Create the agent named in the spec, or save the spec as its next version (200 if unchanged)."""
    async with st.db.session(who.identity) as s:
        saved = await apply_spec(s, who.team_id, _spec_source(body.spec), message=body.message)
    if not saved.created_agent:
        response.status_code = 200
    return SavedOut(
        agent=saved.agent,
        version=saved.version,
        created_agent=saved.created_agent,
        created_version=saved.created_version,
    )


@router.get("/{agent_id}", response_model=AgentOut)
async def get_agent(agent_id: UUID, st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    agent = await _agent(st, who, agent_id)
    async with st.db.session(who.identity) as s:
        version = await s.agents.get_version(agent.id)
    return AgentOut(agent=agent, version=version)


@router.put("/{agent_id}", response_model=SavedOut)
async def update_agent(
    agent_id: UUID, body: SpecBody, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> Any:
    """Save a new version of this agent (the spec's name must be the agent's)."""
    agent = await _agent(st, who, agent_id)
    async with st.db.session(who.identity) as s:
        report = await validate_for_team(s, who.team_id, _spec_source(body.spec))
        spec = report.raise_for_errors()
        if spec.metadata.name != agent.name:
            raise UserError(
                f"metadata.name is {spec.metadata.name!r} but this agent is {agent.name!r}.",
                hint="Renaming is not supported; create a new agent instead.",
            )
        saved = await apply_spec(s, who.team_id, _spec_source(body.spec), message=body.message)
    return SavedOut(
        agent=saved.agent, version=saved.version, created_agent=False, created_version=saved.created_version
    )


@router.delete("/{agent_id}", status_code=204)
async def delete_agent(
    agent_id: UUID, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> Response:
    agent = await _agent(st, who, agent_id)
    async with st.db.session(who.identity) as s:
        await s.agents.delete(agent.id)
        await s.audit.record(
            who.team_id,
            "agent.delete",
            target_type="agent",
            target_id=str(agent.id),
            details={"name": agent.name},
            actor_kind="api_key",
        )
    return Response(status_code=204)


@router.get("/{agent_id}/versions", response_model=list[AgentVersion])
async def versions(agent_id: UUID, st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    agent = await _agent(st, who, agent_id)
    async with st.db.session(who.identity) as s:
        return await s.agents.versions(agent.id)


@router.get("/{agent_id}/versions/{version}", response_model=AgentVersion)
async def version(
    agent_id: UUID, version: int, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> Any:
    agent = await _agent(st, who, agent_id)
    async with st.db.session(who.identity) as s:
        return await s.agents.require_version(agent, version)


@router.post("/{agent_id}/pause", response_model=Agent)
async def pause(agent_id: UUID, st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    """Stop the agent's schedules, webhooks and events from starting runs (runs can still be started by
    hand)."""
    return await _set_status(st, who, agent_id, "paused")


@router.post("/{agent_id}/resume", response_model=Agent)
async def resume(agent_id: UUID, st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    return await _set_status(st, who, agent_id, "active")


async def _set_status(st: ApiState, who: Caller, agent_id: UUID, status: str) -> Agent:
    agent = await _agent(st, who, agent_id)
    async with st.db.session(who.identity) as s:
        updated = await s.agents.set_status(agent.id, status)
        await s.audit.record(
            who.team_id,
            f"agent.{'pause' if status == 'paused' else 'resume'}",
            target_type="agent",
            target_id=str(agent.id),
            actor_kind="api_key",
        )
    return updated


@router.post("/{agent_id}/execute", response_model=Execution, status_code=202)
async def execute(
    agent_id: UUID,
    body: ExecuteBody | None = None,
    st: ApiState = Depends(state),
    who: Caller = Depends(caller),
) -> Any:
    """Queue a run; follow it with GET /api/agents/{id}/logs or /api/executions/{id}."""
    body = body or ExecuteBody()
    agent = await _agent(st, who, agent_id)
    return await st.runtime.create(
        who.identity, who.team_id, agent, version=body.version, trigger="api", inputs=body.inputs, queue=True
    )


@router.post("/{agent_id}/stop", response_model=StopOut)
async def stop(agent_id: UUID, st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    """Stop every pending and running execution of the agent (each within a second)."""
    agent = await _agent(st, who, agent_id)
    async with st.db.session(who.identity) as s:
        active = [
            x
            for x in await s.executions.list(team_id=who.team_id, agent_id=agent.id, limit=1000)
            if not x.finished
        ]
    for x in active:
        await st.runtime.stop(who.identity, x.id)
    return StopOut(stopped=[x.id for x in active])


@router.get(
    "/{agent_id}/logs",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-Sent Events: `event: step` per stored event, then `event: end`.",
        }
    },
)
async def logs(
    request: Request,
    agent_id: UUID,
    execution_id: UUID | None = Query(None, description="Default: the agent's latest execution."),
    follow: bool = Query(True, description="Keep the stream open until the run ends."),
    st: ApiState = Depends(state),
    who: Caller = Depends(caller),
) -> StreamingResponse:
    """The steps of an execution as Server-Sent Events, live while it runs."""
    agent = await _agent(st, who, agent_id)
    async with st.db.session(who.identity) as s:
        if execution_id is None:
            latest = await s.executions.list(team_id=who.team_id, agent_id=agent.id, limit=1)
            if not latest:
                raise NotFound(f"Agent {agent.name} has not run yet.")
            execution = latest[0]
        else:
            execution = await s.executions.get(execution_id)
            if execution is None or execution.agent_id != agent.id:
                raise NotFound(f"Execution {execution_id} of agent {agent.name} was not found.")
    return StreamingResponse(
        _event_stream(request, st, who.identity, execution, follow),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store"},
    )


async def _event_stream(
    request: Request, st: ApiState, identity: Identity, execution: Execution, follow: bool
) -> AsyncIterator[bytes]:
    last = 0

    async def catch_up() -> tuple[list[Event], Execution]:
        async with st.db.session(identity) as s:
            return await s.executions.events(execution.id, after_seq=last), await s.executions.get(
                execution.id
            )

    def frame(kind: str, data: Any) -> bytes:
        return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()

    async with Listener(st.db.url, "coherex_events", "coherex_executions") as listener:
        notes = aiter(listener)
        while True:
            events, current = await catch_up()
            for e in events:
                last = e.seq
                yield frame("step", e.model_dump(mode="json"))
                if is_sub_agent_link(e):  # the sub-agent's steps, under the step that called it
                    async for sub in sub_agent_events(
                        st.db, identity, UUID(e.payload["execution_id"]), live=follow
                    ):
                        yield frame("step", sub.model_dump(mode="json"))
            if current.finished or not follow:
                yield frame("end", current.model_dump(mode="json"))
                return
            if await request.is_disconnected():
                return
            try:
                await asyncio.wait_for(anext(notes), timeout=2)
            except TimeoutError:
                yield b": keep-alive\n\n"


@router.get("/{agent_id}/webhook", response_model=WebhookOut)
async def webhook(
    agent_id: UUID,
    request: Request,
    rotate: bool = Query(False, description="Make a new secret."),
    st: ApiState = Depends(state),
    who: Caller = Depends(caller),
) -> Any:
    """The agent's webhook URL and signing secret (created on first call; admins only: the secret
    starts runs). Runs it starts count against the quotas of the API key that created the secret."""
    from coherex.services.triggers import webhook_secret

    agent = await _agent(st, who, agent_id)
    await require_role(st, who, "admin", "Reading or rotating a webhook secret")
    async with st.db.session(Identity.system()) as s:
        secret = await webhook_secret(s, agent, rotate=rotate, api_key_id=who.key_id)
        await s.audit.record(
            who.team_id,
            "webhook.secret_rotated" if rotate else "webhook.secret_read",
            target_type="agent",
            target_id=str(agent.id),
            actor_kind="api_key",
        )
    return WebhookOut(url=str(request.url_for("receive_webhook", agent_id=str(agent.id))), secret=secret)
