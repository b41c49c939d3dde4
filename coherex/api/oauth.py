"""OAuth2 start and callback endpoints (mounted on the Chainlit server's FastAPI app).

    app.include_router(oauth.build_router(get_db=..., get_caller=...))

`get_caller` is the app's own auth dependency returning a `Caller` (who is signed in, in which
team); the callback needs no session: the one-time state identifies the flow.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, RedirectResponse

from coherex.errors import CoherexError
from coherex.integrations.oauth import complete_authorization, start_authorization
from coherex.store.db import Database, Identity


@dataclass(frozen=True)
class Caller:
    user_id: UUID
    team_id: UUID


def _page(title: str, message: str, status: int) -> HTMLResponse:
    body = (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
    )
    return HTMLResponse(body, status_code=status)


def build_router(
    get_db: Callable[[], Database | Awaitable[Database]],
    get_caller: Callable[..., Any],
    prefix: str = "/oauth",
) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["oauth"])

    @router.get("/{source_type}/start")
    async def start(
        source_type: str,
        name: str = Query(..., description="name of the new data source"),
        caller: Caller = Depends(get_caller),
        db: Database = Depends(get_db),
    ) -> RedirectResponse:
        """Send the browser to the provider's consent page."""
        try:
            url = await start_authorization(
                db, Identity.user(caller.user_id), caller.team_id, source_type, name
            )
        except CoherexError as exc:
            return _page("Cannot connect", str(exc), 400)  # type: ignore[return-value]
        return RedirectResponse(url, status_code=302)

    @router.get("/callback")
    async def callback(
        code: str | None = None,
        state: str | None = None,
        error: str | None = None,
        db: Database = Depends(get_db),
    ) -> HTMLResponse:
        """Where the provider sends the browser back: store the source, tell the person."""
        try:
            source = await complete_authorization(db, code=code, state=state, error=error)
        except CoherexError as exc:
            return _page("Connection failed", exc.message, 403 if exc.code == "permission_denied" else 400)
        return _page(
            "Connected",
            f"Data source {source.name!r} ({source.type}) is connected. You can close this tab.",
            200,
        )

    return router
