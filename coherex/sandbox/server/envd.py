"""envd's Connect-RPC services (process, filesystem) for the local boxes.

The message types and ASGI stubs are the ones generated for the E2B SDK (they ship in the `e2b`
package): the server speaks exactly the protocol of the pinned SDK. Only this module of the
server imports them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable

from connectrpc.code import Code
from connectrpc.errors import ConnectError
from e2b.envd.filesystem import filesystem_connect, filesystem_pb
from e2b.envd.process import process_connect, process_pb
from protobuf import Oneof
from protobuf.wkt import Timestamp

from coherex.sandbox.errors import SandboxNotFound
from coherex.sandbox.server.boxes import Box

BoxLookup = Callable[[object], Box]  # request context -> the box it is addressed to


def _box(lookup: BoxLookup, ctx: object) -> Box:
    try:
        return lookup(ctx)
    except SandboxNotFound as exc:
        raise ConnectError(Code.NOT_FOUND, str(exc)) from None


def _fail(msg: dict) -> ConnectError:
    if msg["type"] == "dead":
        return ConnectError(Code.UNAVAILABLE, msg["error"])
    code = {"not_found": Code.NOT_FOUND, "exists": Code.ALREADY_EXISTS}.get(msg.get("kind"), Code.INVALID_ARGUMENT)
    return ConnectError(code, msg.get("error", "failed"))


async def _ok(box: Box, op: str, **kw: object) -> dict:
    try:
        msg = await box.request(op, **kw)
    except SandboxNotFound as exc:
        raise ConnectError(Code.UNAVAILABLE, str(exc)) from None
    if msg["type"] != "ok":
        raise _fail(msg)
    return msg


class ProcessService(process_connect.Process):
    def __init__(self, lookup: BoxLookup):
        self._lookup = lookup

    async def start(self, request: process_pb.StartRequest, ctx) -> AsyncIterator[process_pb.StartResponse]:
        box = _box(self._lookup, ctx)
        cfg = request.process
        Event = process_pb.ProcessEvent
        # envd ends a command at the request's deadline (the SDK's `timeout`): kill it there
        timeout_ms = ctx.timeout_ms
        deadline = asyncio.get_running_loop().time() + timeout_ms / 1000 if timeout_ms else None
        pid = None
        try:
            async with contextlib.aclosing(box.stream(
                    "proc_start", cmd=cfg.cmd, args=list(cfg.args), envs=dict(cfg.envs),
                    cwd=cfg.cwd if cfg.has_field("cwd") else None, stdin=request.stdin)) as messages:
                while True:
                    left = None if deadline is None else deadline - asyncio.get_running_loop().time()
                    try:
                        msg = await asyncio.wait_for(anext(messages), left)
                    except StopAsyncIteration:
                        return
                    except asyncio.TimeoutError:
                        if pid is not None:
                            with contextlib.suppress(Exception):
                                await box.request("proc_signal", pid=pid, signal=9)
                        raise ConnectError(Code.DEADLINE_EXCEEDED,
                                           f"the command did not finish within {timeout_ms / 1000:g} s") from None
                    kind = msg["type"]
                    if kind == "start":
                        pid = msg["pid"]
                        event = Oneof("start", Event.StartEvent(pid=pid))
                    elif kind in ("stdout", "stderr"):
                        event = Oneof("data", Event.DataEvent(output=Oneof(kind, base64.b64decode(msg["data"]))))
                    elif kind == "end":
                        event = Oneof("end", Event.EndEvent(exit_code=msg["exit_code"], exited=True,
                                                            status=msg["status"]))
                    elif kind == "dead":
                        raise ConnectError(Code.UNAVAILABLE, f"The sandbox {box.id} was not found: {msg['error']}")
                    else:
                        raise _fail(msg)
                    yield process_pb.StartResponse(event=Event(event=event))
        except SandboxNotFound as exc:
            raise ConnectError(Code.UNAVAILABLE, str(exc)) from None

    async def list(self, request: process_pb.ListRequest, ctx) -> process_pb.ListResponse:
        msg = await _ok(_box(self._lookup, ctx), "proc_list")
        return process_pb.ListResponse(processes=[
            process_pb.ProcessInfo(pid=p["pid"], config=process_pb.ProcessConfig(cmd=p["cmd"], args=p["args"]))
            for p in msg["procs"]])

    async def send_signal(self, request: process_pb.SendSignalRequest, ctx) -> process_pb.SendSignalResponse:
        pid = request.process.selector.value
        await _ok(_box(self._lookup, ctx), "proc_signal", pid=pid, signal=int(request.signal.value))
        return process_pb.SendSignalResponse()

    async def send_input(self, request: process_pb.SendInputRequest, ctx) -> process_pb.SendInputResponse:
        data = request.input.input.value if request.input and request.input.input else b""
        await _ok(_box(self._lookup, ctx), "proc_input", pid=request.process.selector.value,
                  data=base64.b64encode(data).decode())
        return process_pb.SendInputResponse()

    async def close_stdin(self, request: process_pb.CloseStdinRequest, ctx) -> process_pb.CloseStdinResponse:
        await _ok(_box(self._lookup, ctx), "proc_close_stdin", pid=request.process.selector.value)
        return process_pb.CloseStdinResponse()


def entry_info(e: dict) -> filesystem_pb.EntryInfo:
    kinds = {"file": filesystem_pb.FileType.FILE, "dir": filesystem_pb.FileType.DIRECTORY,
             "symlink": filesystem_pb.FileType.SYMLINK}
    return filesystem_pb.EntryInfo(
        name=e["name"], type=kinds[e["type"]], path=e["path"], size=e["size"], mode=e["mode"],
        permissions=e["permissions"], owner="user", group="user",
        modified_time=Timestamp.from_nanos(int(e["modified"] * 1e9)),
        symlink_target=e["symlink_target"], is_symlink=e["type"] == "symlink",
    )


class FilesystemService(filesystem_connect.Filesystem):
    def __init__(self, lookup: BoxLookup):
        self._lookup = lookup

    async def list_dir(self, request: filesystem_pb.ListDirRequest, ctx) -> filesystem_pb.ListDirResponse:
        msg = await _ok(_box(self._lookup, ctx), "list", path=request.path, depth=request.depth or 1)
        return filesystem_pb.ListDirResponse(entries=[entry_info(e) for e in msg["entries"]])

    async def stat(self, request: filesystem_pb.StatRequest, ctx) -> filesystem_pb.StatResponse:
        msg = await _ok(_box(self._lookup, ctx), "stat", path=request.path)
        return filesystem_pb.StatResponse(entry=entry_info(msg["entry"]))

    async def make_dir(self, request: filesystem_pb.MakeDirRequest, ctx) -> filesystem_pb.MakeDirResponse:
        msg = await _ok(_box(self._lookup, ctx), "mkdir", path=request.path)
        return filesystem_pb.MakeDirResponse(entry=entry_info(msg["entry"]))

    async def move(self, request: filesystem_pb.MoveRequest, ctx) -> filesystem_pb.MoveResponse:
        msg = await _ok(_box(self._lookup, ctx), "move", path=request.source, destination=request.destination)
        return filesystem_pb.MoveResponse(entry=entry_info(msg["entry"]))

    async def remove(self, request: filesystem_pb.RemoveRequest, ctx) -> filesystem_pb.RemoveResponse:
        await _ok(_box(self._lookup, ctx), "remove", path=request.path)
        return filesystem_pb.RemoveResponse()


def asgi_apps(lookup: BoxLookup) -> dict[str, object]:
    """Path prefix -> Connect ASGI app."""
    process = process_connect.ProcessASGIApplication(ProcessService(lookup))
    files = filesystem_connect.FilesystemASGIApplication(FilesystemService(lookup))
    return {process.path: process, files.path: files}
