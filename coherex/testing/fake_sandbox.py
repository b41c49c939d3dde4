"""An in-process stand-in for a sandbox, for the runtime's `sandbox_opener` hook in fast tests.

    from coherex.testing.fake_sandbox import FakeSandbox, opener

    boxes: list[FakeSandbox] = []
    runtime = Runtime(db, llm=ScriptedLLM([...]), sandbox_opener=opener(boxes))
    ...
    assert boxes[0].killed and boxes[0].code == ["print(1)"]

It keeps the contract of `coherex.sandbox.Sandbox` for what the runtime and tools call:
- `files.write/read/list` under `/home/user` (a temporary directory; other absolute paths too,
  below the same root);
- `run_code(code, on_stdout=, on_stderr=, timeout=)`: real Python in a child process (the same
  interpreter as the tests) with one namespace kept between calls and the working directory
  `/home/user`; output reaches the handlers line by line while the code runs; the value of a last
  expression is a result `{"text": repr, "is_main_result": True}`; an exception is `error`
  (`name`, `value`, `traceback`), never raised; code past `timeout` is interrupted (the namespace
  survives) and reported as a `TimeoutError` error, as the E2B client reports it;
- `commands.run(cmd, timeout=, cwd=, envs=, check=)`: `bash -c` in `/home/user`; a non-zero exit is
  a result (`CommandFailed` with `check=True`), a timeout `SandboxTimeout`;
- `kill()` (idempotent) stops running code at once; later calls raise `SandboxNotFound`.

Limits — what it is not: no isolation at all (the code runs as the test user, with the network and
the whole file system; only for code the test itself scripted); code that names `/home/user/...`
by its absolute path does not find the files (relative names do); results carry only `text` (no
PNG, HTML or DataFrame formats); no packages beyond the tests' environment, no templates, no
lifetime (`set_timeout` only records it). Tests of isolation, limits and E2B behaviour use the
real local server (`coherex.testing.sandbox`).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from coherex.sandbox import CodeResult, CommandFailed, CommandResult, FileEntry, OutputHandler
from coherex.sandbox.errors import SandboxInvalidInput, SandboxNotFound, SandboxTimeout

HOME = "/home/user"

# The child: reads one JSON request per line ({"code"}), answers with JSON lines on the fd named by
# its argument: {"stream": "stdout"|"stderr", "text"} while running, then {"done", "results", "error"}.
# SIGINT interrupts a running cell only (the kernel itself goes on).
_KERNEL = r"""
import ast, json, os, signal, sys, traceback
out = os.fdopen(int(sys.argv[1]), "w", buffering=1)
def send(**m): out.write(json.dumps(m) + "\n")
running = False
def interrupt(signum, frame):
    if running: raise KeyboardInterrupt()
signal.signal(signal.SIGINT, interrupt)
class Stream:
    def __init__(self, name): self.name, self.buf = name, ""
    def write(self, text):
        self.buf += text
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            send(stream=self.name, text=line + "\n")
        return len(text)
    def flush(self):
        if self.buf: send(stream=self.name, text=self.buf); self.buf = ""
sys.stdout, sys.stderr = Stream("stdout"), Stream("stderr")
namespace = {"__name__": "__main__"}
for request in sys.stdin:
    code, results, error = json.loads(request)["code"], [], None
    running = True
    try:
        tree = ast.parse(code)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "<cell>", "exec"), namespace)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
            if value is not None:
                results.append({"text": repr(value), "is_main_result": True})
    except BaseException as exc:
        frames = traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next)  # not the kernel's
        error = {"name": type(exc).__name__, "value": str(exc), "traceback": "".join(frames)}
    running = False
    sys.stdout.flush(); sys.stderr.flush()
    send(done=True, results=results, error=error)
"""


def opener(boxes: list[FakeSandbox] | None = None, **kw: Any) -> Callable[..., Any]:
    """A `sandbox_opener` for `Runtime`: a new FakeSandbox per run, appended to `boxes`."""

    async def open_box(spec: Any = None, execution: Any = None) -> FakeSandbox:
        box = FakeSandbox(**kw)
        if boxes is not None:
            boxes.append(box)
        return box

    return open_box


class FakeSandbox:
    def __init__(self) -> None:
        self.id = f"fake-{uuid.uuid4().hex[:12]}"
        self._root = Path(tempfile.mkdtemp(prefix="coherex-fake-sandbox-"))
        self.home = self._root / HOME.lstrip("/")
        self.home.mkdir(parents=True)
        self.files = _Files(self)
        self.commands = _Commands(self)
        self.killed = False
        #: every cell run, in order (what the tools sent)
        self.code: list[str] = []
        self.timeout_set: int | None = None
        self._kernel: asyncio.subprocess.Process | None = None
        self._answers: asyncio.StreamReader | None = None
        self._pipe: asyncio.BaseTransport | None = None
        self._lock = asyncio.Lock()

    # --- paths
    def path(self, path: str) -> Path:
        self._alive()
        relative = path if path.startswith("/") else f"{HOME}/{path}"
        target = (self._root / relative.lstrip("/")).resolve()
        if not target.is_relative_to(self._root.resolve()):
            raise SandboxInvalidInput(f"cannot use {path}: outside the sandbox")
        return target

    def _alive(self) -> None:
        if self.killed:
            raise SandboxNotFound(f"cannot use sandbox {self.id}: the sandbox is not running (killed)")

    # --- code
    async def run_code(
        self,
        code: str,
        *,
        on_stdout: OutputHandler | None = None,
        on_stderr: OutputHandler | None = None,
        timeout: float = 60.0,
    ) -> CodeResult:
        if not isinstance(code, str):
            raise SandboxInvalidInput("code must be a string")
        if timeout <= 0:
            raise SandboxInvalidInput(f"timeout must be positive, not {timeout!r}")
        self._alive()
        async with self._lock:  # one cell at a time, as in one Jupyter kernel
            self.code.append(code)
            kernel, answers = await self._start()
            kernel.stdin.write((json.dumps({"code": code}) + "\n").encode())
            await kernel.stdin.drain()
            out: list[str] = []
            err: list[str] = []
            timed_out = False
            while True:
                try:
                    line = await asyncio.wait_for(answers.readline(), 10.0 if timed_out else timeout)
                except TimeoutError:
                    if timed_out:  # the interruption was not answered either: the kernel is stuck
                        await self.kill()
                        raise SandboxNotFound(f"sandbox {self.id} did not stop its code") from None
                    timed_out = True  # interrupt the cell; the kernel answers `done` with the interruption
                    kernel.send_signal(signal.SIGINT)
                    continue
                if not line:
                    self._alive()
                    raise SandboxNotFound(f"cannot run code: sandbox {self.id} stopped while running it")
                message = json.loads(line)
                if "stream" in message:
                    text = message["text"]
                    (out if message["stream"] == "stdout" else err).append(text)
                    await _call(on_stdout if message["stream"] == "stdout" else on_stderr, text)
                    continue
                break
        error = message["error"]
        if timed_out:
            error = {
                "name": "TimeoutError",
                "value": f"the code ran longer than {timeout:g} s and was stopped",
                "traceback": "",
            }
        return CodeResult(stdout="".join(out), stderr="".join(err), results=message["results"], error=error)

    async def _start(self) -> tuple[asyncio.subprocess.Process, asyncio.StreamReader]:
        if self._kernel is None:
            read_fd, write_fd = os.pipe()
            self._kernel = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                _KERNEL,
                str(write_fd),
                cwd=self.home,
                env={**os.environ, "HOME": str(self.home)},
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,),
            )
            os.close(write_fd)
            answers = asyncio.StreamReader(limit=2**24)
            self._pipe, _ = await asyncio.get_running_loop().connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(answers), os.fdopen(read_fd, "rb")
            )
            self._answers = answers
        return self._kernel, self._answers

    # --- life
    async def set_timeout(self, seconds: int) -> None:
        self._alive()
        self.timeout_set = seconds

    async def kill(self) -> None:
        if self.killed:
            return
        self.killed = True
        if self._kernel is not None and self._kernel.returncode is None:
            self._kernel.kill()
            await self._kernel.wait()
        if self._pipe is not None:
            self._pipe.close()
        shutil.rmtree(self._root, ignore_errors=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()


class _Files:
    def __init__(self, box: FakeSandbox):
        self._box = box

    async def write(self, path: str, data: str | bytes) -> FileEntry:
        target = self._box.path(path)
        if target.is_dir():
            raise SandboxInvalidInput(f"cannot write {path}: it is a directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        raw = data.encode() if isinstance(data, str) else data
        target.write_bytes(raw)
        return FileEntry(name=target.name, path=path, type="file", size=len(raw))

    async def read(self, path: str, *, text: bool = True) -> str | bytes:
        target = self._box.path(path)
        if not target.is_file():
            raise SandboxInvalidInput(f"cannot read {path}: no such file")
        return target.read_text() if text else target.read_bytes()

    async def list(self, path: str) -> list[FileEntry]:
        target = self._box.path(path)
        if not target.is_dir():
            raise SandboxInvalidInput(f"cannot list {path}: no such directory")
        return [
            FileEntry(
                name=p.name,
                path=f"{path.rstrip('/')}/{p.name}",
                type="dir" if p.is_dir() else "file",
                size=p.stat().st_size,
            )
            for p in sorted(target.iterdir())
        ]


class _Commands:
    def __init__(self, box: FakeSandbox):
        self._box = box

    async def run(
        self,
        cmd: str,
        *,
        timeout: float = 60,
        envs: dict[str, str] | None = None,
        cwd: str | None = None,
        on_stdout: OutputHandler | None = None,
        on_stderr: OutputHandler | None = None,
        check: bool = False,
    ) -> CommandResult:
        where = self._box.path(cwd or HOME)
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            cmd,
            cwd=where,
            env={**os.environ, "HOME": str(self._box.home), **(envs or {})},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise SandboxTimeout(
                f"timed out trying to run `{cmd[:60]}`", hint="pass a longer timeout"
            ) from None
        result = CommandResult(
            proc.returncode or 0, stdout.decode(errors="replace"), stderr.decode(errors="replace")
        )
        for handler, text in ((on_stdout, result.stdout), (on_stderr, result.stderr)):
            for line in text.splitlines(keepends=True):
                await _call(handler, line)
        if check and result.exit_code != 0:
            raise CommandFailed(
                f"`{cmd[:60]}` exited with {result.exit_code}: {result.stderr[-500:]}",
                exit_code=result.exit_code,
                stdout=result.stdout,
                stderr=result.stderr,
            )
        return result


async def _call(handler: OutputHandler | None, text: str) -> None:
    if handler is not None:
        out = handler(text)
        if inspect.isawaitable(out):
            await out
