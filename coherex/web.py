"""The web process: the HTTP API (/api), OAuth callbacks (/oauth) and the Chainlit chat (/chat),
served by one FastAPI app (`coherex web`, the Procfile's `web`).

Chainlit is mounted into our app (`mount_chainlit`) rather than our routes added to Chainlit's:
the API then also runs alone (`create_app(chat=False)`, used by API tests and schemathesis), and
no Chainlit catch-all route can shadow an API path.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

ROOT = Path(__file__).resolve().parents[1]
# Chainlit reads its config (.chainlit/), translations and logos (public/) from its app root, which
# defaults to the working directory — where it would otherwise write a default config of its own
os.environ.setdefault("CHAINLIT_APP_ROOT", str(ROOT))


def create_app(*, chat: bool = True) -> FastAPI:
    from coherex import __version__
    from coherex.api import install_error_handlers, lifespan, router as api_router
    from coherex.api.deps import caller, db
    from coherex.api.oauth import build_router

    app = FastAPI(
        title="Coherex API", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
        description="Create, version, run and watch AI agents. Authenticate with `Authorization: Bearer <API key>`.",
    )
    install_error_handlers(app)
    _local_docs(app)
    app.include_router(api_router, prefix="/api")
    app.include_router(build_router(get_db=db, get_caller=caller))

    if chat:
        from chainlit.utils import mount_chainlit

        from coherex.chat.session import ChatCallerMiddleware
        from coherex.chat.uploads import EmptyUploadMiddleware

        @app.get("/", include_in_schema=False)
        async def home() -> RedirectResponse:
            return RedirectResponse("/chat")

        mount_chainlit(app=app, target=str(ROOT / "chat_app.py"), path="/chat")
        # Chainlit's HTTP routes (e.g. feedback) run as the signed-in caller, not as the thread's author
        app.add_middleware(ChatCallerMiddleware, prefix="/chat")
        # an empty attachment gets "… is empty", not Chainlit's server error ("Upload failed")
        app.add_middleware(EmptyUploadMiddleware, prefix="/chat")
    return app


def _local_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc from files installed with the platform (the
    `fastapi-standalone-docs` package ships them): FastAPI's defaults load them from a CDN, which
    leaves the pages blank offline."""
    import fastapi_standalone_docs
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    assets = Path(fastapi_standalone_docs.__file__).parent / "static"
    app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} — Swagger UI",
                                   swagger_js_url="/docs-assets/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/fastapi/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    async def redoc():
        return get_redoc_html(openapi_url=app.openapi_url, title=f"{app.title} — ReDoc",
                              redoc_js_url="/docs-assets/redoc/redoc.standalone.js",
                              redoc_favicon_url="/docs-assets/fastapi/favicon.png", with_google_fonts=False)
