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
import datetime
import email.parser
import email.policy
import hashlib
import hmac
import json
import logging
import re
import time
import urllib.parse
import uuid
from typing import Any

from coherex.sandbox.errors import SandboxNotFound, SandboxUnavailable
from coherex.sandbox.server import envd
from coherex.sandbox.server.boxes import Box, BoxFactory, BoxStopped

log = logging.getLogger(__name__)

JUPYTER_PORT, ENVD_PORT = "49999", "49983"
# newest envd feature set this server implements (see e2b/envd/versions.py): default user, stdin,
# close, octet-stream uploads, file metadata (0.6.2), watch-event entries (0.6.3), watching with
# network mounts allowed (0.6.4: the box has no network mounts, the flag changes nothing)
ENVD_VERSION = "0.6.4"
# code-context languages: what the SDK may send -> the context language
LANGUAGES = {
    "python": "python",
    "py": "python",
    "javascript": "javascript",
    "js": "javascript",
    "bash": "bash",
    "sh": "bash",
    "shell": "bash",
}
MAX_BODY = 100 << 20
MAX_TIMEOUT_S = 24 * 3600

Scope = dict[str, Any]


class StreamAborted(Exception):
    """Raised out of the ASGI app to cut a response mid-stream (the client sees a broken stream)."""


class QuietAborts(logging.Filter):
    """The HTTP server logs an exception leaving the app with its traceback; a StreamAborted is
    intended (logged as one line where it is raised), so its record is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], StreamAborted))


def _unknown_language(language: object) -> str:
    return (
        f"language {language!r} is not available in the local sandbox: use one of python, javascript "
        "(js) or bash"
    )


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
                    box.stopped_by_api = True
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
            elif scope["path"] == "/files" and b"signature=" in scope["query_string"]:
                await self._signed_files(scope, receive, send)
            else:
                await self._control(scope, headers, receive, send)
        except StreamAborted:
            raise  # the server closes the connection mid-stream, as E2B's proxy does for a killed box
        except Exception:
            log.exception("sandbox server error")
            with contextlib.suppress(Exception):
                await respond(
                    send, 500, {"message": "internal error in the local sandbox server", "code": 500}
                )

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
            await respond(
                send, 200, {"status": "ok", "sandboxes": len(self.boxes), **self.factory.describe()}
            )
        elif method == "POST" and path in ("/sandboxes", "/v2/sandboxes"):
            await self._create(await read_json(receive), send)
        elif method == "GET" and path in ("/v2/sandboxes", "/sandboxes"):
            await self._list(scope, send)
        elif m := re.fullmatch(r"/(?:v2/)?sandboxes/([\w-]+)/(timeout|connect|pause|resume|refreshes)", path):
            box = self.boxes.get(m[1])
            body = await read_json(receive)
            timeout = body.get("timeout", 300 if m[2] == "connect" else None)
            if box is None or not box.alive:
                await respond(send, 404, {"message": f"sandbox {m[1]} not found", "code": 404})
            elif m[2] in ("pause", "resume"):
                await respond(
                    send,
                    501,
                    {
                        "message": f"the local sandbox cannot {m[2]} sandboxes (an E2B cloud feature)",
                        "code": 501,
                    },
                )
            elif m[2] == "refreshes":
                box.expires_at = max(box.expires_at, time.time() + int(body.get("duration") or 60))
                await respond(send, 204, None)
            elif not isinstance(timeout, int) or not 0 < timeout <= MAX_TIMEOUT_S:
                await respond(
                    send, 400, {"message": f"timeout must be 1..{MAX_TIMEOUT_S} seconds", "code": 400}
                )
            elif m[2] == "timeout":
                box.expires_at = time.time() + timeout
                await respond(send, 204, None)
            else:  # connect to a running sandbox: it lives at least `timeout` more seconds
                box.expires_at = max(box.expires_at, time.time() + timeout)
                await respond(
                    send,
                    200,
                    self._info(box) | {"envdAccessToken": box.token, "trafficAccessToken": box.token},
                )
        elif m := re.fullmatch(r"/(?:v2/)?sandboxes/([\w-]+)", path):
            box = self.boxes.get(m[1])
            if box is None or not box.alive:
                await respond(send, 404, {"message": f"sandbox {m[1]} not found", "code": 404})
            elif method == "DELETE":
                self.boxes.pop(box.id, None)
                box.stopped_by_api = True
                await box.kill()
                await respond(send, 204, None)
            else:
                await respond(send, 200, self._info(box))
        else:
            await respond(
                send, 404, {"message": f"{method} {path} is not part of the local sandbox API", "code": 404}
            )

    async def _list(self, scope: Scope, send) -> None:
        """E2B's list: `metadata` is a urlencoded `k=v&...` filter, `state` a comma list,
        pages of `limit` continue at the `x-next-token` header."""
        query = urllib.parse.parse_qs(scope["query_string"].decode())
        wanted = dict(urllib.parse.parse_qsl((query.get("metadata") or [""])[0]))
        wanted = {urllib.parse.unquote(k): urllib.parse.unquote(v) for k, v in wanted.items()}
        states = {x for v in query.get("state", []) for x in v.split(",") if x}
        try:
            limit = int((query.get("limit") or ["100"])[0])
            start = int((query.get("nextToken") or ["0"])[0])
        except ValueError:
            await respond(send, 400, {"message": "`limit` and `nextToken` must be integers", "code": 400})
            return
        try:
            after = (query.get("startedAfter") or [""])[0]
            after_ts = (
                datetime.datetime.fromisoformat(after.replace("Z", "+00:00")).timestamp() if after else None
            )
        except ValueError:
            await respond(send, 400, {"message": "`startedAfter` must be an RFC 3339 time", "code": 400})
            return
        template = (query.get("template") or [""])[0]
        boxes = sorted((b for b in self.boxes.values() if b.alive), key=lambda b: (b.started_at, b.id))
        if (query.get("order") or ["desc"])[0] != "asc":  # E2B lists the newest first
            boxes.reverse()
        boxes = [
            b
            for b in boxes
            if all(b.metadata.get(k) == v for k, v in wanted.items())
            and (not states or "running" in states)
            and (after_ts is None or b.started_at >= after_ts)
            and (not template or b.template == template)
        ]
        page = boxes[start : start + max(1, limit)]
        more = start + len(page) < len(boxes)
        body = json.dumps([self._info(b) for b in page]).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if more:
            headers.append((b"x-next-token", str(start + len(page)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

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
        box.started_at = time.time()  # when it was asked for, not when the pool made it
        box.template = str(body.get("templateID") or box.template)
        box.metadata = {str(k): str(v) for k, v in dict(body.get("metadata") or {}).items()}
        box.allow_network = allow_network
        box.envs = envs
        box.expires_at = time.time() + timeout
        self.boxes[box.id] = box
        await respond(
            send, 201, self._info(box) | {"envdAccessToken": box.token, "trafficAccessToken": box.token}
        )

    def _info(self, box: Box) -> dict:
        return {
            "templateID": box.template,
            "sandboxID": box.id,
            "clientID": "local",
            "envdVersion": ENVD_VERSION,
            "metadata": box.metadata,
            "domain": None,
            "startedAt": _iso(box.started_at),
            "endAt": _iso(box.expires_at),
            "state": "running" if box.alive else "killed",
            "cpuCount": max(1, int(box.limits.cpus)),
            "memoryMB": box.limits.memory_bytes >> 20,
            "diskSizeMB": box.limits.disk_bytes >> 20,
            "allowInternetAccess": box.allow_network,
        }

    # --- gateway --------------------------------------------------------------------------------

    def _box(self, box_id: str) -> Box:
        box = self.boxes.get(box_id)
        if box is None or not box.alive:
            reason = box.dead_reason if box is not None else "it does not exist or was killed"
            # "was not found" is the phrase of E2B's proxy the SDK maps to SandboxNotRunningException
            raise SandboxNotFound(f"The sandbox {box_id} was not found: it is not running ({reason})")
        return box

    def _box_for_rpc(self, ctx: Any) -> Box:
        return self._box(ctx.request_headers.get("e2b-sandbox-id", ""))

    async def _gateway(self, scope: Scope, headers: dict, receive, send) -> None:
        try:
            box = self._box(headers["e2b-sandbox-id"])
        except SandboxNotFound as exc:
            # 502 is what E2B's proxy answers for a sandbox that is gone; the SDK knows it
            await respond(
                send, 502, {"message": str(exc), "code": 502, "sandboxId": headers["e2b-sandbox-id"]}
            )
            return
        token = headers.get("x-access-token") or headers.get("e2b-traffic-access-token") or ""
        if not hmac.compare_digest(token, box.token):
            await respond(send, 401, {"message": "invalid access token for this sandbox", "code": 401})
            return
        port, path, method = headers.get("e2b-sandbox-port"), scope["path"], scope["method"]
        if port == JUPYTER_PORT:
            if method == "POST" and path == "/execute":
                await self._execute(box, await read_json(receive), receive, send)
            elif path.startswith("/contexts"):
                await self._contexts(box, method, path, await read_json(receive), send)
            else:
                await respond(
                    send,
                    404,
                    {"message": f"{method} {path}: not supported by the local sandbox", "code": 404},
                )
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

    async def _contexts(self, box: Box, method: str, path: str, body: dict, send) -> None:
        """Code contexts: each its own namespace (Python) or REPL (JavaScript) in the box."""
        m = re.fullmatch(r"/contexts(?:/([\w-]+)(/restart)?)?", path)
        ctx_id = m and m[1]
        if m is None or (ctx_id is None and method not in ("GET", "POST")):
            await respond(
                send, 404, {"message": f"{method} {path}: not supported by the local sandbox", "code": 404}
            )
        elif ctx_id is None and method == "GET":
            await respond(send, 200, list(box.contexts.values()))
        elif ctx_id is None:
            language = LANGUAGES.get(str(body.get("language") or "python").lower())
            if language is None:
                await respond(send, 400, {"message": _unknown_language(body.get("language")), "code": 400})
                return
            ctx = {"id": uuid.uuid4().hex, "language": language, "cwd": str(body.get("cwd") or "/home/user")}
            await self._ok(box, send, "ctx_create", ctx, id=ctx["id"], language=language, cwd=ctx["cwd"])
        elif ctx_id not in box.contexts:
            await respond(send, 404, {"message": f"context {ctx_id} not found", "code": 404})
        elif m[2] and method == "POST":
            await self._ok(box, send, "ctx_restart", None, id=ctx_id)
        elif not m[2] and method == "DELETE":
            await self._ok(box, send, "ctx_remove", None, id=ctx_id)
        else:
            await respond(send, 405, {"message": f"{method} {path} is not allowed", "code": 405})

    async def _ok(self, box: Box, send, op: str, ctx: dict | None, **kw: Any) -> None:
        msg = await box.request(op, **kw)
        if msg["type"] != "ok":
            await respond(send, 400, {"message": msg.get("error"), "code": 400})
        elif op == "ctx_create":
            box.contexts[kw["id"]] = ctx
            await respond(send, 200, ctx)
        else:
            if op == "ctx_remove":
                box.contexts.pop(kw["id"], None)
            await respond(send, 204, None)

    async def _execute(self, box: Box, body: dict, receive, send) -> None:
        code = body.get("code")
        if not isinstance(code, str):
            await respond(send, 400, {"message": "`code` must be a string", "code": 400})
            return
        ctx_id, language = body.get("context_id"), body.get("language")
        if ctx_id and language:
            await respond(
                send, 400, {"message": "give either `context_id` or `language`, not both", "code": 400}
            )
            return
        if ctx_id:
            if ctx_id not in box.contexts:
                await respond(send, 404, {"message": f"context {ctx_id} not found", "code": 404})
                return
        else:
            lang = LANGUAGES.get(str(language or "python").lower())
            if lang is None:
                await respond(send, 400, {"message": _unknown_language(language), "code": 400})
                return
            ctx_id = "default" if lang == "python" else f"default-{lang}"
            if ctx_id not in box.contexts or not box.default_started.get(ctx_id):
                msg = await box.request("ctx_create", id=ctx_id, language=lang, cwd="/home/user")
                if msg["type"] != "ok":
                    await respond(send, 500, {"message": msg.get("error"), "code": 500})
                    return
                box.default_started[ctx_id] = True
                box.contexts.setdefault(ctx_id, {"id": ctx_id, "language": lang, "cwd": "/home/user"})
        body["context_id"] = ctx_id
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/x-ndjson")],
            }
        )

        async def pump() -> None:
            async with contextlib.aclosing(box.execute(code, body.get("env_vars"), ctx_id)) as messages:
                async for msg in messages:
                    msg.pop("ch", None)
                    await send(
                        {
                            "type": "http.response.body",
                            "body": json.dumps(msg).encode() + b"\n",
                            "more_body": True,
                        }
                    )

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
            if isinstance(t.exception(), BoxStopped):
                log.info("cut the output stream of a cell: %s", t.exception())
                raise StreamAborted(str(t.exception()))
            t.result()
        if tasks[0] in done:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _signed_files(self, scope: Scope, receive, send) -> None:
        """A signed file URL (`download_url`/`upload_url`) names no sandbox: the signature, made with
        one sandbox's envd token, says which one (E2B's v1 scheme, e2b/sandbox/signature.py)."""
        query = dict(urllib.parse.parse_qsl(scope["query_string"].decode()))
        operation = "read" if scope["method"] == "GET" else "write"
        expiration = query.get("signature_expiration")
        if expiration and (not expiration.isdigit() or int(expiration) < time.time()):
            # envd's own words for it
            await respond(send, 401, {"message": "signature is already expired", "code": 401})
            return
        for box in list(self.boxes.values()):
            raw = f"{query.get('path', '')}:{operation}:{query.get('username', '')}:{box.token}"
            raw += f":{expiration}" if expiration else ""
            want = "v1_" + base64.b64encode(hashlib.sha256(raw.encode()).digest()).rstrip(b"=").decode()
            if box.alive and hmac.compare_digest(want, query.get("signature", "")):
                await self._files(box, scope, receive, send)
                return
        await respond(send, 401, {"message": "invalid signature for a sandbox file URL", "code": 401})

    async def _files(self, box: Box, scope: Scope, receive, send) -> None:
        query = urllib.parse.parse_qs(scope["query_string"].decode())
        path = (query.get("path") or [""])[0]
        if scope["method"] == "GET":
            if not path:
                await respond(send, 400, {"message": "the `path` query parameter is required", "code": 400})
                return
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
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if headers.get("content-encoding") == "gzip":
            import gzip

            try:
                body = gzip.decompress(body)
            except (OSError, EOFError):
                await respond(send, 400, {"message": "the upload is not valid gzip", "code": 400})
                return
        ctype = headers.get("content-type", "")
        # multipart: one file per part, named by `path` or (several files) by each part's filename
        files = _multipart_files(ctype, body) if ctype.startswith("multipart/") else [(path, body)]
        files = [(path or name, data) for name, data in files] if len(files) == 1 else files
        if not files or not all(name for name, _ in files):
            await respond(
                send,
                400,
                {
                    "message": "each uploaded file needs a path (the `path` query parameter "
                    "or the multipart filename)",
                    "code": 400,
                },
            )
            return
        # user metadata, kept by the box as the file's `user.e2b.*` extended attributes (as envd does)
        metadata = {k[len("x-metadata-") :]: v for k, v in headers.items() if k.startswith("x-metadata-")}
        written = []
        for name, data in files:
            msg = await box.request(
                "write", path=name, data=base64.b64encode(data).decode(), metadata=metadata
            )
            if msg["type"] != "ok":
                await respond(send, 400, {"message": msg.get("error"), "code": 400})
                return
            entry = msg["entry"]
            written.append(
                {
                    "name": entry["name"],
                    "type": "file",
                    "path": entry["path"],
                    **({"metadata": entry["metadata"]} if entry["metadata"] else {}),
                }
            )
        await respond(send, 200, written)


def _multipart_files(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    return [(part.get_filename() or "", part.get_payload(decode=True) or b"") for part in msg.iter_parts()]


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
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
