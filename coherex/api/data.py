"""/api/sources (data sources) and /api/knowledge (upload, embed, search)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile
from pydantic import BaseModel, Field

from coherex.api.deps import ApiState, AuthFirstRoute, Caller, caller, require_role, state
from coherex.store.models import DataSource

router = APIRouter(route_class=AuthFirstRoute)

NAME = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


# ---------------------------------------------------------------- data sources
class SourceBody(BaseModel):
    type: str = Field(description="slack, github, gmail, http_api or postgres")
    name: str = Field(pattern=NAME)
    config: dict[str, Any] = Field(default_factory=dict, description="Non-secret settings.")
    credentials: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={"writeOnly": True},
        description="Secrets (tokens, DSN). Encrypted at rest and never returned.",
    )
    check: bool = Field(
        False, description="Run the source's connection test first; nothing is saved if it fails."
    )


class SourceField(BaseModel):
    part: str = Field(description="config (settings) or credentials (secrets)")
    name: str
    title: str
    description: str | None = None
    type: str
    secret: bool
    multiline: bool = False
    required: bool
    default: Any = None


class SourceForm(BaseModel):
    type: str
    title: str
    connect: str = Field(
        description="secret: pasted credentials; oauth: a sign-in (POST /api/sources/connect)"
    )
    help: str | None = None
    fields: list[SourceField]


class ConnectBody(BaseModel):
    type: str
    name: str = Field(pattern=NAME)


class ConnectOut(BaseModel):
    authorize_url: str


class CheckOut(BaseModel):
    source: DataSource
    ok: bool
    message: str


class SyncBody(BaseModel):
    collection: str = Field(pattern=NAME)
    repo: str | None = Field(None, description="GitHub: owner/name")
    path: str = Field("", max_length=500, description="GitHub: only Markdown files under this folder")
    channel: str | None = Field(None, description="Slack: channel name or id")
    every_minutes: int | None = Field(
        None, ge=5, le=10080, description="Also keep it in step on this schedule."
    )


@router.get("/sources/types", response_model=list[SourceForm], tags=["data sources"])
async def source_types(who: Caller = Depends(caller)) -> Any:
    """Each data source type's fields (what the connect form shows), secrets marked."""
    from coherex.integrations.service import source_forms

    return source_forms()


@router.get("/sources", response_model=list[DataSource], tags=["data sources"])
async def list_sources(st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    from coherex.integrations.service import list_sources as list_

    return await list_(st.db, who.identity, who.team_id)


@router.post("/sources", response_model=DataSource, status_code=201, tags=["data sources"])
async def add_source(body: SourceBody, st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    """Connect a source with pasted credentials (admins). OAuth sources: use /sources/connect."""
    from coherex.integrations.service import add_source as add

    return await add(
        st.db,
        who.identity,
        who.team_id,
        body.type,
        body.name,
        config=body.config,
        credentials=body.credentials,
        via="api",
        check=body.check,
    )


@router.post("/sources/connect", response_model=ConnectOut, tags=["data sources"])
async def connect(body: ConnectBody, st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    """Start an OAuth sign-in; open `authorize_url` in a browser to finish."""
    from coherex.integrations.oauth import start_authorization

    url = await start_authorization(st.db, who.identity, who.team_id, body.type, body.name)
    return ConnectOut(authorize_url=url)


@router.post("/sources/{name}/validate", response_model=CheckOut, tags=["data sources"])
async def validate_source(name: str, st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Any:
    """Test the connection now and record the result (members and above: it calls the service
    with the stored credentials)."""
    from coherex.integrations.service import check_source

    await require_role(st, who, "member", "Testing a data source")
    source, check = await check_source(st.db, who.identity, who.team_id, name)
    return CheckOut(source=source, ok=check.ok, message=check.summary)


@router.post("/sources/{name}/sync", tags=["data sources"])
async def sync(
    name: str, body: SyncBody, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> dict[str, Any]:
    """Bring a knowledge collection in step with the source (GitHub Markdown docs, a Slack channel)."""
    from dataclasses import asdict

    from coherex.integrations.sync import sync_source

    options = {k: v for k, v in {"repo": body.repo, "path": body.path, "channel": body.channel}.items() if v}
    result = await sync_source(st.db, who.identity, who.team_id, name, body.collection, **options)
    if body.every_minutes:
        from coherex.services.knowledge import schedule_sync

        await schedule_sync(
            st.db, who.identity, who.team_id, name, body.collection, options, body.every_minutes
        )
    return {**asdict(result), "every_minutes": body.every_minutes}


@router.delete("/sources/{name}", status_code=204, tags=["data sources"])
async def remove_source(name: str, st: ApiState = Depends(state), who: Caller = Depends(caller)) -> Response:
    from coherex.integrations.service import remove_source as remove

    await remove(st.db, who.identity, who.team_id, name)
    return Response(status_code=204)


# ---------------------------------------------------------------- knowledge
class SearchBody(BaseModel):
    collection: str = Field(pattern=NAME)
    query: str = Field(min_length=1, max_length=2000)
    k: int = Field(5, ge=1, le=50)
    filters: dict[str, Any] | None = None


class EmbedBody(BaseModel):
    collection: str = Field(pattern=NAME)


#: files larger than this are ingested by a worker (202 + an upload id to follow)
INLINE_MAX_BYTES = 1_000_000


@router.post(
    "/knowledge/upload",
    tags=["knowledge"],
    responses={202: {"description": "Queued: follow GET /api/knowledge/uploads/{upload_id}."}},
)
async def upload(
    response: Response,
    collection: str = Form(..., pattern=NAME),
    file: UploadFile = File(...),
    background: bool = Form(False, description="Queue it even when small."),
    st: ApiState = Depends(state),
    who: Caller = Depends(caller),
) -> dict[str, Any]:
    """Add a file (text, Markdown, HTML, PDF, DOCX, CSV) to a collection; the same content twice is
    stored once. Large files (over 1 MB) are ingested by a worker: the answer is 202 with an upload id."""
    from coherex.jobs import enqueue_upload
    from coherex.knowledge import ingest_file
    from coherex.knowledge.ingest import _too_large, max_file_bytes, validate_collection_name

    name = file.filename or "upload"
    data = await file.read(max_file_bytes() + 1)
    if len(data) > max_file_bytes():
        raise _too_large(name, len(data), max_file_bytes())
    if background or len(data) > INLINE_MAX_BYTES:
        validate_collection_name(collection)
        from coherex.services.knowledge import queue_upload

        queued = await queue_upload(st.db, who.identity, who.team_id, collection, name, data)
        await enqueue_upload(st.queue, queued.id)
        response.status_code = 202
        return {"upload_id": str(queued.id), "status": queued.status}
    result = await ingest_file(st.db, who.identity, who.team_id, collection, data, name)
    return _plain(result)


@router.get("/knowledge/uploads/{upload_id}", tags=["knowledge"])
async def upload_status(
    upload_id: UUID, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> dict[str, Any]:
    """A queued upload: status (queued, processing, done, failed), progress (stage, done of total), error."""
    from coherex.services.knowledge import upload_in_team

    return (await upload_in_team(st.db, who.identity, who.team_id, upload_id)).model_dump(mode="json")


@router.post("/knowledge/embed", tags=["knowledge"])
async def embed(
    body: EmbedBody, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> dict[str, Any]:
    """Re-embed a collection with the configured embedding model (members and above)."""
    from coherex.knowledge import reindex_collection

    await require_role(st, who, "member", "Re-embedding a collection")
    chunks = await reindex_collection(st.db, who.identity, who.team_id, body.collection)
    return {"collection": body.collection, "chunks": chunks}


@router.post("/knowledge/search", tags=["knowledge"])
async def search(
    body: SearchBody, st: ApiState = Depends(state), who: Caller = Depends(caller)
) -> list[dict[str, Any]]:
    from coherex.knowledge import knowledge_search

    hits = await knowledge_search(
        st.db, who.identity, who.team_id, body.collection, body.query, body.k, filters=body.filters
    )
    return [h.to_dict() for h in hits]


def _plain(value: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {k: str(v) if k.endswith("_id") else v for k, v in asdict(value).items()}
