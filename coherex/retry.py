"""The one retry policy of Coherex (LLM calls and integrations): exponential backoff with full
jitter, honouring Retry-After.

SDK retries (openai, slack_sdk) are switched off so that this is the only place that decides, and
tests can count attempts on the fake servers.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class Retryable(Exception):
    """Raised by an attempt that may be tried again; `retry_after` is the server's wish in s."""

    def __init__(self, cause: BaseException, retry_after: float | None = None):
        super().__init__(str(cause))
        self.cause = cause
        self.retry_after = retry_after


class RetriesExhausted(Exception):
    """Every attempt failed (or the server asked to wait longer than `max_retry_after`)."""

    def __init__(self, last: Retryable, attempts: int):
        super().__init__(str(last.cause))
        self.cause = last.cause
        self.retry_after = last.retry_after
        self.attempts = attempts


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 20.0
    #: a Retry-After longer than this is not waited for: the call fails at once
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        # The server knows best when it will accept us again: never retry earlier than it says.
        return max(backoff, retry_after) if retry_after is not None else backoff


async def call_with_retries(
    attempt_fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run `attempt_fn` until it succeeds, raises a non-`Retryable` error or attempts run out.

    When attempts run out (or Retry-After is too long), `RetriesExhausted` carries the last cause.
    """
    attempt = 1
    while True:
        try:
            return await attempt_fn()
        except Retryable as exc:
            too_long = exc.retry_after is not None and exc.retry_after > policy.max_retry_after
            if attempt >= policy.max_attempts or too_long:
                raise RetriesExhausted(exc, attempt) from None
            await sleep(policy.delay(attempt, exc.retry_after))
            attempt += 1
