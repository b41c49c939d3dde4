"""/api/approvals: tool calls waiting for a person, and their decisions (approve, edit, reject)."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from coherex.api.deps import ApiState, AuthFirstRoute, Caller, caller, require_role, state
from coherex.services import approvals
from coherex.store.repos.approvals import Approval, PendingApproval

router = APIRouter(prefix="/approvals", tags=["approvals"], route_class=AuthFirstRoute)


class DecisionBody(BaseModel):
    decision: Literal["approve", "edit", "reject"]
    arguments: dict[str, Any] | None = Field(
        None, description="edit: the arguments the call runs with instead"
    )
    message: str | None = Field(None, max_length=4000, description="reject: what the model is told")
    always_allow: bool = Field(
        False, description="approve, and save a version of the agent that stops asking"
    )


class DecisionOut(BaseModel):
    approval: Approval
    resumed: bool = Field(description="the run's step is fully decided and it was queued to go on")
    new_version: int | None = Field(None, description="the agent version saved by always_allow")
    queued_execution_id: UUID | None = Field(
        None, description="the run that goes on: this one, or for a sub-agent's call the root run above it"
    )


@router.get("", response_model=list[PendingApproval])
async def list_approvals(
    execution_id: UUID | None = None,
    limit: int = Query(200, ge=1, le=1000),
    st: ApiState = Depends(state),
    who: Caller = Depends(caller),
) -> Any:
    """Tool calls of the team's runs that wait for a decision, oldest first."""
    return await approvals.pending(st.db, who.identity, who.team_id, execution_id=execution_id, limit=limit)


@router.get("/{approval_id}", response_model=Approval)
async def get_approval(
    approval_id: UUID, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> Any:
    return await _approval(st, who, approval_id)


@router.post("/{approval_id}", response_model=DecisionOut)
async def decide_approval(
    approval_id: UUID, body: DecisionBody, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> Any:
    """Approve, approve with edited arguments, or reject (the model reads the message) one call.
    Members and above; a call is decided once (409 after that)."""
    from coherex.runtime.approvals import decide

    await _approval(st, who, approval_id)
    await require_role(st, who, "member", "Deciding on a tool call")
    done = await decide(
        st.db,
        who.identity,
        approval_id,
        body.decision,
        arguments=body.arguments,
        message=body.message,
        always_allow=body.always_allow,
    )
    return DecisionOut(
        approval=done.approval,
        resumed=done.resumed,
        new_version=done.new_version,
        queued_execution_id=done.queued,
    )


async def _approval(st: ApiState, who: Caller, approval_id: UUID) -> Approval:
    return await approvals.in_team(st.db, who.identity, who.team_id, approval_id)
