"""Live sandboxes ("boxes") on this machine, the thread that spawns them, and the warm pool."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import itertools
import json
import logging
import marshal
import os
import queue
import secrets
import signal
import subprocess
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coherex.sandbox.errors import SandboxNotFound, SandboxUnavailable
from coherex.sandbox.server import isolation
from coherex.sandbox.server.isolation import BoxNetwork, Cgroup, Cgroups, Interpreter, Limits

log = logging.getLogger(__name__)

# The worker goes into the box as its code object, compiled once here and marshalled: compiling its
# source in every box would cost a cold start ~15 ms. The box runs this very interpreter (see
# isolation.Interpreter), so the marshal format matches; zlib keeps it well under the 128 KiB limit
# of one argv string.
_WORKER_CODE = marshal.dumps(
    compile((Path(__file__).parent / "worker.py").read_text(), "<sandbox-worker>", "exec")
)
WORKER_SOURCE = (
    "import binascii, marshal, zlib\n"
    "exec(marshal.loads(zlib.decompress(binascii.a2b_base64("
    f"{base64.b64encode(zlib.compress(_WORKER_CODE, 6)).decode()!r}))))\n"
)
INTERRUPT_GRACE_S = 2.0
START_TIMEOUT_S = 30.0  # after SIGINT, a cell that does not stop gets its box killed


class Spawner:
    """One long-lived thread starts every bwrap.

    `--die-with-parent` is tied to the *thread* that spawned bwrap, and the mount-namespace view
    prepared by `isolation.prepare_spawner_view` belongs to this thread too (slirp4netns, started
    here as well, needs it for the tun device).
    """

    def __init__(self, shared_paths: list[str]):
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future] | None]
        self._jobs = queue.SimpleQueue()
        self._ready = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(shared_paths,), name="sandbox-spawner", daemon=True
        )
        self._thread.start()
        self._ready.result()

    def _run(self, shared_paths: list[str]) -> None:
        try:
            if os.geteuid() == 0:
                isolation.prepare_spawner_view(shared_paths)
            self._ready.set_result(None)
        except Exception as exc:  # reported to the constructor's caller
            self._ready.set_exception(exc)
            return
        while (job := self._jobs.get()) is not None:
            fn, fut = job
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except BaseException as exc:
                    fut.set_exception(exc)

    async def call(self, fn: Callable[[], Any]) -> Any:
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((fn, fut))
        return await asyncio.wrap_future(fut)

    def stop(self) -> None:
        self._jobs.put(None)


class SandboxStartFailed(SandboxUnavailable):
    """bwrap or the worker ended before the box was ready."""


class BoxStopped(SandboxNotFound):
    """The box was killed (on request or at its timeout) while a cell ran."""


@dataclass
class Channel:
    """Messages from the worker for one request (a cell, a process, a file operation)."""

    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    ended: bool = False


class Box:
    """One isolated sandbox: bwrap + the worker inside, talked to over its stdin/stdout."""

    def __init__(
        self,
        box_id: str,
        proc: subprocess.Popen,
        init_pid: int,
        cgroup: Cgroup | None,
        uid: int | None,
        network: BoxNetwork | None,
        limits: Limits,
    ):
        self.id = box_id
        self.token = secrets.token_urlsafe(24)  # envd access token, per sandbox
        self.proc, self.init_pid, self.cgroup, self.uid = proc, init_pid, cgroup, uid
        self.network, self.limits = network, limits
        self.template, self.metadata, self.envs = "code-interpreter-v1", {}, {}
        self.allow_network = False
        self.stopped_by_api = False  # killed through the API or at its timeout, not by its own code
        # code contexts the SDK can list (the worker holds their state); the default ones of
        # other languages start on first use
        self.contexts: dict[str, dict] = {
            "default": {"id": "default", "language": "python", "cwd": "/home/user"},
            "default-javascript": {"id": "default-javascript", "language": "javascript", "cwd": "/home/user"},
        }
        self.default_started: dict[str, bool] = {"default": True}
        self.procs: dict[int, Any] = {}  # pid -> running command (envd._Process)
        self.started_at = time.time()
        self.expires_at = self.started_at + 300
        self.dead_reason: str | None = None
        self._channels: dict[str, Channel] = {}
        self._ids = itertools.count(1)
        self._ready = asyncio.get_running_loop().create_future()
        self._writer: asyncio.WriteTransport | None = None
        self._reader_task: asyncio.Task | None = None
        self._killed = False
        self._cell_lock = asyncio.Lock()  # one cell at a time, as in a Jupyter kernel

    async def attach(self) -> None:
        """Connect the pipes to the event loop and wait until the worker says it is ready."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=256 << 20)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), self.proc.stdout)
        self._writer, _ = await loop.connect_write_pipe(asyncio.Protocol, self.proc.stdin)
        self._reader_task = asyncio.create_task(self._read(reader))
        await self._ready

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while line := await reader.readline():
                try:
                    msg = json.loads(line)
                    ch = self._channels.get(msg.get("ch"))
                except (ValueError, AttributeError):
                    continue  # the box's own code may write junk here; it only hurts itself
                if msg.get("type") == "ready" and not self._ready.done():
                    self._ready.set_result(None)
                elif ch is not None and not ch.ended:
                    ch.ended = msg.get("type") in ("end", "ok", "fail")
                    ch.queue.put_nowait(msg)
        finally:
            await self._on_exit()

    async def _on_exit(self) -> None:
        if self.dead_reason is None:
            if self.cgroup is not None and self.cgroup.oom_killed():
                self.dead_reason = (
                    f"the sandbox ran out of memory (limit {self.limits.memory_bytes >> 20} MiB) "
                    "and was stopped"
                )
            elif not self._killed:
                stderr = await asyncio.to_thread(self.proc.stderr.read) if self.proc.stderr else b""
                self.dead_reason = "the sandbox stopped unexpectedly" + (
                    f": {stderr.decode(errors='replace').strip()[-500:]}" if stderr.strip() else ""
                )
            else:
                self.dead_reason = "the sandbox was killed"
        if not self._ready.done():
            self._ready.set_exception(SandboxStartFailed(f"sandbox failed to start: {self.dead_reason}"))
        for ch in self._channels.values():
            if not ch.ended:
                ch.ended = True
                ch.queue.put_nowait({"type": "dead", "error": self.dead_reason})
        await self.kill()

    @property
    def alive(self) -> bool:
        return self.dead_reason is None

    def _send(self, msg: dict) -> Channel:
        if not self.alive or self._writer is None or self._writer.is_closing():
            raise SandboxNotFound(f"sandbox {self.id} is not running: {self.dead_reason or 'stopped'}")
        ch_id = str(next(self._ids))
        ch = self._channels[ch_id] = Channel()
        self._writer.write((json.dumps({**msg, "ch": ch_id}) + "\n").encode())
        return ch

    def _close(self, ch: Channel) -> None:
        for k, v in list(self._channels.items()):
            if v is ch:
                del self._channels[k]

    async def request(self, op: str, **kw: Any) -> dict:
        """A request with one answer (file operations, signals)."""
        ch = self._send({"op": op, **kw})
        try:
            msg = await ch.queue.get()
        finally:
            self._close(ch)
        if msg["type"] == "dead":
            raise SandboxNotFound(f"sandbox {self.id} is not running: {msg['error']}")
        return msg

    async def stream(self, op: str, **kw: Any) -> AsyncIterator[dict]:
        """A request whose answers stream until `end` (a cell, a process)."""
        ch = self._send({"op": op, **kw})
        try:
            while True:
                msg = await ch.queue.get()
                yield msg
                if msg["type"] in ("end", "fail", "dead"):
                    return
        finally:
            self._close(ch)

    async def execute(
        self, code: str, env_vars: dict | None, context_id: str = "default"
    ) -> AsyncIterator[dict]:
        """Run a cell, yielding its messages. Closed early (the client went away, e.g. its
        timeout), it interrupts the code: SIGINT, then SIGKILL of the box if that is ignored.
        A box killed on request meanwhile raises BoxStopped; one that died of its own code (out of
        memory) ends the cell with an error saying why."""
        async with self._cell_lock:
            ch = self._send({"op": "execute", "code": code, "env_vars": env_vars, "context_id": context_id})
            finished = False
            try:
                while True:
                    msg = await ch.queue.get()
                    finished = msg["type"] in ("end", "dead")
                    if msg["type"] == "dead" and self.stopped_by_api:
                        raise BoxStopped(f"The sandbox {self.id} was not found: {msg['error']}")
                    if msg["type"] == "dead":
                        yield {
                            "type": "error",
                            "name": "SandboxStopped",
                            "value": msg["error"],
                            "traceback": "",
                        }
                    if finished:
                        return
                    yield msg
            finally:
                if not finished:
                    await self._interrupt(ch)
                self._close(ch)

    async def _interrupt(self, ch: Channel) -> None:
        if not self.alive:
            return

        async def until_end() -> None:
            while (await ch.queue.get())["type"] not in ("end", "dead"):
                pass

        try:
            await self.request("interrupt")
            await asyncio.wait_for(until_end(), INTERRUPT_GRACE_S)
        except (TimeoutError, SandboxNotFound):
            self.dead_reason = self.dead_reason or "the sandbox was killed: its code ignored the interrupt"
            await self.kill()

    async def kill(self) -> None:
        """Stop every process of the box and free its resources. Idempotent."""
        if self._killed:
            return
        self._killed = True
        self.dead_reason = self.dead_reason or "the sandbox was killed"
        if self._writer is not None:
            self._writer.close()
        try:
            os.kill(self.proc.pid, signal.SIGKILL)  # a bwrap whose setup failed may ignore SIGTERM
        except ProcessLookupError:
            pass
        await asyncio.to_thread(self._reap)

    def _reap(self) -> None:
        if self.cgroup is not None:
            self.cgroup.destroy()
        else:
            try:
                os.kill(self.init_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.network is not None:
            self.network.stop()
        self.proc.wait()
        # stdin/stdout belong to the event loop's pipe transports, which close them. Closing them
        # here too could close a reused fd number of a box being spawned right now.
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        isolation.release_uid(self.uid)  # last: every process that had the uid is gone


class BoxFactory:
    """Starts boxes (cold) and keeps a warm pool of pre-started offline ones."""

    def __init__(self, data_dir: Path, pool_size: int, limits: Limits | None = None):
        self.interp = Interpreter.current()
        self.limits = limits or Limits()
        self.pool_size = pool_size
        self.cgroups = Cgroups()
        self.cgroups.remove_stale()
        self.mpl_cache = isolation.prepare_mpl_cache(self.interp, data_dir / "sandbox" / "mplcache")
        shared = [*self.interp.roots, *([str(self.mpl_cache)] if self.mpl_cache else [])]
        self.spawner = Spawner(shared)
        self._pool: asyncio.Queue[Box] = asyncio.Queue()
        self._refill_wanted = asyncio.Event()
        self._refiller: asyncio.Task | None = None
        self._seq = itertools.count(1)

    def start(self) -> None:
        self._refiller = asyncio.create_task(self._refill())
        self._refill_wanted.set()

    def describe(self) -> dict:
        return {
            "isolation": "bubblewrap",
            "cgroups": f"v{self.cgroups.version}" if self.cgroups.parents else "none (rlimits only)",
            "own_uid_per_sandbox": os.geteuid() == 0,
            "network": (
                "own namespace per sandbox, through slirp4netns, no host or private addresses"
                if os.geteuid() == 0
                else "refused (the server is not root)"
            ),
            "python": self.interp.executable,
            "pool_size": self.pool_size,
            "pool_ready": self._pool.qsize(),
            "limits": {
                "memory_mb": self.limits.memory_bytes >> 20,
                "pids": self.limits.pids,
                "cpus": self.limits.cpus,
                "disk_mb": self.limits.disk_bytes >> 20,
                "root_mb": self.limits.root_bytes >> 20,
            },
        }

    async def acquire(self, *, allow_network: bool) -> Box:
        """A fresh box: from the warm pool when it has one (offline boxes only), else cold."""
        box = None
        while not allow_network and not self._pool.empty():
            candidate = self._pool.get_nowait()
            if candidate.alive:
                box = candidate
                break
        self._refill_wanted.set()
        return box or await self.spawn(allow_network=allow_network)

    async def spawn(self, *, allow_network: bool) -> Box:
        try:
            return await self._spawn(allow_network=allow_network)
        except SandboxStartFailed as exc:
            # bwrap sometimes fails to set up a new namespace's loopback when several boxes start
            # at once ("loopback: Failed RTM_NEWADDR", seen about once in 200 concurrent starts);
            # a second start succeeds. A failure that stays is reported.
            log.warning("a sandbox failed to start, starting another: %s", exc)
            return await self._spawn(allow_network=allow_network)

    async def _spawn(self, *, allow_network: bool) -> Box:
        box_id = f"sbx{next(self._seq)}{secrets.token_hex(6)}"
        proc, init_pid, cgroup, uid, network = await self.spawner.call(
            lambda: self._start_bwrap(box_id, allow_network)
        )
        box = Box(box_id, proc, init_pid, cgroup, uid, network, self.limits)
        try:
            await asyncio.wait_for(box.attach(), START_TIMEOUT_S)
        except TimeoutError:
            await box.kill()
            raise SandboxUnavailable(f"a sandbox did not start within {START_TIMEOUT_S:g} s") from None
        except BaseException:
            await box.kill()
            raise
        return box

    def _start_bwrap(
        self, box_id: str, allow_network: bool
    ) -> tuple[subprocess.Popen, int, Cgroup | None, int | None, BoxNetwork | None]:
        """Runs in the spawner thread. bwrap blocks on --block-fd until limits (and the network of a
        box that has one) are in place."""
        uid = isolation.allocate_uid()
        cgroup = network = None
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        resolv_r, resolv_w = os.pipe() if allow_network else (-1, -1)
        proc = None
        try:
            cgroup = self.cgroups.create(box_id, self.limits)
            rlimits = isolation.rlimit_code(self.limits, cgroup=cgroup, own_uid=uid is not None)
            argv = isolation.bwrap_argv(
                self.interp,
                self.limits,
                resolv_conf_fd=resolv_r if allow_network else None,
                mpl_cache=self.mpl_cache,
                bootstrap=rlimits + WORKER_SOURCE,
            )
            full = argv[:1] + ["--info-fd", str(info_w), "--block-fd", str(block_r)] + argv[1:]
            if allow_network:
                os.write(resolv_w, isolation.RESOLV_CONF.encode())
                os.close(resolv_w)
                resolv_w = -1
            proc = subprocess.Popen(
                full,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=tuple(fd for fd in (info_w, block_r, resolv_r) if fd >= 0),
                user=uid,
                group=uid,
                extra_groups=[] if uid else None,
                env={},
                cwd="/",
            )
            for fd in (info_w, block_r, resolv_r):
                if fd >= 0:
                    os.close(fd)
            info_w = block_r = resolv_r = -1
            init_pid = isolation.read_info_fd(info_r)["child-pid"]
            if cgroup is not None:
                cgroup.add(proc.pid)
                cgroup.add(init_pid)
            if allow_network:
                network = BoxNetwork.start(init_pid, uid)
                if cgroup is not None:
                    cgroup.add(network.pid)  # its CPU and memory count as the box's
            os.write(block_w, b"go")
            return proc, init_pid, cgroup, uid, network
        except BaseException as exc:
            err = b""
            if proc is not None:
                proc.kill()
                _, err = proc.communicate()
            if network is not None:
                network.stop()
            if cgroup is not None:
                cgroup.destroy()
            isolation.release_uid(uid)
            if isinstance(exc, SandboxUnavailable):
                raise
            if err.strip():
                raise SandboxStartFailed(
                    f"the sandbox failed to start: {err.decode(errors='replace').strip()}"
                ) from exc
            raise
        finally:
            for fd in (info_r, info_w, block_r, block_w, resolv_r, resolv_w):
                if fd >= 0:
                    os.close(fd)

    async def _refill(self) -> None:
        while True:
            await self._refill_wanted.wait()
            self._refill_wanted.clear()
            while self._pool.qsize() < self.pool_size:
                try:
                    self._pool.put_nowait(await self.spawn(allow_network=False))
                except Exception:
                    log.exception("could not pre-start a sandbox for the warm pool")
                    await asyncio.sleep(1)

    async def close(self) -> None:
        if self._refiller is not None:
            self._refiller.cancel()
        while not self._pool.empty():
            await self._pool.get_nowait().kill()
        self.spawner.stop()
        self.cgroups.close()
