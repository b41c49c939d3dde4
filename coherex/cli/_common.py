"""Shared helpers for CLI commands: consoles, running coroutines, JSON output."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from rich.console import Console

# Piped output is not wrapped or squeezed to 80 columns: tables stay whole for grep and friends.
_PIPE_WIDTH = None if sys.stdout.isatty() else 200
console = Console(highlight=False, soft_wrap=True, width=_PIPE_WIDTH)
err_console = Console(
    stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else 200
)

T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def print_json(data: Any) -> None:
    # plain print: rich would wrap long lines and break machine parsing
    print(json.dumps(data, indent=2, default=str))
