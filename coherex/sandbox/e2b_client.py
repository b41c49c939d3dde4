"""The only module that imports the E2B SDK: every sandbox, local or cloud, is reached through it.

For the local backend the unmodified SDK is pointed at our server with its `api_url` and
`sandbox_url` options. Those are marked deprecated upstream, which is why e2b and
e2b-code-interpreter are pinned in requirements.txt and covered by the integration tests.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from e2b import exceptions as e2b_exc
from e2b.sandbox.commands.command_handle import CommandExitException
from e2b_code_interpreter import AsyncSandbox

from coherex import sandbox as api
from coherex.sandbox.errors import (
    SandboxAuthError,
    SandboxError,
    SandboxInvalidInput,
    SandboxNotFound,
    SandboxTimeout,
    SandboxUnavailable,
)
from coherex.settings import Settings


def connection_options(settings: Settings) -> dict[str, Any]:
    """SDK options for the configured backend. Settings only: no code differs between them."""
    if settings.sandbox == "e2b":
        if settings.e2b_api_key is None:
            raise SandboxUnavailable(
                "the e2b sandbox backend needs an API key",
                hint="set E2B_API_KEY, or COHEREX_SANDBOX=local for the local sandbox",
            )
        opts: dict[str, Any] = {"api_key": settings.e2b_api_key.get_secret_value()}
        if settings.e2b_domain:
            opts["domain"] = settings.e2b_domain
        if settings.e2b_api_url:
            opts["api_url"] = settings.e2b_api_url
        if settings.e2b_sandbox_url:
            opts["sandbox_url"] = settings.e2b_sandbox_url
        return opts
    from coherex.sandbox.server.run import local_api_key

    key = local_api_key(settings, create=False)
    if key is None:
        raise SandboxUnavailable(
            f"no local sandbox server has been started with data dir {settings.data_path}",
            hint="run `coherex sandbox serve` (or `coherex up`), or set E2B_API_KEY for cloud sandboxes",
        )
    url = f"http://127.0.0.1:{settings.sandbox_port}"
    return {"api_key": key, "api_url": url, "sandbox_url": url}


def _where(settings: Settings) -> str:
    if settings.sandbox == "e2b":
        return settings.e2b_api_url or f"E2B ({settings.e2b_domain or 'e2b.app'})"
    return f"the local sandbox server on 127.0.0.1:{settings.sandbox_port}"


@contextmanager
def _mapped(settings: Settings, action: str) -> Iterator[None]:
    """E2B/transport exceptions -> our error types, with the setting to change in the hint."""
    try:
        yield
    except e2b_exc.AuthenticationException as exc:
        raise SandboxAuthError(
            f"{_where(settings)} rejected the credentials while trying to {action}: {exc}",
            hint="check E2B_API_KEY (cloud) or restart the local server",
        ) from None
    except (e2b_exc.SandboxNotRunningException, e2b_exc.SandboxNotFoundException) as exc:
        raise SandboxNotFound(f"cannot {action}: the sandbox is not running ({_short(exc)})") from None
    except e2b_exc.FileNotFoundException as exc:
        raise SandboxInvalidInput(f"cannot {action}: {_short(exc)}") from None
    except e2b_exc.NotFoundException as exc:
        raise SandboxNotFound(f"cannot {action}: {_short(exc)}") from None
    except e2b_exc.InvalidArgumentException as exc:
        raise SandboxInvalidInput(f"cannot {action}: {_short(exc)}") from None
    except e2b_exc.TimeoutException as exc:
        if _sandbox_gone(exc):
            raise SandboxNotFound(f"cannot {action}: the sandbox is not running ({_short(exc)})") from None
        raise SandboxTimeout(
            f"timed out trying to {action}: {_short(exc)}", hint="pass a longer timeout"
        ) from None
    except (httpx.TransportError, ConnectionError, OSError) as exc:
        raise SandboxUnavailable(
            f"cannot reach {_where(settings)} to {action}: {exc}",
            hint="start it with `coherex sandbox serve`, or check COHEREX_SANDBOX_PORT / E2B_API_KEY",
        ) from None
    except e2b_exc.SandboxException as exc:
        raise SandboxError(f"the sandbox failed to {action}: {_short(exc)}") from None


def _sandbox_gone(exc: BaseException) -> bool:
    """The code interpreter SDK reports a sandbox that is gone as a TimeoutException too: the
    proxy's 502 (raised from the answer itself, with no exception behind it) or a connection
    dropped because the sandbox was killed (raised from the transport's read error). A timeout
    proper is raised while handling the transport's timeout or an RPC deadline."""
    behind = exc.__cause__ or exc.__context__
    return behind is None or isinstance(behind, (httpx.ReadError, httpx.RemoteProtocolError))


def _short(exc: BaseException) -> str:
    return str(exc).split("\n")[0][:500]


async def _call(handler: Callable[[str], Awaitable[None] | None] | None, text: str) -> None:
    if handler is not None:
        out = handler(text)
        if inspect.isawaitable(out):
            await out


async def create(
    settings: Settings,
    *,
    template: str | None,
    timeout: int,
    envs: dict[str, str] | None,
    metadata: dict[str, str] | None,
    allow_network: bool,
) -> Sandbox:
    if not isinstance(timeout, int) or timeout <= 0:
        raise SandboxInvalidInput(f"sandbox timeout must be a positive number of seconds, not {timeout!r}")
    with _mapped(settings, "create a sandbox"):
        sdk = await AsyncSandbox.create(
            template=template,
            timeout=timeout,
            envs=envs,
            metadata=metadata,
            allow_internet_access=allow_network,
            **connection_options(settings),
        )
    return Sandbox(sdk, settings)


async def backend_health(settings: Settings) -> dict[str, Any]:
    opts = connection_options(settings)
    if settings.sandbox == "e2b" and "api_url" not in opts:
        # cloud: listing sandboxes proves the key and the network path
        started = time.perf_counter()
        with _mapped(settings, "check health"):
            await AsyncSandbox.list(**opts).next_items()
        return {"backend": "e2b", "ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    started = time.perf_counter()
    with _mapped(settings, "check health"):
        async with httpx.AsyncClient(timeout=5) as client:
            r = await client.get(f"{opts['api_url']}/health", headers={"X-API-KEY": opts["api_key"]})
    if r.status_code == 401:
        raise SandboxAuthError(
            f"{_where(settings)} rejected the API key",
            hint=f"the key is read from {settings.data_path}/sandbox/api_key",
        )
    if r.status_code != 200:
        raise SandboxUnavailable(f"{_where(settings)} answered {r.status_code} to a health check")
    return {
        "backend": settings.sandbox,
        "ok": True,
        "url": opts["api_url"],
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        **r.json(),
    }


class _Files:
    def __init__(self, box: Sandbox):
        self._box = box

    async def write(self, path: str, data: str | bytes) -> api.FileEntry:
        with _mapped(self._box._settings, f"write {path}"):
            info = await self._box._sdk.files.write(path, data)
        return api.FileEntry(name=info.name, path=info.path, type=_kind(info.type), size=len(data))

    async def read(self, path: str, *, text: bool = True) -> str | bytes:
        with _mapped(self._box._settings, f"read {path}"):
            return await self._box._sdk.files.read(path, format="text" if text else "bytes")

    async def list(self, path: str) -> list[api.FileEntry]:
        with _mapped(self._box._settings, f"list {path}"):
            entries = await self._box._sdk.files.list(path)
        return [api.FileEntry(name=e.name, path=e.path, type=_kind(e.type), size=e.size) for e in entries]


def _kind(file_type: Any) -> str:
    return getattr(file_type, "value", None) or "file"


class _Commands:
    def __init__(self, box: Sandbox):
        self._box = box

    async def run(
        self,
        cmd: str,
        *,
        timeout: float = 60,
        envs: dict[str, str] | None = None,
        cwd: str | None = None,
        on_stdout: api.OutputHandler | None = None,
        on_stderr: api.OutputHandler | None = None,
        check: bool = False,
    ) -> api.CommandResult:
        """Run a shell command (`bash -l -c`). A non-zero exit is a result unless `check=True`."""
        with _mapped(self._box._settings, f"run `{cmd[:60]}`"):
            try:
                r = await self._box._sdk.commands.run(
                    cmd,
                    timeout=timeout,
                    envs=envs,
                    cwd=cwd,
                    on_stdout=(lambda s: _call(on_stdout, s)) if on_stdout else None,
                    on_stderr=(lambda s: _call(on_stderr, s)) if on_stderr else None,
                )
            except CommandExitException as exc:
                r = exc
        result = api.CommandResult(exit_code=r.exit_code, stdout=r.stdout or "", stderr=r.stderr or "")
        if check and result.exit_code != 0:
            raise api.CommandFailed(
                f"`{cmd[:60]}` exited with {result.exit_code}: {result.stderr[-500:]}",
                exit_code=result.exit_code,
                stdout=result.stdout,
                stderr=result.stderr,
            )
        return result

    async def start(
        self,
        cmd: str,
        *,
        envs: dict[str, str] | None = None,
        cwd: str | None = None,
        on_stdout: api.OutputHandler | None = None,
        on_stderr: api.OutputHandler | None = None,
    ) -> Process:
        """Start a long-lived command (`bash -l -c`) with a stdin pipe; it runs until it exits or is
        killed (no time limit of its own: the sandbox's lifetime bounds it). Output arrives in chunks."""
        with _mapped(self._box._settings, f"start `{cmd[:60]}`"):
            handle = await self._box._sdk.commands.run(
                cmd,
                background=True,
                stdin=True,
                timeout=0,
                envs=envs,
                cwd=cwd,
                on_stdout=(lambda s: _call(on_stdout, s)) if on_stdout else None,
                on_stderr=(lambda s: _call(on_stderr, s)) if on_stderr else None,
            )
        return Process(self._box, handle)


class Process:
    """A command started with `commands.start`: write to its stdin, wait for it, kill it."""

    def __init__(self, box: Sandbox, handle: Any):
        self._box, self._handle = box, handle

    @property
    def pid(self) -> int:
        return self._handle.pid

    async def send(self, data: str | bytes) -> None:
        with _mapped(self._box._settings, "write to a command's stdin"):
            await self._box._sdk.commands.send_stdin(self.pid, data)

    async def wait(self) -> int:
        """The exit code once the command ends (the sandbox dying ends it too)."""
        with _mapped(self._box._settings, "wait for a command"):
            try:
                return (await self._handle.wait()).exit_code
            except CommandExitException as exc:
                return exc.exit_code

    async def kill(self) -> None:
        try:
            with _mapped(self._box._settings, "kill a command"):
                await self._handle.kill()
        except SandboxNotFound:
            pass


class Sandbox:
    """One sandbox. Every method is async; `kill()` is idempotent; `async with` kills on exit."""

    def __init__(self, sdk: AsyncSandbox, settings: Settings):
        self._sdk, self._settings = sdk, settings
        self._killed = False
        self.files = _Files(self)
        self.commands = _Commands(self)

    @property
    def id(self) -> str:
        return self._sdk.sandbox_id

    async def run_code(
        self,
        code: str,
        *,
        on_stdout: api.OutputHandler | None = None,
        on_stderr: api.OutputHandler | None = None,
        timeout: float = api.DEFAULT_CODE_TIMEOUT_S,
    ) -> api.CodeResult:
        """Run Python in this sandbox's one stateful namespace.

        The user's exceptions, and code stopped at `timeout` (interrupted on the server side, the
        namespace survives), come back in `result.error`; only platform problems raise.
        """
        if not isinstance(code, str):
            raise SandboxInvalidInput("code must be a string")
        if timeout <= 0:
            raise SandboxInvalidInput(f"timeout must be positive, not {timeout!r}")

        async def out(msg: Any) -> None:
            await _call(on_stdout, msg.line)

        async def err(msg: Any) -> None:
            await _call(on_stderr, msg.line)

        with _mapped(self._settings, "run code"):
            try:
                ex = await self._sdk.run_code(code, on_stdout=out, on_stderr=err, timeout=timeout)
            except e2b_exc.TimeoutException as exc:
                if _sandbox_gone(exc):
                    raise
                return api.CodeResult(
                    error={
                        "name": "TimeoutError",
                        "value": f"the code ran longer than {timeout:g} s and was stopped",
                        "traceback": "",
                    }
                )
        return api.CodeResult(
            stdout="".join(ex.logs.stdout),
            stderr="".join(ex.logs.stderr),
            results=[_result_dict(r) for r in ex.results],
            error=(
                {"name": ex.error.name, "value": ex.error.value, "traceback": ex.error.traceback}
                if ex.error
                else None
            ),
            execution_count=ex.execution_count,
        )

    async def set_timeout(self, seconds: int) -> None:
        """Keep the sandbox alive `seconds` from now (it is killed when that runs out)."""
        with _mapped(self._settings, "set the sandbox timeout"):
            await self._sdk.set_timeout(seconds)

    async def is_running(self) -> bool:
        with _mapped(self._settings, "check the sandbox"):
            return await self._sdk.is_running()

    async def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        try:
            with _mapped(self._settings, "kill the sandbox"):
                await self._sdk.kill()
        except SandboxNotFound:
            pass  # already gone: that is what kill wanted

    async def __aenter__(self) -> Sandbox:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kill()


_FORMATS = (
    "text",
    "html",
    "markdown",
    "svg",
    "png",
    "jpeg",
    "pdf",
    "latex",
    "json",
    "javascript",
    "data",
    "extra",
)


def _result_dict(r: Any) -> dict[str, Any]:
    out = {k: getattr(r, k) for k in _FORMATS if getattr(r, k, None) is not None}
    if isinstance(out.get("data"), dict):
        out["data"] = _table(out["data"])
    if getattr(r, "chart", None) is not None:  # E2B's chart data of a matplotlib figure, as a plain dict
        out["chart"] = r.chart.to_dict()
    out["is_main_result"] = bool(r.is_main_result)
    return out


def _table(data: dict[str, Any]) -> dict[str, Any]:
    """E2B gives a DataFrame as `{column: [values]}`; a result carries it as a table."""
    columns = list(data)
    values = (v if isinstance(v, list) else [v] for v in data.values())
    rows = [list(row) for row in zip(*values, strict=False)]
    return {"columns": columns, "rows": rows, "total_rows": len(rows)}
