"""The web process: the HTTP API (/api), OAuth callbacks (/oauth) and the Chainlit chat (/chat),
served by one FastAPI app (`coherex web`, the Procfile's `web`).

Chainlit is mounted into our app (`mount_chainlit`) rather than our routes added to Chainlit's:
the API then also runs alone (`create_app(chat=False)`, used by API tests and schemathesis), and
no Chainlit catch-all route can shadow an API path.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

ROOT = Path(__file__).resolve().parents[1]


def create_app(*, chat: bool = True) -> FastAPI:
    from coherex import __version__
    from coherex.api import lifespan, router as api_router

    app = FastAPI(
        title="Coherex API", version=__version__, lifespan=lifespan,
        description="Create, version, run and watch AI agents. Authenticate with `Authorization: Bearer <API key>`.",
    )
    app.include_router(api_router, prefix="/api")
    try:
        from coherex.api.oauth import router as oauth_router
    except ImportError:  # integrations not installed
        oauth_router = None
    if oauth_router is not None:
        app.include_router(oauth_router)

    if chat:
        from chainlit.utils import mount_chainlit

        @app.get("/", include_in_schema=False)
        async def home() -> RedirectResponse:
            return RedirectResponse("/chat")

        mount_chainlit(app=app, target=str(ROOT / "chat_app.py"), path="/chat")
    return app
