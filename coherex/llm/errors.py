"""LLM errors, each a subclass of the shared Coherex type that says who must act."""

from __future__ import annotations

from coherex.errors import BackendError, UserError


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
