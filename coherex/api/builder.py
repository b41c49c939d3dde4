"""POST /api/agents/create: describe an agent (or hand over a conversation) and get the draft the
conversational builder makes of it, saved when asked and ready."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field, model_validator

from coherex.api.deps import ApiState, AuthFirstRoute, Caller, caller, state
from coherex.builder.headless import MAX_TRANSCRIPT_MESSAGES, Said, build
from coherex.services.teams import get_team

router = APIRouter(prefix="/agents", tags=["agents"], route_class=AuthFirstRoute)


class TranscriptMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=20_000)


class CreateBody(BaseModel):
    description: str | None = Field(
        None, min_length=1, max_length=20_000, description="What the agent should do, in plain language."
    )
    transcript: list[TranscriptMessage] | None = Field(
        None,
        min_length=1,
        max_length=MAX_TRANSCRIPT_MESSAGES,
        description="A conversation with the builder so far; it must end with a `user` message.",
    )
    save: bool = Field(False, description="Save the draft as an agent when it is valid and ready.")

    @model_validator(mode="after")
    def _one_source(self) -> CreateBody:
        if (self.description is None) == (self.transcript is None):
            raise ValueError("send either `description` or `transcript`")
        return self


class ProblemOut(BaseModel):
    path: str
    message: str
    hint: str | None = None
    severity: str


class SavedRef(BaseModel):
    agent_id: str
    name: str
    version: int


class CreateOut(BaseModel):
    valid: bool = Field(description="A valid draft was produced.")
    name: str | None = None
    yaml: str | None = Field(None, description="The draft spec as YAML.")
    spec: dict[str, Any] | None = Field(None, description="The draft spec as an object.")
    summary: str | None = Field(None, description="What the agent will do, with which data and permissions.")
    problems: list[ProblemOut] = Field(
        default_factory=list, description="Validation errors (no valid draft) or warnings."
    )
    to_connect: list[str] = Field(default_factory=list, description="Data to connect before it can be saved.")
    questions: list[str] = Field(default_factory=list, description="What the builder would still ask.")
    message: str = Field("", description="The builder's answer.")
    saved: SavedRef | None = None
    llm_calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0


@router.post("/create", response_model=CreateOut)
async def create_from_description(
    body: CreateBody, response: Response, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> Any:
    """Run the conversational builder once, without a person: the draft spec, its problems, a
    summary and the builder's open questions. 201 when it was saved, else 200."""
    transcript = (
        [Said("user", body.description)]
        if body.description is not None
        else [Said(m.role, m.content) for m in body.transcript or []]
    )
    team = await get_team(st.db, who.identity, who.team_id)
    result = await build(
        st.db,
        who.identity,
        who.team_id,
        transcript,
        save=body.save,
        settings=st.settings,
        team_name=team.name if team else "",
    )
    if result.saved:
        response.status_code = 201
    return CreateOut(
        valid=result.valid,
        name=result.name,
        yaml=result.yaml,
        spec=result.spec,
        summary=result.summary,
        problems=[
            ProblemOut(path=p.path, message=p.message, hint=p.hint, severity=p.severity)
            for p in result.problems
        ],
        to_connect=result.to_connect,
        questions=result.questions,
        message=result.message,
        saved=SavedRef(**result.saved) if result.saved else None,
        llm_calls=result.llm_calls,
        tokens=result.tokens,
        cost_usd=result.cost_usd,
    )
