"""The local E2B-compatible server as one ASGI app: control plane + sandbox gateway.

Requests carrying an `E2b-Sandbox-Id` header go to that box: port 49999 (`E2b-Sandbox-Port`) is
the Jupyter-style code API (`POST /execute` streams NDJSON), port 49983 is envd (Connect-RPC
process/filesystem services, HTTP `/files`, `/health`). Everything else is the control plane
(`/v2/sandboxes`, `/sandboxes/{id}/timeout`, `DELETE /sandboxes/{id}`, `/health`), which
requires the server's API key in `X-API-KEY`, as E2B's API does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.parser
import email.policy
import hmac
import json
import logging
import re
import time
import urllib.parse
from typing import Any

from coherex.sandbox.errors import SandboxNotFound, SandboxUnavailable
from coherex.sandbox.server import envd
from coherex.sandbox.server.boxes import Box, BoxFactory

log = logging.getLogger(__name__)

JUPYTER_PORT, ENVD_PORT = "49999", "49983"
ENVD_VERSION = "0.4.0"  # newest envd feature set this server implements (see e2b/envd/versions.py)
MAX_BODY = 100 << 20
MAX_TIMEOUT_S = 24 * 3600

Scope = dict[str, Any]


class SandboxServer:
    def __init__(self, api_key: str, factory: BoxFactory):
        self.api_key = api_key
        self.factory = factory
        self.boxes: dict[str, Box] = {}
        self._connect_apps = envd.asgi_apps(self._box_for_rpc)
        self._reaper: asyncio.Task | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    async def startup(self) -> None:
        self.factory.start()
        self._reaper = asyncio.create_task(self._reap_expired())

    async def shutdown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        await asyncio.gather(*(box.kill() for box in self.boxes.values()))
        self.boxes.clear()
        await self.factory.close()

    async def _reap_expired(self) -> None:
        """A box lives until its timeout (E2B semantics); dead boxes are forgotten."""
        while True:
            await asyncio.sleep(0.5)
            now = time.time()
            for box in list(self.boxes.values()):
                if box.expires_at <= now and box.alive:
                    box.dead_reason = "the sandbox reached its timeout"
                    await box.kill()
                if not box.alive:
                    self.boxes.pop(box.id, None)

    # --- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            if "e2b-sandbox-id" in headers:
                await self._gateway(scope, headers, receive, send)
            else:
                await self._control(scope, headers, receive, send)
        except Exception:
            log.exception("sandbox server error")
            with contextlib.suppress(Exception):
                await respond(send, 500, {"message": "internal error in the local sandbox server", "code": 500})

    async def _lifespan(self, receive, send) -> None:
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- control plane --------------------------------------------------------------------------

    async def _control(self, scope: Scope, headers: dict, receive, send) -> None:
        method, path = scope["method"], scope["path"]
        if not hmac.compare_digest(headers.get("x-api-key", ""), self.api_key):
            await respond(send, 401, {"message": "invalid API key for the local sandbox server", "code": 401})
            return
        if method == "GET" and path == "/health":
            await respond(send, 200, {"status": "ok", "sandboxes": len(self.boxes), **self.factory.describe()})
        elif method == "POST" and path == "/v2/sandboxes":
            await self._create(await read_json(receive), send)
        elif m := re.fullmatch(r"/sandboxes/([\w-]+)/timeout", path):
            box = self.boxes.get(m[1])
            body = await read_json(receive)
            timeout = body.get("timeout")
            if box is None or not box.alive:
                await respond(send, 404, {"message": f"sandbox {m[1]} not found", "code": 404})
            elif not isinstance(timeout, int) or not 0 < timeout <= MAX_TIMEOUT_S:
                await respond(send, 400, {"message": f"timeout must be 1..{MAX_TIMEOUT_S} seconds", "code": 400})
            else:
                box.expires_at = time.time() + timeout
                await respond(send, 204, None)
        elif m := re.fullmatch(r"/sandboxes/([\w-]+)", path):
            box = self.boxes.get(m[1])
            if box is None:
                await respond(send, 404, {"message": f"sandbox {m[1]} not found", "code": 404})
            elif method == "DELETE":
                self.boxes.pop(box.id, None)
                await box.kill()
                await respond(send, 204, None)
            else:
                await respond(send, 200, self._info(box))
        else:
            await respond(send, 404, {"message": f"{method} {path} is not part of the local sandbox API", "code": 404})

    async def _create(self, body: dict, send) -> None:
        timeout = body.get("timeout", 300)
        envs = body.get("envVars") or {}
        if not isinstance(timeout, int) or not 0 < timeout <= MAX_TIMEOUT_S:
            await respond(send, 400, {"message": f"timeout must be 1..{MAX_TIMEOUT_S} seconds", "code": 400})
            return
        if not isinstance(envs, dict) or not all(isinstance(v, str) for v in envs.values()):
            await respond(send, 400, {"message": "envVars must map names to strings", "code": 400})
            return
        allow_network = body.get("allow_internet_access") is True
        try:
            box = await self.factory.acquire(allow_network=allow_network)
        except SandboxUnavailable as exc:
            await respond(send, 503, {"message": str(exc), "code": 503})
            return
        if envs:
            await box.request("env", envs=envs)
        box.template = str(body.get("templateID") or box.template)
        box.metadata = dict(body.get("metadata") or {})
        box.envs = envs
        box.expires_at = time.time() + timeout
        self.boxes[box.id] = box
        await respond(send, 201, self._info(box) | {"envdAccessToken": box.token, "trafficAccessToken": box.token})

    def _info(self, box: Box) -> dict:
        return {"templateID": box.template, "sandboxID": box.id, "clientID": "local",
                "envdVersion": ENVD_VERSION, "metadata": box.metadata, "domain": None,
                "startedAt": _iso(box.started_at), "endAt": _iso(box.expires_at),
                "state": "running" if box.alive else "killed", "cpuCount": int(box.limits.cpus),
                "memoryMB": box.limits.memory_bytes >> 20}

    # --- gateway --------------------------------------------------------------------------------

    def _box(self, box_id: str) -> Box:
        box = self.boxes.get(box_id)
        if box is None or not box.alive:
            reason = box.dead_reason if box is not None else "it does not exist or was killed"
            raise SandboxNotFound(f"sandbox {box_id} is not running: {reason}")
        return box

    def _box_for_rpc(self, ctx: Any) -> Box:
        return self._box(ctx.request_headers.get("e2b-sandbox-id", ""))

    async def _gateway(self, scope: Scope, headers: dict, receive, send) -> None:
        try:
            box = self._box(headers["e2b-sandbox-id"])
        except SandboxNotFound as exc:
            # 502 is what E2B's proxy answers for a sandbox that is gone; the SDK knows it
            await respond(send, 502, {"message": str(exc), "code": 502, "sandboxId": headers["e2b-sandbox-id"]})
            return
        token = headers.get("x-access-token") or headers.get("e2b-traffic-access-token") or ""
        if not hmac.compare_digest(token, box.token):
            await respond(send, 401, {"message": "invalid access token for this sandbox", "code": 401})
            return
        port, path, method = headers.get("e2b-sandbox-port"), scope["path"], scope["method"]
        if port == JUPYTER_PORT:
            if method == "POST" and path == "/execute":
                await self._execute(box, await read_json(receive), receive, send)
            elif path == "/contexts":
                ctx = {"id": "default", "language": "python", "cwd": "/home/user"}
                await respond(send, 200, [ctx] if method == "GET" else ctx)
            else:
                await respond(send, 404, {"message": f"{method} {path}: not supported by the local sandbox", "code": 404})
        elif port == ENVD_PORT:
            if path == "/health":
                await respond(send, 204, None)
            elif path == "/files":
                await self._files(box, scope, receive, send)
            elif app := self._connect_apps.get("/" + path.strip("/").split("/")[0]):
                await app(scope, receive, send)
            else:
                await respond(send, 404, {"message": f"{path} is not an envd endpoint", "code": 404})
        else:
            await respond(send, 502, {"message": f"port {port} is not open in sandbox {box.id}", "code": 502})

    async def _execute(self, box: Box, body: dict, receive, send) -> None:
        code = body.get("code")
        if not isinstance(code, str):
            await respond(send, 400, {"message": "`code` must be a string", "code": 400})
            return
        if body.get("language") not in (None, "python") or body.get("context_id") not in (None, "default"):
            await respond(send, 400, {"message": "the local sandbox runs Python in its default context only",
                                      "code": 400})
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/x-ndjson")]})

        async def pump() -> None:
            async with contextlib.aclosing(box.execute(code, body.get("env_vars"))) as messages:
                async for msg in messages:
                    msg.pop("ch", None)
                    await send({"type": "http.response.body", "body": json.dumps(msg).encode() + b"\n",
                                "more_body": True})

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        # A client that goes away (its timeout) must stop the code: cancelling `pump` closes
        # `box.execute`, which interrupts the cell.
        tasks = [asyncio.create_task(pump()), asyncio.create_task(disconnected())]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for t in done:
            t.result()
        if tasks[0] in done:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _files(self, box: Box, scope: Scope, receive, send) -> None:
        query = urllib.parse.parse_qs(scope["query_string"].decode())
        path = (query.get("path") or [""])[0]
        if not path:
            await respond(send, 400, {"message": "the `path` query parameter is required", "code": 400})
            return
        if scope["method"] == "GET":
            msg = await box.request("read", path=path)
            if msg["type"] != "ok":
                status = 404 if msg.get("kind") == "not_found" else 400
                await respond(send, status, {"message": msg.get("error"), "code": status})
                return
            await respond_bytes(send, 200, base64.b64decode(msg["data"]), "application/octet-stream")
            return
        body = await read_body(receive)
        if body is None:
            await respond(send, 413, {"message": f"upload larger than {MAX_BODY >> 20} MiB", "code": 413})
            return
        ctype = dict(scope["headers"]).get(b"content-type", b"").decode()
        data = _multipart_file(ctype, body) if ctype.startswith("multipart/") else body
        msg = await box.request("write", path=path, data=base64.b64encode(data).decode())
        if msg["type"] != "ok":
            await respond(send, 400, {"message": msg.get("error"), "code": 400})
            return
        entry = msg["entry"]
        await respond(send, 200, [{"name": entry["name"], "type": "file", "path": entry["path"]}])


def _multipart_file(content_type: str, body: bytes) -> bytes:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    for part in msg.iter_parts():
        return part.get_payload(decode=True) or b""
    return b""


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


async def read_body(receive) -> bytes | None:
    chunks, size = [], 0
    while True:
        event = await receive()
        chunk = event.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not event.get("more_body"):
            return b"".join(chunks)


async def read_json(receive) -> dict:
    body = await read_body(receive)
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = {}
    return data if isinstance(data, dict) else {}


async def respond(send, status: int, payload: Any) -> None:
    if payload is None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await respond_bytes(send, status, json.dumps(payload).encode(), "application/json")


async def respond_bytes(send, status: int, body: bytes, content_type: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
