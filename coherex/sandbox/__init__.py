"""Sandboxes: where agent code runs, isolated from the platform and from other agents.

One client path for both backends: the official E2B SDK (`e2b_client.py`, the only module that
imports it). Cloud E2B when `E2B_API_KEY` is set; otherwise the local E2B-compatible server
(`coherex sandbox serve`, in `server/`) on 127.0.0.1:`COHEREX_SANDBOX_PORT`, which isolates each
sandbox with bubblewrap and cgroups.

    async with await open_sandbox(settings) as sbx:
        result = await sbx.run_code("print(1)", on_stdout=print)
        result.error  # a user's exception is data: {"name", "value", "traceback"}, never raised
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from coherex.sandbox.errors import (
    CommandFailed,
    SandboxAuthError,
    SandboxError,
    SandboxInvalidInput,
    SandboxNotFound,
    SandboxTimeout,
    SandboxUnavailable,
)
from coherex.settings import Settings, get_settings

OutputHandler = Callable[[str], Awaitable[None] | None]

DEFAULT_TIMEOUT_S = 300  # sandbox lifetime unless extended with set_timeout
DEFAULT_CODE_TIMEOUT_S = 60.0


class CodeError(TypedDict):
    name: str
    value: str
    traceback: str


@dataclass
class CodeResult:
    """What one `run_code` produced. `results` are plain dicts in E2B's formats: `text`, `html`,
    `markdown`, `png`/`jpeg`/`svg` (base64 / text), `json` (a plotly figure), `data` (a DataFrame
    as `{"columns": [...], "rows": [[...]], "total_rows": n}`), plus `is_main_result`."""

    stdout: str = ""
    stderr: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    error: CodeError | None = None
    execution_count: int | None = None

    @property
    def text(self) -> str | None:
        """The text of the cell's value (its last expression), as a REPL would show it."""
        return next((r.get("text") for r in self.results if r.get("is_main_result")), None)


@dataclass
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str


@dataclass
class FileEntry:
    name: str
    path: str
    type: str  # "file" | "dir" | "symlink"
    size: int


async def open_sandbox(
    settings: Settings | None = None,
    *,
    template: str | None = None,
    timeout: int = DEFAULT_TIMEOUT_S,
    envs: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    allow_network: bool = False,
) -> Sandbox:
    """A fresh sandbox (never a reused one). Kill it when done, or use `async with`."""
    from coherex.sandbox.e2b_client import create

    return await create(
        settings or get_settings(),
        template=template,
        timeout=timeout,
        envs=envs,
        metadata=metadata,
        allow_network=allow_network,
    )


async def health(settings: Settings | None = None) -> dict[str, Any]:
    """Whether the configured sandbox backend answers, and what it is."""
    from coherex.sandbox.e2b_client import backend_health

    return await backend_health(settings or get_settings())


# the implementation is the E2B SDK adapter; imported here so `coherex.sandbox.Sandbox` is public
from coherex.sandbox.e2b_client import Sandbox  # noqa: E402

__all__ = [
    "CodeError",
    "CodeResult",
    "CommandFailed",
    "CommandResult",
    "FileEntry",
    "OutputHandler",
    "Sandbox",
    "SandboxAuthError",
    "SandboxError",
    "SandboxInvalidInput",
    "SandboxNotFound",
    "SandboxTimeout",
    "SandboxUnavailable",
    "health",
    "open_sandbox",
]
