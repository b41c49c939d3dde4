"""Errors form one tree (coherex/errors.py) and are told apart by type and attributes, never by
their text."""

from __future__ import annotations

import httpx
import pytest

from coherex.errors import (
    BackendError,
    CoherexError,
    ExecutionError,
    QuotaExceeded,
    RateLimited,
    Unauthorized,
    UserError,
)
from coherex.integrations.base import ServiceError
from coherex.runtime import ConcurrencyLimited, RetryLater
from coherex.runtime.tools import ToolFailed


@pytest.mark.parametrize(
    "kind, parent, code",
    [
        (Unauthorized, UserError, "unauthorized"),
        (RateLimited, UserError, "rate_limited"),
        (ConcurrencyLimited, QuotaExceeded, "concurrency_limited"),
        (RetryLater, BackendError, "backend_unavailable"),
        (ToolFailed, ExecutionError, "execution_failed"),
        (ServiceError, CoherexError, "error"),
    ],
)
def test_every_error_has_its_place_in_the_tree(kind, parent, code):
    assert issubclass(kind, parent) and issubclass(kind, CoherexError) and kind.code == code


def test_what_a_person_reads_is_the_message_and_its_hint():
    assert str(RateLimited("Too many requests for this API key.", retry_after=7.2)) == (
        "Too many requests for this API key.\n  hint: Retry after 7 s."
    )
    failed = ServiceError("Slack is rate limiting these requests.", status=429, retry_after=3)
    assert str(failed) == failed.message == "Slack is rate limiting these requests."
    assert (failed.status, failed.retry_after, failed.hint) == (429, 3, None)
    assert str(ToolFailed("There is no tool 'x'.")) == "There is no tool 'x'."


def _raised(make, behind: BaseException | None = None, *, cause: bool = False) -> BaseException:
    try:
        if behind is None:
            raise make()
        try:
            raise behind
        except type(behind) as exc:
            if cause:
                raise make() from exc
            raise make()  # noqa: B904 (as the SDK does: while handling, without `from`)
    except Exception as exc:  # noqa: BLE001 (any error the factory makes)
        return exc


def test_a_gone_e2b_sandbox_is_told_from_a_timeout_by_what_is_behind_the_sdk_error():
    from e2b import TimeoutException
    from e2b_code_interpreter.exceptions import format_execution_timeout_error, format_sandbox_killed_error

    from coherex.sandbox.e2b_client import _sandbox_gone

    request = httpx.Request("POST", "http://sandbox/execute")
    # the proxy's 502, raised from the answer itself
    assert _sandbox_gone(_raised(lambda: TimeoutException("<html>502</html>: likely due to sandbox timeout")))
    # the sandbox killed while the request was in flight
    killed = _raised(format_sandbox_killed_error, httpx.ReadError("eof", request=request), cause=True)
    assert _sandbox_gone(killed)
    # the code ran past its timeout, or the request did
    assert not _sandbox_gone(_raised(format_execution_timeout_error, httpx.ReadTimeout("t", request=request)))
    assert not _sandbox_gone(
        _raised(format_execution_timeout_error, httpx.ConnectTimeout("t", request=request))
    )


def test_a_slack_answer_that_is_not_json_is_a_retryable_service_error():
    from slack_sdk.errors import SlackApiError

    from coherex.tools.providers.slack import _service_error

    class Page:  # what the SDK attaches then: the HTTP response, not a parsed Slack response
        status = 502

    error = _service_error(
        "chat.postMessage", SlackApiError("Received a response in a non-JSON format", Page())
    )
    assert error.message == "Slack answered chat.postMessage with something that is not a Slack API response."
    assert error.retryable
    # a JSON error answer is not that
    refused = SlackApiError(
        "error", type("R", (), {"status_code": 200, "data": {"error": "channel_not_found"}})()
    )
    assert _service_error("chat.postMessage", refused).message == (
        "Slack answered chat.postMessage with error 'channel_not_found'."
    )
