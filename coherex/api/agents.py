"""/api/agents: create, validate, version, run, stop and follow agents."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from coherex.api.deps import ApiState, AuthFirstRoute, Caller, caller, require_role, state
from coherex.services import agents, runs
from coherex.services.follow import follow_tree
from coherex.store.db import Identity
from coherex.store.models import Agent, AgentVersion, Execution

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
    return await agents.agent_in_team(st.db, who.identity, who.team_id, agent_id)


@router.post("/validate", response_model=ValidationOut)
async def validate(body: ValidateBody, st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    """Check a spec against the schema and the team's data sources and collections. Stores nothing."""
    report = await agents.check_spec(st.db, who.identity, who.team_id, _spec_source(body.spec))
    return report.to_dict()


@router.get("", response_model=list[Agent])
async def list_agents(st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    return await agents.list_agents(st.db, who.identity, who.team_id)


@router.post("", response_model=SavedOut, status_code=201)
async def apply(
    body: SpecBody, response: Response, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> Any:
    """Create the agent named in the spec, or save the spec as its next version (200 if unchanged)."""
    saved = await agents.save_spec(
        st.db, who.identity, who.team_id, _spec_source(body.spec), message=body.message
    )
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
    return AgentOut(agent=agent, version=await agents.version_of(st.db, who.identity, agent))


@router.put("/{agent_id}", response_model=SavedOut)
async def update_agent(
    agent_id: UUID, body: SpecBody, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> Any:
    """Save a new version of this agent (the spec's name must be the agent's)."""
    agent = await _agent(st, who, agent_id)
    saved = await agents.save_version_of(
        st.db, who.identity, who.team_id, agent, _spec_source(body.spec), body.message
    )
    return SavedOut(
        agent=saved.agent, version=saved.version, created_agent=False, created_version=saved.created_version
    )


@router.delete("/{agent_id}", status_code=204)
async def delete_agent(
    agent_id: UUID, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> Response:
    agent = await _agent(st, who, agent_id)
    await agents.delete_agent(st.db, who.identity, agent, actor_kind="api_key")
    return Response(status_code=204)


@router.get("/{agent_id}/versions", response_model=list[AgentVersion])
async def versions(agent_id: UUID, st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    agent = await _agent(st, who, agent_id)
    return await agents.version_history(st.db, who.identity, agent)


@router.get("/{agent_id}/versions/{version}", response_model=AgentVersion)
async def version(
    agent_id: UUID, version: int, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> Any:
    agent = await _agent(st, who, agent_id)
    return await agents.require_version_of(st.db, who.identity, agent, version)


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
    return await agents.set_status(st.db, who.identity, agent, status, actor_kind="api_key")


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
    active = await runs.active_runs(st.db, who.identity, who.team_id, agent.id)
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
    execution = await runs.run_of_agent(st.db, who.identity, who.team_id, agent, execution_id)
    return StreamingResponse(
        _event_stream(request, st, who.identity, execution, follow),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store"},
    )


async def _event_stream(
    request: Request, st: ApiState, identity: Identity, execution: Execution, follow: bool
) -> AsyncIterator[bytes]:
    """`event: step` per event of the run and of its sub-agents (each under the step that called
    it), then `event: end` with the run's row; a keep-alive comment while nothing happens."""

    def frame(kind: str, data: Any) -> bytes:
        return f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n".encode()

    tree = follow_tree(st.db, identity, execution.id, live=follow, idle=True)
    async with contextlib.aclosing(tree) as items:
        async for item in items:
            if item is None:
                if await request.is_disconnected():
                    return
                yield b": keep-alive\n\n"
            elif isinstance(item, Execution):
                yield frame("end", item.model_dump(mode="json"))
            else:
                yield frame("step", item.model_dump(mode="json"))


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
    from coherex.services.triggers import reveal_webhook_secret

    agent = await _agent(st, who, agent_id)
    await require_role(st, who, "admin", "Reading or rotating a webhook secret")
    secret = await reveal_webhook_secret(st.db, agent, rotate=rotate, api_key_id=who.key_id)
    return WebhookOut(url=str(request.url_for("receive_webhook", agent_id=str(agent.id))), secret=secret)
