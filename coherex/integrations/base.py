"""The common shape of a data source type, and the one place that calls a service.

A tool provider (coherex/tools/providers/) that serves a data source defines a `SourceType`: its
config and credential models, how it connects (a pasted secret or OAuth2), a `test_connection`;
its tools (with their argument schemas and required access) are the provider's.

Adapters raise `ServiceError` for whatever the service answered; `call_service` turns 429s (and
5xx for reads) into retries through the project's single retry policy, after the per-source
rate limiter (shared by every process, in the database) lets the call through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from coherex.errors import CoherexError
from coherex.retry import RetriesExhausted, Retryable, RetryPolicy, call_with_retries
from coherex.settings import Settings, get_settings
from coherex.store.models import DataSource

if TYPE_CHECKING:
    import httpx

    from coherex.store.db import Database

C = TypeVar("C", bound=BaseModel)
K = TypeVar("K", bound=BaseModel)
T = TypeVar("T")


class Model(BaseModel):
    """Config and credential models: unknown fields are mistakes worth reporting."""

    model_config = ConfigDict(extra="forbid")


class ServiceError(CoherexError):
    """What a service answered, in words for a person; never carries a secret. A tier of its own
    beside UserError/BackendError (coherex/errors.py): the service boundary turns it into one."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        auth: bool = False,
        retryable: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.auth = auth  # the credentials were refused: revoked, expired, wrong
        self.retryable = retryable


@dataclass
class Call(Generic[C, K]):
    """What an action gets: the source, its parsed config and decrypted credentials."""

    source: DataSource
    config: C
    credentials: K

    @property
    def settings(self) -> Settings:
        return get_settings()


@dataclass(frozen=True)
class Check:
    """A connection test, in plain words: `summary` says who we are connected as and what works."""

    ok: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SourceType:
    name: str
    title: str
    config_model: type[Model]
    credentials_model: type[Model]
    test_connection: Callable[[Call], Awaitable[Check]]
    #: "secret" — pasted at `sources add`; "oauth" — obtained through an OAuth2 flow (or pasted)
    connect: Literal["secret", "oauth"] = "secret"
    oauth_provider: str | None = None
    #: steady calls per second allowed per source (bursts up to `rate_burst`)
    rate_per_second: float = 5.0
    rate_burst: int = 10
    #: revoke the credentials at the provider when the source is removed
    revoke: Callable[[Call], Awaitable[None]] | None = None
    #: (host, port) a new source of this type will connect to, given its (config, credentials):
    #: checked by the egress guard when the source is added (and again at every connection);
    #: ValueError with a sentence for the person when they name no network address at all
    destinations: Callable[[Any, Any], list[tuple[str, int]]] | None = None
    #: the OAuth token answer (`oauth_provider`'s) → this type's credentials; None: no sign-in
    credentials_from_oauth: Callable[[dict[str, Any]], Model] | None = None


# ---------------------------------------------------------------- rate limiting and retries


@dataclass
class SharedBucket:
    """The calls to one data source, limited across every process (a token bucket in the database:
    several workers together stay within the service's rate); the backoff on 429 below covers
    whatever the service counts differently."""

    db: Database
    key: UUID
    rate: float
    burst: int

    async def acquire(self) -> None:
        from coherex.store.db import Identity

        while True:
            async with self.db.session(Identity.system()) as s:
                wait = await s.rate_limits.take(self.key, self.rate, self.burst)
            if wait is None:
                return
            await asyncio.sleep(wait)


def bucket_for(db: Database, source: DataSource, kind: SourceType) -> SharedBucket:
    return SharedBucket(db, source.id, kind.rate_per_second, kind.rate_burst)


async def call_service(fn: Callable[[], Awaitable[T]], *, limiter: SharedBucket, idempotent: bool) -> T:
    """Run one service call under the rate limiter, retrying 429 always and 5xx only when repeating
    the call is harmless (a read): a write that hit a 5xx may have happened."""
    settings = get_settings()
    policy = RetryPolicy(
        max_attempts=settings.integration_max_attempts, max_retry_after=settings.integration_max_retry_after
    )

    async def attempt() -> T:
        await limiter.acquire()
        try:
            return await fn()
        except ServiceError as exc:
            if exc.status == 429 or (exc.retryable and idempotent):
                raise Retryable(exc, exc.retry_after) from None
            raise

    try:
        return await call_with_retries(attempt, policy)
    except RetriesExhausted as exc:
        cause = exc.cause
        assert isinstance(cause, ServiceError)
        if cause.status == 429:
            wait = f" It asked to wait {cause.retry_after:.0f} s." if cause.retry_after else ""
            raise ServiceError(
                f"{cause.message} (still rate limited after {exc.attempts} attempt(s)).{wait}",
                status=429,
                retry_after=cause.retry_after,
            ) from None
        raise ServiceError(f"{cause.message} (after {exc.attempts} attempts)", status=cause.status) from None


def retry_after_seconds(headers: Any) -> float | None:
    """Retry-After as seconds (it may be a number or an HTTP date); GitHub's reset time as fallback."""
    value = headers.get("retry-after") if headers is not None else None
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
            except (TypeError, ValueError):
                return None
    reset = headers.get("x-ratelimit-reset") if headers is not None else None
    if reset and headers.get("x-ratelimit-remaining") == "0":
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            return None
    return None


# ---------------------------------------------------------------- plain HTTP services (httpx)


def http_client(base_url: str = "", headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """The client for every call to a service: each connection passes the egress guard."""
    from coherex import egress  # imported when used: `coherex validate` loads this module, not httpx

    return egress.async_client(
        base_url=base_url, headers=headers, timeout=get_settings().integration_timeout, follow_redirects=False
    )


async def send(
    client: httpx.AsyncClient, service: str, method: str, url: str, *, check: bool = True, **kwargs: Any
) -> httpx.Response:
    """One HTTP request; any failure becomes a `ServiceError` naming the service, not the token.
    With `check=False` only transport failures raise; the caller judges the status."""
    import httpx

    from coherex import egress

    try:
        response = await client.request(method, url, **kwargs)
    except egress.EgressDenied as exc:
        raise ServiceError(exc.message) from None
    except httpx.TimeoutException:
        raise ServiceError(f"{service} did not answer in time.", retryable=True) from None
    except httpx.HTTPError as exc:
        raise ServiceError(f"Cannot reach {service}: {type(exc).__name__}.", retryable=True) from None
    if check:
        check_status(response, service)
    return response


def check_status(response: httpx.Response, service: str) -> None:
    status = response.status_code
    if status < 400:
        return
    detail = _error_detail(response)
    wait = retry_after_seconds(response.headers)
    if status == 429 or (status == 403 and response.headers.get("x-ratelimit-remaining") == "0"):
        raise ServiceError(f"{service} is rate limiting these requests.", status=429, retry_after=wait)
    if status == 401:
        raise ServiceError(
            f"{service} refused the credentials (revoked, expired or wrong){detail}.",
            status=status,
            auth=True,
        )
    if status == 403:
        raise ServiceError(f"{service} does not allow this with these credentials{detail}.", status=status)
    if status == 404:
        raise ServiceError(f"{service} found no such thing{detail}.", status=status)
    if status >= 500:
        raise ServiceError(f"{service} had an internal error (HTTP {status}).", status=status, retryable=True)
    raise ServiceError(f"{service} refused the request (HTTP {status}){detail}.", status=status)


def _error_detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    message = (
        body.get("message") or body.get("error_description") or body.get("error")
        if isinstance(body, dict)
        else None
    )
    if isinstance(message, dict):  # Google: {"error": {"message": ...}}
        message = message.get("message")
    return f": {str(message)[:200]}" if message else ""


def json_of(response: httpx.Response, service: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ServiceError(
            f"{service} answered with something that is not JSON (HTTP {response.status_code}).",
            status=response.status_code,
            retryable=True,
        ) from None
