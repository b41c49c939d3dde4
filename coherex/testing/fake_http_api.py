"""A plain JSON API for the http_api provider (coherex/tools/providers/http_api.py): /api/... echoes
the request; /api/.../echo-key quotes the credential back (redaction tests); /redirect/...?to=URL
answers 302 to URL. Served by `FakeSaaS`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from coherex.testing.fake_saas import FakeSaaS


async def _plain_api(saas, request: Request) -> Response:
    rec = await saas._record("api", request)
    if (fault := saas._fault("api")) is not None:
        return fault
    if request.url.path.endswith("/echo-key"):  # a service that quotes part of a bad credential back
        key = rec.headers.get("authorization", "").removeprefix("Bearer ")
        if rec.query.get("as") == "text":  # as JSON inside a text body: the key JSON-escaped
            return PlainTextResponse(
                "upstream said: " + json.dumps({"detail": f"Invalid API key: {key}"}), status_code=403
            )
        return JSONResponse({"error": f"Invalid API key: {key}"}, status_code=403)
    return JSONResponse(
        {
            "path": request.url.path,
            "method": request.method,
            "query": rec.query,
            "json": rec.body,
            "auth": rec.headers.get("x-api-key"),
        }
    )


async def _redirect(saas, request: Request) -> Response:
    await saas._record("redirect", request)
    return RedirectResponse(request.query_params.get("to", "/"), status_code=302)


def routes(saas: FakeSaaS) -> list[Route]:
    async def api(request: Request) -> Response:
        return await _plain_api(saas, request)

    async def redirect(request: Request) -> Response:
        return await _redirect(saas, request)

    return [
        Route("/api/{path:path}", api, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        Route("/redirect/{path:path}", redirect, methods=["GET", "POST"]),
    ]


def env(url: str) -> dict[str, str]:
    return {}
