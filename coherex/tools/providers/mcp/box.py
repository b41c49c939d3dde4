"""The stdio transport of a local MCP server that runs inside a sandbox box, never on the host.

The command (`npx -y @scope/server`, `uvx pkg`, `python -m module`) is started in the box with a
stdin pipe (the E2B commands API); JSON-RPC messages are written to its stdin and read from its
stdout one line each, as the SDK's own stdio transport does with a local process. The server's
environment (tokens from the vault) goes to the box with the start request only: it is never part
of the command line, a log line or an event.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import types
from mcp.shared.message import SessionMessage

from coherex.integrations.vault import redact

log = logging.getLogger(__name__)

STDERR_KEPT = 4000  # characters of the server's stderr kept for the error message of a crash
# npm prints upgrade notices and progress; none of that belongs in a box that only serves MCP
QUIET_ENV = {"NPM_CONFIG_UPDATE_NOTIFIER": "false", "NPM_CONFIG_FUND": "false", "NO_COLOR": "1"}


class BoxedServer:
    """What the transport knows about the server process: its stderr tail and how it ended."""

    def __init__(self, secrets: list[str]):
        self.stderr = ""
        self.exit_code: int | None = None
        self._secrets = secrets

    def add_stderr(self, chunk: str) -> None:
        self.stderr = (self.stderr + chunk)[-STDERR_KEPT:]

    def describe_end(self) -> str:
        """Why the server is gone, in words (secrets hidden)."""
        how = "stopped" if self.exit_code is None else f"exited with code {self.exit_code}"
        tail = redact(self.stderr.strip()[-600:], self._secrets)
        return f"the server {how}" + (f"; its last output: {tail}" if tail else "")


@asynccontextmanager
async def box_stdio_client(
    sandbox: Any, command: str, env: dict[str, str], *, secrets: list[str], server: BoxedServer | None = None
) -> AsyncIterator[tuple[MemoryObjectReceiveStream, MemoryObjectSendStream]]:
    """(read stream, write stream) for `mcp.ClientSession`, like `mcp.client.stdio.stdio_client`."""
    server = server or BoxedServer(secrets)
    read_writer: MemoryObjectSendStream[SessionMessage | Exception]
    read_stream: MemoryObjectReceiveStream[SessionMessage | Exception]
    read_writer, read_stream = anyio.create_memory_object_stream(64)
    write_stream: MemoryObjectSendStream[SessionMessage]
    write_reader: MemoryObjectReceiveStream[SessionMessage]
    write_stream, write_reader = anyio.create_memory_object_stream(0)
    buffer = ""

    async def on_stdout(chunk: str) -> None:
        nonlocal buffer
        lines = (buffer + chunk).split("\n")
        buffer = lines.pop()
        for line in lines:
            if not line.strip():
                continue
            try:
                message = types.JSONRPCMessage.model_validate_json(line)
            except ValueError:
                # a server that prints a banner on stdout: skip the line (stdout is for JSON-RPC only)
                log.debug("an MCP server in a box printed a line that is not JSON-RPC")
                continue
            with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                await read_writer.send(SessionMessage(message))

    proc = await sandbox.commands.start(
        command, envs={**QUIET_ENV, **env}, on_stdout=on_stdout, on_stderr=server.add_stderr
    )

    async def watch_exit() -> None:
        try:
            server.exit_code = await proc.wait()
        except Exception as exc:  # noqa: BLE001 -- the box died: the session's pending calls fail as "closed"
            log.debug("MCP server box ended: %s", type(exc).__name__)
        finally:
            await read_writer.aclose()  # pending requests now fail as "connection closed"

    async def stdin_writer() -> None:
        async with write_reader:
            async for message in write_reader:
                data = message.message.model_dump_json(by_alias=True, exclude_none=True) + "\n"
                try:
                    await proc.send(data)
                except Exception:  # noqa: BLE001 -- the process is gone: watch_exit reports it
                    log.debug("writing to an MCP server in a box failed")
                    return

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_exit)
        tg.start_soon(stdin_writer)
        try:
            yield read_stream, write_stream
        finally:
            with contextlib.suppress(Exception):
                await proc.kill()
            tg.cancel_scope.cancel()
            await write_stream.aclose()
            await read_stream.aclose()
