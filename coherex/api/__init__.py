"""The HTTP API (`/api`): FastAPI routers, served by `coherex web` (with the chat) or alone.

Every request authenticates with an API key (`Authorization: Bearer cx_…`) and runs under the
key's database identity, so RLS decides what it may see. Errors are JSON
`{"error": {"code", "message", "hint"}}` with the status saying who must act (4xx the caller,
402 quota, 429 rate limit, 503 a backend).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI

from coherex.api import agents, approvals, builder, data, executions
from coherex.api.deps import ApiState, install_error_handlers

router = APIRouter()
router.include_router(builder.router)
router.include_router(agents.router)
router.include_router(executions.router)
router.include_router(data.router)
from coherex.api import distribution as _distribution  # noqa: E402

router.include_router(_distribution.router)
router.include_router(approvals.router)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the database and the queue once per process."""
    from coherex.jobs import make_app
    from coherex.runtime import Runtime
    from coherex.settings import get_settings
    from coherex.store.db import Database

    settings = get_settings()
    if settings.preload_model and settings.llm_offline:
        _preload_offline_model()
    async with Database.from_settings(settings) as db:
        queue = make_app(db.url)
        async with queue.open_async():
            app.state.coherex = ApiState(
                db=db, runtime=Runtime(db, settings=settings), settings=settings, queue=queue
            )
            yield


def _preload_offline_model() -> None:
    """Load the offline model in the background while the person writes a first request (6 s, or
    ~30 s the first time, when its weights are converted), so a first test run does not wait for it."""
    import threading

    from coherex.llm.local_model import LocalModelClient

    def load() -> None:
        try:
            LocalModelClient.shared()
        except Exception:  # the first run reports a model that cannot load
            return

    threading.Thread(target=load, name="offline-model-preload", daemon=True).start()


__all__ = ["install_error_handlers", "lifespan", "router"]
