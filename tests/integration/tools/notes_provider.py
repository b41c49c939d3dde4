"""A tiny provider whose tools are discovered per data source (as MCP and OpenAPI sources are):
a `notes` source names a notes server; the server lists its tools at /tools and runs them at
/call/<name>. `FakeNotes` is that server. Used through `registry.use([*BUILTIN, PROVIDER])`."""

from __future__ import annotations

import threading
from typing import Any

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from coherex.integrations.base import (
    Call,
    Check,
    Model,
    ServiceError,
    SourceType,
    http_client,
    json_of,
    send,
)
from coherex.spec.catalogue import ToolInfo
from coherex.testing._server import ServedApp
from coherex.tools.port import ToolCall, ToolResult

# ---------------------------------------------------------------- the provider


class NotesConfig(Model):
    url: str


class NotesCredentials(Model):
    token: SecretStr


def _client(call: Call):
    return http_client(
        call.config.url, {"Authorization": f"Bearer {call.credentials.token.get_secret_value()}"}
    )


async def _check(call: Call) -> Check:
    async with _client(call) as c:
        listed = json_of(await send(c, "The notes server", "GET", "/tools"), "The notes server")
    return Check(True, f"The notes server at {call.config.url} answers.", {"tools": len(listed)})


NOTES = SourceType(
    name="notes",
    title="Notes server",
    config_model=NotesConfig,
    credentials_model=NotesCredentials,
    test_connection=_check,
    destinations=lambda cfg, creds: [("127.0.0.1", int(cfg.url.rsplit(":", 1)[1].split("/")[0]))],
)


class NotesProvider:
    """Written against the protocol directly (not the ready-made `Provider`)."""

    name = "notes"
    source_type = NOTES
    events = None
    sync = None

    def tools(self) -> list[ToolInfo]:
        return []  # all of them are discovered

    async def discover(self, opened: Any) -> list[ToolInfo]:
        async with _client(opened.call) as c:
            listed = json_of(await send(c, "The notes server", "GET", "/tools"), "The notes server")
        return [
            ToolInfo(
                t["name"],
                "notes",
                t["description"],
                access="read" if t.get("readOnly") else "write",
                needs_data_source=True,
                parameters=t["inputSchema"],
            )
            for t in listed
        ]

    async def call(self, call: ToolCall, args: dict[str, Any]) -> ToolResult:
        assert call.source is not None
        async with _client(call.source.call) as c:
            r = await send(c, "The notes server", "POST", f"/call/{call.tool.name}", json=args, check=False)
        body = json_of(r, "The notes server")
        if r.status_code >= 400:
            raise ServiceError(f"The notes server refused {call.tool.name}: {body.get('error')}")
        return ToolResult(body["text"], data=body)


PROVIDER = NotesProvider()


# ---------------------------------------------------------------- its fake server


def _schema(**props: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {k: {"type": "string", "description": v} for k, v in props.items()},
        "required": list(props),
    }


class FakeNotes(ServedApp):
    server_name = "fake-notes"

    def __init__(self, token: str = "notes-token") -> None:
        self.token = token
        self.notes: list[str] = ["Standup moved to 10:30", "Invoice 42 is paid"]
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.tools = [
            {
                "name": "search",
                "description": "Find notes.",
                "readOnly": True,
                "inputSchema": _schema(q="words"),
            },
            {"name": "add_note", "description": "Add a note.", "inputSchema": _schema(text="the note")},
            {"name": "delete_all", "description": "Delete every note.", "inputSchema": _schema()},
        ]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _app(self) -> Starlette:
        def authorised(request: Request) -> bool:
            return request.headers.get("authorization") == f"Bearer {self.token}"

        async def tools(request: Request) -> JSONResponse:
            if not authorised(request):
                return JSONResponse({"error": "unauthorised"}, status_code=401)
            return JSONResponse(self.tools)

        async def call(request: Request) -> JSONResponse:
            if not authorised(request):
                return JSONResponse({"error": "unauthorised"}, status_code=401)
            name, args = request.path_params["name"], await request.json()
            with self._lock:
                self.calls.append((name, args))
                if name == "search":
                    hits = [n for n in self.notes if args["q"].lower() in n.lower()]
                    return JSONResponse({"text": "\n".join(hits) or "no notes match", "hits": hits})
                if name == "add_note":
                    self.notes.append(args["text"])
                    return JSONResponse({"text": f"added note {len(self.notes)}"})
                if name == "delete_all":
                    self.notes.clear()
                    return JSONResponse({"text": "deleted"})
            return JSONResponse({"error": f"no tool {name}"}, status_code=404)

        return Starlette(
            routes=[Route("/tools", tools, methods=["GET"]), Route("/call/{name}", call, methods=["POST"])]
        )
