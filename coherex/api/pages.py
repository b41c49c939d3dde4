"""Small pages the platform serves itself (outside the chat): the data-source connect form, and the
page an approval mail links to."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)


@router.get("/connect")
async def connect_page() -> HTMLResponse:
    """A form for any data source type (fields from GET /api/sources/types; secrets masked); it
    saves through POST /api/sources with `check`, as the signed-in chat user (the chat's cookie).
    `?type=&name=&team=` fill it in, as the chat's "connect it" links do."""
    return HTMLResponse(files("coherex.api").joinpath("pages", "connect.html").read_text(encoding="utf-8"))


@router.get("/approvals/{approval_id}")
async def approval_page(approval_id: str) -> HTMLResponse:
    """Where an approval mail's links lead: the waiting call, and Approve / Reject buttons that post
    to POST /api/approvals/{id} as the signed-in chat user (`?team=` picks the team, `?decision=`
    the button to offer first). Opening the page decides nothing: mail scanners open links too."""
    return HTMLResponse(files("coherex.api").joinpath("pages", "approval.html").read_text(encoding="utf-8"))
