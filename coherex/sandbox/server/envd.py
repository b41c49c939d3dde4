"""envd's Connect-RPC services (process, filesystem) for the local boxes.

The message types and ASGI stubs are the ones generated for the E2B SDK (they ship in the `e2b`
package): the server speaks exactly the protocol of the pinned SDK. Only this module of the
server imports them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
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
    code = {"not_found": Code.NOT_FOUND, "exists": Code.ALREADY_EXISTS}.get(
        msg.get("kind"), Code.INVALID_ARGUMENT
    )
    return ConnectError(code, msg.get("error", "failed"))


async def _ok(box: Box, op: str, **kw: object) -> dict:
    try:
        msg = await box.request(op, **kw)
    except SandboxNotFound as exc:
        raise ConnectError(Code.UNAVAILABLE, str(exc)) from None
    if msg["type"] != "ok":
        raise _fail(msg)
    return msg


class _Process:
    """One command of a box. Its output is pumped by a task of its own, so that it goes on when the
    client that started it goes away, and `Connect` can attach more listeners (envd semantics)."""

    def __init__(self, box: Box, messages: AsyncIterator[dict], tag: str | None):
        self.box, self.tag, self.pid = box, tag, None
        self.listeners: list[asyncio.Queue] = []
        self.started = asyncio.get_running_loop().create_future()
        self._messages = messages
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for msg in self._messages:
                if msg["type"] == "start":
                    self.pid = msg["pid"]
                    self.box.procs[self.pid] = self
                    self.started.set_result(self.pid)
                    continue
                for q in list(self.listeners):
                    q.put_nowait(msg)
                if msg["type"] in ("end", "fail", "dead"):
                    break
        except SandboxNotFound as exc:
            for q in list(self.listeners):
                q.put_nowait({"type": "dead", "error": str(exc)})
        finally:
            if not self.started.done():
                self.started.set_result(None)
            if self.pid is not None:
                self.box.procs.pop(self.pid, None)
            for q in list(self.listeners):
                q.put_nowait(None)

    def listen(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue()
        self.listeners.append(q)
        return q

    async def events(
        self, q: asyncio.Queue, timeout_ms: float | None
    ) -> AsyncIterator[process_pb.ProcessEvent]:
        """The start event, then output until the end. Past the request's deadline the command is
        killed, as envd does (the SDK's `timeout`)."""
        Event = process_pb.ProcessEvent
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000 if timeout_ms else None
        try:
            yield Event(event=Oneof("start", Event.StartEvent(pid=self.pid)))
            while True:
                try:
                    msg = await asyncio.wait_for(
                        q.get(), None if deadline is None else deadline - loop.time()
                    )
                except TimeoutError:
                    with contextlib.suppress(Exception):
                        await self.box.request("proc_signal", pid=self.pid, signal=9)
                    raise ConnectError(
                        Code.DEADLINE_EXCEEDED,
                        f"the command did not finish within {round(timeout_ms / 1000, 1):g} s",
                    ) from None
                if msg is None:
                    return
                kind = msg["type"]
                if kind in ("stdout", "stderr", "pty"):
                    yield Event(
                        event=Oneof(
                            "data", Event.DataEvent(output=Oneof(kind, base64.b64decode(msg["data"])))
                        )
                    )
                elif kind == "end":
                    yield Event(
                        event=Oneof(
                            "end",
                            Event.EndEvent(exit_code=msg["exit_code"], exited=True, status=msg["status"]),
                        )
                    )
                    return
                elif kind == "dead":
                    # E2B's words: "was not found" (its proxy's 502, which newer SDKs map to
                    # SandboxNotRunningException) and what older SDKs say after their health probe
                    raise ConnectError(
                        Code.UNAVAILABLE,
                        f"The sandbox {self.box.id} was not found: the sandbox was killed or reached its "
                        f"end of life while the request was in flight ({msg['error']})",
                    )
                else:
                    raise _fail(msg)
        finally:
            with contextlib.suppress(ValueError):
                self.listeners.remove(q)


def _find(box: Box, selector) -> _Process:
    kind, value = (
        (selector.selector.field, selector.selector.value) if selector and selector.selector else (None, None)
    )
    for proc in box.procs.values():
        if (kind == "pid" and proc.pid == value) or (kind == "tag" and proc.tag == value):
            return proc
    raise ConnectError(Code.NOT_FOUND, f"process with {kind} {value} not found")


class ProcessService(process_connect.Process):
    def __init__(self, lookup: BoxLookup):
        self._lookup = lookup

    async def start(self, request: process_pb.StartRequest, ctx) -> AsyncIterator[process_pb.StartResponse]:
        box = _box(self._lookup, ctx)
        cfg = request.process
        pty = None
        if request.has_field("pty") and request.pty.has_field("size"):
            pty = {"cols": request.pty.size.cols, "rows": request.pty.size.rows}
        try:
            messages = box.stream(
                "proc_start",
                cmd=cfg.cmd,
                args=list(cfg.args),
                envs=dict(cfg.envs),
                cwd=cfg.cwd if cfg.has_field("cwd") else None,
                stdin=request.stdin,
                pty=pty,
            )
        except SandboxNotFound as exc:
            raise ConnectError(Code.UNAVAILABLE, str(exc)) from None
        proc = _Process(box, messages, request.tag if request.has_field("tag") else None)
        q = proc.listen()
        if await proc.started is None:  # it did not start: the first message says why
            msg = q.get_nowait() if not q.empty() else {"type": "fail", "error": "the command did not start"}
            if msg["type"] == "dead":
                raise ConnectError(Code.UNAVAILABLE, f"The sandbox {box.id} was not found: {msg['error']}")
            raise _fail(msg)
        async for event in proc.events(q, ctx.timeout_ms):
            yield process_pb.StartResponse(event=event)

    async def connect(
        self, request: process_pb.ConnectRequest, ctx
    ) -> AsyncIterator[process_pb.ConnectResponse]:
        proc = _find(_box(self._lookup, ctx), request.process)
        async for event in proc.events(proc.listen(), ctx.timeout_ms):
            yield process_pb.ConnectResponse(event=event)

    async def list(self, request: process_pb.ListRequest, ctx) -> process_pb.ListResponse:
        box = _box(self._lookup, ctx)
        msg = await _ok(box, "proc_list")
        tags = {p.pid: p.tag for p in box.procs.values()}
        return process_pb.ListResponse(
            processes=[
                process_pb.ProcessInfo(
                    pid=p["pid"],
                    tag=tags.get(p["pid"]),
                    config=process_pb.ProcessConfig(cmd=p["cmd"], args=p["args"]),
                )
                for p in msg["procs"]
            ]
        )

    async def update(self, request: process_pb.UpdateRequest, ctx) -> process_pb.UpdateResponse:
        box = _box(self._lookup, ctx)
        proc = _find(box, request.process)
        if request.has_field("pty") and request.pty.has_field("size"):
            await _ok(
                box,
                "proc_resize",
                pid=proc.pid,
                size={"cols": request.pty.size.cols, "rows": request.pty.size.rows},
            )
        return process_pb.UpdateResponse()

    async def send_signal(self, request: process_pb.SendSignalRequest, ctx) -> process_pb.SendSignalResponse:
        box = _box(self._lookup, ctx)
        await _ok(box, "proc_signal", pid=_find(box, request.process).pid, signal=int(request.signal.value))
        return process_pb.SendSignalResponse()

    async def send_input(self, request: process_pb.SendInputRequest, ctx) -> process_pb.SendInputResponse:
        box = _box(self._lookup, ctx)
        data = request.input.input.value if request.input and request.input.input else b""
        await _ok(
            box, "proc_input", pid=_find(box, request.process).pid, data=base64.b64encode(data).decode()
        )
        return process_pb.SendInputResponse()

    async def close_stdin(self, request: process_pb.CloseStdinRequest, ctx) -> process_pb.CloseStdinResponse:
        box = _box(self._lookup, ctx)
        await _ok(box, "proc_close_stdin", pid=_find(box, request.process).pid)
        return process_pb.CloseStdinResponse()


def entry_info(e: dict) -> filesystem_pb.EntryInfo:
    kinds = {
        "file": filesystem_pb.FileType.FILE,
        "dir": filesystem_pb.FileType.DIRECTORY,
        "symlink": filesystem_pb.FileType.SYMLINK,
    }
    return filesystem_pb.EntryInfo(
        name=e["name"],
        type=kinds[e["type"]],
        path=e["path"],
        size=e["size"],
        mode=e["mode"],
        permissions=e["permissions"],
        owner="user",
        group="user",
        modified_time=Timestamp.from_nanos(int(e["modified"] * 1e9)),
        symlink_target=e["symlink_target"],
        is_symlink=e["symlink_target"] is not None,
        metadata=e.get("metadata") or {},
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

    async def create_watcher(
        self, request: filesystem_pb.CreateWatcherRequest, ctx
    ) -> filesystem_pb.CreateWatcherResponse:
        watcher_id = uuid.uuid4().hex
        await _ok(
            _box(self._lookup, ctx),
            "watcher_create",
            id=watcher_id,
            path=request.path,
            recursive=request.recursive,
            include_entry=request.include_entry,
        )
        return filesystem_pb.CreateWatcherResponse(watcher_id=watcher_id)

    async def get_watcher_events(
        self, request: filesystem_pb.GetWatcherEventsRequest, ctx
    ) -> filesystem_pb.GetWatcherEventsResponse:
        msg = await _ok(_box(self._lookup, ctx), "watcher_events", id=request.watcher_id)
        return filesystem_pb.GetWatcherEventsResponse(events=_fs_events(msg))

    async def remove_watcher(
        self, request: filesystem_pb.RemoveWatcherRequest, ctx
    ) -> filesystem_pb.RemoveWatcherResponse:
        await _ok(_box(self._lookup, ctx), "watcher_remove", id=request.watcher_id)
        return filesystem_pb.RemoveWatcherResponse()

    async def watch_dir(
        self, request: filesystem_pb.WatchDirRequest, ctx
    ) -> AsyncIterator[filesystem_pb.WatchDirResponse]:
        box = _box(self._lookup, ctx)
        watcher_id = uuid.uuid4().hex
        await _ok(
            box,
            "watcher_create",
            id=watcher_id,
            path=request.path,
            recursive=request.recursive,
            include_entry=request.include_entry,
        )
        Response = filesystem_pb.WatchDirResponse
        try:
            yield Response(event=Oneof("start", Response.StartEvent()))
            while True:
                for event in _fs_events(await _ok(box, "watcher_events", id=watcher_id)):
                    yield Response(event=Oneof("filesystem", event))
                await asyncio.sleep(WATCH_POLL_S)
        finally:
            if box.alive:
                with contextlib.suppress(Exception):
                    await box.request("watcher_remove", id=watcher_id)

    async def remove(self, request: filesystem_pb.RemoveRequest, ctx) -> filesystem_pb.RemoveResponse:
        await _ok(_box(self._lookup, ctx), "remove", path=request.path)
        return filesystem_pb.RemoveResponse()


_EVENT_TYPES = {
    "create": filesystem_pb.EventType.CREATE,
    "write": filesystem_pb.EventType.WRITE,
    "remove": filesystem_pb.EventType.REMOVE,
    "rename": filesystem_pb.EventType.RENAME,
    "chmod": filesystem_pb.EventType.CHMOD,
}
WATCH_POLL_S = 0.05


def _fs_events(msg: dict) -> list:
    return [
        filesystem_pb.FilesystemEvent(
            name=e["name"],
            type=_EVENT_TYPES[e["type"]],
            entry=entry_info(e["entry"]) if "entry" in e else None,
        )
        for e in msg["events"]
    ]


def asgi_apps(lookup: BoxLookup) -> dict[str, object]:
    """Path prefix -> Connect ASGI app."""
    process = process_connect.ProcessASGIApplication(ProcessService(lookup))
    files = filesystem_connect.FilesystemASGIApplication(FilesystemService(lookup))
    return {process.path: process, files.path: files}
