"""A fake Swagger Petstore 3 server for tests: the real public OpenAPI document and its operations.

    with FakePetstore() as store:
        store.document_url          # …/api/v3/openapi.json (the shipped document, petstore/openapi.yaml)
        store.base_url              # …/api/v3 (the document's server)
        store.api_key               # the one valid key
        store.add_pet("Rex", status="available")
        store.requests              # every operation call received, with how it was authenticated

Every operation under /api/v3 needs the key, in any of the ways an `http_api` source can send it:
the header `api_key`, `Authorization: Bearer KEY`, basic auth `petstore:KEY`, or the query
parameter `api_key`, or the cookie `session_id`; anything else is 401 (`Recorded.auth` tells which
way was used). The document itself is served openly, as public APIs do. `env()` allows the server in
the egress guard, as an operator allows an internal service.

A second, small document (`extras_url`) has what the Petstore lacks: a multipart/form-data upload
(`uploadPetPhotos`: a photo file, more files, a caption; `store.uploads` keeps what came) and an
operation with cookie parameters (`getMyOrders`: the secret `session_id`, and `lang`).
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
        self.uploads: list[dict[str, Any]] = []  # per multipart request: its fields and files
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

    @property
    def extras_url(self) -> str:
        return f"{self.base_url}/extras.json"

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
                Route("/api/v3/extras.json", lambda _: JSONResponse(EXTRAS), methods=["GET"]),
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
        if request.cookies.get("session_id") == self.api_key:
            return "cookie"
        return None

    async def _operation(self, request: Request) -> Response:
        raw = await request.body()
        ctype = request.headers.get("content-type", "")
        body: Any = raw.decode(errors="replace") or None
        if "json" in ctype and raw:
            body = json.loads(raw)
        elif ctype.startswith("multipart/form-data"):
            body = _multipart(ctype, raw)
        elif ctype == "application/octet-stream":
            body = raw
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
        if len(parts) == 3 and parts[0] == "pet" and parts[2] in ("uploadImage", "photos"):
            pet = self.pets.get(int(parts[1])) if parts[1].isdigit() else None
            if pet is None:
                return not_found
            if parts[2] == "uploadImage" and isinstance(rec.body, bytes) and rec.body:
                self.uploads.append({"fields": {}, "files": {"body": [("", "", rec.body)]}})
                return JSONResponse({"code": 200, "type": "image", "message": f"{len(rec.body)} bytes"})
            if parts[2] == "photos" and isinstance(rec.body, dict) and rec.body["files"].get("photo"):
                self.uploads.append(rec.body)
                names = [f[0] for f in sum(rec.body["files"].values(), [])]
                return JSONResponse({"code": 200, "type": "photos", "message": ", ".join(names)})
            return JSONResponse({"code": 400, "message": "No file uploaded"}, status_code=400)
        if parts == ["store", "mine"] and method == "GET":
            lang = next(
                (
                    c.split("=", 1)[1]
                    for c in rec.headers.get("cookie", "").split("; ")
                    if c.startswith("lang=")
                ),
                "en",
            )
            return JSONResponse({"orders": list(self.orders.values()), "lang": lang})
        if parts == ["store", "order"] and method == "POST":
            order = {**(rec.body if isinstance(rec.body, dict) else {}), "id": next(self._ids)}
            self.orders[order["id"]] = order
            return JSONResponse(order)
        return not_found


def _multipart(ctype: str, raw: bytes) -> dict[str, Any]:
    """{"fields": name → text, "files": name → [(file name, media type, bytes)]} of a form."""
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + raw)
    fields: dict[str, str] = {}
    files: dict[str, list[tuple[str, str, bytes]]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        if part.get_filename() is not None:
            files.setdefault(name, []).append((part.get_filename(), part.get_content_type(), data))
        else:
            fields[name] = data.decode()
    return {"fields": fields, "files": files}


_ERROR = {"description": "error", "content": {"application/json": {"schema": {"type": "object"}}}}
EXTRAS: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "Petstore extras", "version": "1.0"},
    "servers": [{"url": "/api/v3"}],
    "paths": {
        "/pet/{petId}/photos": {
            "post": {
                "operationId": "uploadPetPhotos",
                "summary": "Upload photos of a pet, with a caption.",
                "parameters": [
                    {"name": "petId", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["photo"],
                                "properties": {
                                    "photo": {"type": "string", "format": "binary"},
                                    "more": {
                                        "type": "array",
                                        "items": {"type": "string", "format": "binary"},
                                    },
                                    "caption": {"type": "string"},
                                    "meta": {"type": "object", "properties": {"year": {"type": "integer"}}},
                                },
                            }
                        }
                    },
                },
                "responses": {"200": {"description": "uploaded"}, "400": _ERROR},
            }
        },
        "/store/mine": {
            "get": {
                "operationId": "getMyOrders",
                "summary": "The orders of the signed-in session.",
                "parameters": [
                    {"name": "session_id", "in": "cookie", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "lang",
                        "in": "cookie",
                        "schema": {"type": "string"},
                        "description": "e.g. en or de",
                    },
                ],
                "responses": {"200": {"description": "the orders"}, "401": _ERROR},
            }
        },
    },
}
