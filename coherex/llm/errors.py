"""LLM errors, each a subclass of the shared Coherex type that says who must act, and what each
answer of an OpenAI-compatible server means (one table for the real client and the test double)."""

from __future__ import annotations

from coherex.errors import BackendError, UserError
from coherex.retry import Retryable


class LLMError(BackendError):
    """The LLM backend failed (unreachable, overloaded, retries exhausted)."""

    code = "llm_unavailable"


class LLMAuthError(LLMError):
    code = "llm_auth_failed"


class LLMRateLimited(LLMError):
    code = "llm_rate_limited"


class LLMResponseError(LLMError):
    """The model answered something unusable (e.g. tool arguments that are not a JSON object)."""

    code = "llm_bad_response"


class LLMModelNotFound(UserError):
    code = "llm_model_not_found"


class LLMBadRequest(UserError):
    """The server rejected the request itself (bad parameters, context too long)."""

    code = "llm_bad_request"


# Statuses worth trying again, as in the SDK's own policy: timeout, conflict, rate limit, server.
_RETRY_STATUSES = {408, 409, 429}


def timeout_error(where: str, timeout: float) -> Retryable:
    return Retryable(
        LLMError(f"{where} did not answer within {timeout:g} s.", hint="raise COHEREX_LLM_TIMEOUT")
    )


def status_error(
    where: str,
    model: str,
    status: int,
    detail: str,
    *,
    code: str | None = None,
    retry_after: float | None = None,
) -> Exception:
    """The most specific Coherex error for an HTTP error answer; `Retryable` if worth retrying."""
    if status in (401, 403):
        return LLMAuthError(
            f"{where} rejected the API key ({status}): {detail}",
            hint="set OPENAI_API_KEY to a valid key for this server",
        )
    if status == 404:
        return LLMModelNotFound(
            f"Model {model!r} is not available on {where} (404): {detail}",
            hint="set COHEREX_MODEL (or spec.model.name) to a model the server lists at /v1/models; "
            "if the URL is wrong, fix OPENAI_BASE_URL",
        )
    if status == 429 and code == "insufficient_quota":
        return LLMRateLimited(
            f"{where} reports the account is out of quota: {detail}",
            hint="add credit to the account or set OPENAI_API_KEY to another key",
        )
    if status == 429:
        return Retryable(
            LLMRateLimited(
                f"{where} is rate limiting requests (429): {detail}",
                hint="lower the request rate or raise the account's limits",
            ),
            retry_after=retry_after,
        )
    if status in _RETRY_STATUSES or status >= 500:
        return Retryable(LLMError(f"{where} failed ({status}): {detail}"), retry_after=retry_after)
    if status in (400, 413, 422):
        return LLMBadRequest(f"{where} rejected the request ({status}): {detail}")
    return LLMError(f"{where} answered {status}: {detail}")


def gave_up(cause: BaseException, attempts: int) -> LLMError:
    """The last attempt's error, saying how many attempts were made."""
    assert isinstance(cause, LLMError)
    return type(cause)(f"{cause.message} (gave up after {attempts} attempts)", hint=cause.hint)
