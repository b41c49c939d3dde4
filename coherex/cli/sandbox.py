"""`coherex sandbox ...`: run the local sandbox server, run code in a fresh sandbox, check health."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import typer

from coherex.cli._common import console, err_console, print_json, run_async
from coherex.errors import UserError
from coherex.settings import get_settings

app = typer.Typer(no_args_is_help=True)


@app.command()
def serve(port: int = typer.Option(None, help="Port on 127.0.0.1 (default: COHEREX_SANDBOX_PORT).")) -> None:
    """Run the local E2B-compatible sandbox server in the foreground."""
    from coherex.sandbox.server.run import api_key_file, local_api_key
    from coherex.sandbox.server.run import serve as run_server

    settings = get_settings()
    port = port or settings.sandbox_port
    key = local_api_key(settings, create=True)
    err_console.print(
        f"sandbox server on http://127.0.0.1:{port} (API key in {api_key_file(settings)}; "
        f"warm pool {settings.sandbox_pool_size}). Ctrl-C stops it."
    )
    try:
        run_async(run_server(settings, port=port, api_key=key))
    except KeyboardInterrupt:
        pass


@app.command("exec")
def exec_(
    file: str = typer.Argument(..., help="Python file to run, or - for stdin."),
    timeout: float = typer.Option(60, "--timeout", help="Stop the code after this many seconds."),
    allow_network: bool = typer.Option(False, "--allow-network", help="Let the code reach the network."),
) -> None:
    """Run a Python file in a fresh sandbox, stream its output, exit with its status."""
    if file == "-":
        code = sys.stdin.read()
    else:
        path = Path(file)
        if not path.is_file():
            raise UserError(f"{file}: no such file")
        try:
            code = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{file}: cannot read it as text ({exc})") from None
    if timeout <= 0:
        raise UserError("--timeout must be a positive number of seconds")
    status = run_async(_exec(code, timeout, allow_network))
    # End now, without the interpreter's finalization: the E2B SDK's HTTP client (pyqwest) runs
    # tokio threads that may still hand a finished read back to Python while it finalizes; CPython
    # then ends such a thread with pthread_exit, which aborts the process when it unwinds through
    # Rust frames (SIGABRT, empty stderr; about 1 run in 20 under load, seen in a core dump).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


async def _exec(code: str, timeout: float, allow_network: bool) -> int:
    from coherex.sandbox import open_sandbox
    from coherex.sandbox.server.run import ServerThread, local_api_key, port_is_open

    settings = get_settings()
    server = None
    if settings.sandbox == "local" and not port_is_open(settings.sandbox_port):
        # no server running: start one in this process for this one run
        settings = settings.model_copy(update={"sandbox_pool_size": 0})
        server = ServerThread(
            settings, port=settings.sandbox_port, api_key=local_api_key(settings, create=True)
        )
        await asyncio.to_thread(server.start)
    try:
        async with await open_sandbox(
            settings, timeout=int(timeout) + 30, allow_network=allow_network
        ) as sbx:
            result = await sbx.run_code(
                code,
                timeout=timeout,
                on_stdout=lambda s: print(s, end="", flush=True),
                on_stderr=lambda s: print(s, end="", file=sys.stderr, flush=True),
            )
    finally:
        if server is not None:
            await asyncio.to_thread(server.stop)
    for r in result.results:
        if r.get("is_main_result") and r.get("text"):
            console.print(r["text"])
    if result.error and result.error["name"] == "SystemExit":
        return _exit_status(result.error["value"])
    if result.error:
        err_console.print(
            result.error["traceback"] or f"{result.error['name']}: {result.error['value']}", markup=False
        )
        return 1
    return 0


def _exit_status(value: str) -> int:
    """`sys.exit(x)` in the sandbox as Python would end: None → 0, an int → itself, else the
    message on stderr and 1."""
    value = (value or "").strip()
    if value in ("", "None"):
        return 0
    try:
        return int(value) & 0xFF
    except ValueError:
        err_console.print(value, markup=False)
        return 1


@app.command()
def health() -> None:
    """Check that the configured sandbox backend answers."""
    from coherex.sandbox import health as check

    print_json(run_async(check(get_settings())))
