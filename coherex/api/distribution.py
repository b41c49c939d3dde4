"""/api/registry: push, pull and inspect agents as OCI artifacts (coherex/distribution).

The server uses only the team's registry logins (`coherex registry login`), never a Docker
credential file of the machine it runs on. Signing needs the publisher's private key and is done
with the CLI (`coherex push --sign`); the API verifies signatures on pull and inspect.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from coherex.api.deps import ApiState, Caller, caller, state

router = APIRouter(prefix="/registry", tags=["registry"])

REF_HELP = "REGISTRY/REPOSITORY[:TAG|@sha256:DIGEST], e.g. ghcr.io/acme/inbox-digest:1"


class PushBody(BaseModel):
    agent: str = Field(description="The agent's name.")
    version: int | None = Field(None, ge=1, description="The version to push (default: the current one).")
    ref: str = Field(description="REGISTRY/REPOSITORY[:TAG]; the tag defaults to the version number.")


class PushOut(BaseModel):
    ref: str
    digest: str
    pinned: str
    size: int
    signed: bool
    version: int


class PullBody(BaseModel):
    ref: str = Field(description=REF_HELP)


class PullOut(BaseModel):
    agent: str
    version: int
    digest: str
    ref: str
    created_agent: bool
    created_version: bool
    already_pulled: bool
    signature: dict[str, Any]
    files: list[str]
    import_notes: list[str]


@router.post("/push", response_model=PushOut)
async def push(body: PushBody, st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    from coherex.distribution import service

    result = await service.push(st.db, who.identity, who.team_id, body.agent, body.ref, version=body.version)
    return result.as_dict()


@router.post("/pull", response_model=PullOut)
async def pull(body: PullBody, st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    from coherex.distribution import service

    return (await service.pull(st.db, who.identity, who.team_id, body.ref)).as_dict()


@router.get("/inspect")
async def inspect(
    ref: str = Query(description=REF_HELP), st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> dict[str, Any]:
    from coherex.distribution import service

    return await service.inspect(st.db, who.identity, who.team_id, ref)
