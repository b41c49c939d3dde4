"""A fake Swagger Petstore 3 server for tests: the real public OpenAPI document and its operations.

    with FakePetstore() as store:
        store.document_url          # …/api/v3/openapi.json (the shipped document, petstore/openapi.yaml)
        store.base_url              # …/api/v3 (the document's server)
        store.api_key               # the one valid key
        store.add_pet("Rex", status="available")
        store.requests              # every operation call received, with how it was authenticated

Every operation under /api/v3 needs the key, in any of the ways an `http_api` source can send it:
the header `api_key`, `Authorization: Bearer KEY`, basic auth `petstore:KEY`, or the query
parameter `api_key`; anything else is 401 (`Recorded.auth` tells which way was used). The
document itself is served openly, as public APIs do. `env()` allows the server in the egress guard,
as an operator allows an internal service.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from coherex.testing._server import ServedApp

DOCUMENT_PATH = Path(__file__).with_name("petstore") / "openapi.yaml"


def document() -> dict[str, Any]:
    """The shipped Swagger Petstore 3 document (Apache-2.0, see petstore/SOURCE.md)."""
    return yaml.safe_load(DOCUMENT_PATH.read_text())


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    #: how the key came: "header", "bearer", "basic", "query", or None (refused)
    auth: str | None
    #: the path and query string exactly as sent (percent-encoding kept)
    raw_path: str = ""
    raw_query: str = ""


class FakePetstore(ServedApp):
    server_name = "fake-petstore"

    def __init__(self) -> None:
        self.api_key = "pet-" + secrets.token_hex(12)
        self.pets: dict[int, dict[str, Any]] = {}
        self.orders: dict[int, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.document_requests = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/v3"

    @property
    def document_url(self) -> str:
        return f"{self.base_url}/openapi.json"

    def env(self) -> dict[str, str]:
        return {"COHEREX_EGRESS_ALLOW": f"127.0.0.1:{self.port}"}

    def add_pet(self, name: str, status: str = "available", tags: list[str] = ()) -> dict[str, Any]:
        with self._lock:
            pet = {
                "id": next(self._ids),
                "name": name,
                "photoUrls": [],
                "tags": [{"id": i, "name": t} for i, t in enumerate(tags, 1)],
                "status": status,
            }
            self.pets[pet["id"]] = pet
        return pet

    # ---------------------------------------------------------------- the server

    def _app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"]
        return Starlette(
            routes=[
                Route("/api/v3/openapi.json", self._document, methods=["GET"]),
                Route("/api/v3/{path:path}", self._operation, methods=methods),
            ]
        )

    async def _document(self, request: Request) -> Response:
        with self._lock:
            self.document_requests += 1
        doc = document()
        doc["servers"] = [{"url": "/api/v3"}]  # as the real server answers: relative to itself
        return JSONResponse(doc)

    def _auth(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if request.headers.get("api_key") == self.api_key:
            return "header"
        if header == f"Bearer {self.api_key}":
            return "bearer"
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None
            return "basic" if (user, password) == ("petstore", self.api_key) else None
        if request.query_params.get("api_key") == self.api_key:
            return "query"
        return None

    async def _operation(self, request: Request) -> Response:
        raw = await request.body()
        ctype = request.headers.get("content-type", "")
        body: Any = raw.decode(errors="replace") or None
        if "json" in ctype and raw:
            body = json.loads(raw)
        rec = Recorded(
            request.method,
            request.url.path.removeprefix("/api/v3"),
            dict(request.query_params),
            {k.lower(): v for k, v in request.headers.items()},
            body,
            self._auth(request),
            request.scope.get("raw_path", b"").decode(),
            request.scope.get("query_string", b"").decode(),
        )
        with self._lock:
            self.requests.append(rec)
        if rec.auth is None:
            return JSONResponse({"code": 401, "message": "missing or wrong api_key"}, status_code=401)
        parts = rec.path.strip("/").split("/")
        with self._lock:
            return self._route(request.method, parts, rec)

    def _route(self, method: str, parts: list[str], rec: Recorded) -> Response:
        not_found = JSONResponse({"code": 404, "message": "not found"}, status_code=404)
        if parts == ["pet"] and method in ("POST", "PUT"):
            pet = rec.body if isinstance(rec.body, dict) else None
            if pet is None or not pet.get("name") or "photoUrls" not in pet:
                return JSONResponse({"code": 400, "message": "Invalid input"}, status_code=400)
            if method == "PUT" and pet.get("id") not in self.pets:
                return not_found
            pet = {**pet, "id": pet.get("id") or next(self._ids)}
            self.pets[pet["id"]] = pet
            return JSONResponse(pet)
        if parts == ["pet", "findByStatus"] and method == "GET":
            wanted = rec.query.get("status", "available")
            return JSONResponse([p for p in self.pets.values() if p.get("status") == wanted])
        if len(parts) == 2 and parts[0] == "pet" and parts[1].isdigit():
            pet = self.pets.get(int(parts[1]))
            if pet is None:
                return not_found
            if method == "GET":
                return JSONResponse(pet)
            if method == "DELETE":
                del self.pets[pet["id"]]
                return JSONResponse({"code": 200, "message": "Pet deleted"})
        if parts == ["store", "inventory"] and method == "GET":
            counts: dict[str, int] = {}
            for p in self.pets.values():
                counts[p.get("status", "")] = counts.get(p.get("status", ""), 0) + 1
            return JSONResponse(counts)
        if parts == ["store", "order"] and method == "POST":
            order = {**(rec.body if isinstance(rec.body, dict) else {}), "id": next(self._ids)}
            self.orders[order["id"]] = order
            return JSONResponse(order)
        return not_found
