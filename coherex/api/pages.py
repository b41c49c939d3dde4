"""Small pages the platform serves itself (outside the chat): the data-source connect form."""

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
