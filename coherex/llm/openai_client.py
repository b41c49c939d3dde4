"""Adapter for OpenAI and any OpenAI-compatible server (Ollama, vLLM, LM Studio, llama.cpp).

The only module that imports the `openai` SDK. It turns SDK exceptions into Coherex errors that
name the setting to change, and leaves retrying to `coherex.retry` (SDK retries are off).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from typing import Any

import openai

from coherex.llm.errors import (
    LLMAuthError,
    LLMBadRequest,
    LLMError,
    LLMModelNotFound,
    LLMRateLimited,
)
from coherex.llm.pricing import cost_usd
from coherex.llm.types import ChatResult, Message, StreamHandler, Tool, ToolCall, Usage, parse_tool_arguments
from coherex.retry import RetriesExhausted, Retryable, RetryPolicy, call_with_retries
from coherex.settings import Settings

OPENAI_URL = "https://api.openai.com/v1"
# Statuses worth trying again, as in the SDK's own policy: timeout, conflict, rate limit, server.
_RETRY_STATUSES = {408, 409, 429}


class OpenAIClient:
    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None = None,
        default_model: str = "gpt-4o-mini",
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
    ):
        self.base_url = base_url or OPENAI_URL
        self.default_model = default_model
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._client = openai.AsyncOpenAI(
            # Local servers (Ollama, vLLM) need no key, but the SDK insists on one.
            api_key=api_key or "not-needed",
            base_url=self.base_url,
            timeout=timeout,
            max_retries=0,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIClient:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return cls(
            api_key=key,
            base_url=settings.openai_base_url,
            default_model=settings.default_model,
            timeout=settings.llm_timeout,
            retry=RetryPolicy(max_attempts=settings.llm_max_attempts),
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool] | None = None,
        *,
        model: str | None = None,
        temperature: float | None = None,
        stream_handler: StreamHandler | None = None,
    ) -> ChatResult:
        model = model or self.default_model
        request: dict[str, Any] = {"model": model, "messages": list(messages)}
        if tools:
            request["tools"] = list(tools)
        if temperature is not None:
            request["temperature"] = temperature
        started = time.perf_counter()

        async def attempt() -> ChatResult:
            emitted = False

            def handler(delta: str) -> None:
                nonlocal emitted
                emitted = True
                stream_handler(delta)  # type: ignore[misc]

            try:
                if stream_handler is None:
                    return await self._complete(request)
                return await self._stream(request, handler)
            except openai.OpenAIError as exc:
                error = self._map_error(exc, model)
                # Text already shown to the user cannot be taken back: no retry after a delta.
                if isinstance(error, Retryable) and emitted:
                    raise error.cause from exc
                raise error from exc

        try:
            result = await call_with_retries(attempt, self.retry)
        except RetriesExhausted as exc:
            cause = exc.cause
            assert isinstance(cause, LLMError)
            raise type(cause)(
                f"{cause.message} (gave up after {exc.attempts} attempts)", hint=cause.hint
            ) from None
        cost, known = cost_usd(
            result.model or model, result.usage.prompt_tokens, result.usage.completion_tokens
        )
        return ChatResult(
            content=result.content,
            tool_calls=result.tool_calls,
            usage=result.usage,
            cost_usd=cost,
            price_known=known,
            model=result.model or model,
            finish_reason=result.finish_reason,
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    async def _complete(self, request: dict[str, Any]) -> ChatResult:
        response = await self._client.chat.completions.create(**request)
        if not response.choices:
            raise LLMError(f"The LLM server at {self.base_url} answered with no choices.")
        choice = response.choices[0]
        calls = [
            _tool_call(call.id, call.function.name, call.function.arguments)
            for call in choice.message.tool_calls or []
            if call.type == "function"
        ]
        usage = response.usage
        return ChatResult(
            content=choice.message.content,
            tool_calls=calls,
            usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
            model=response.model,
            finish_reason=choice.finish_reason or "stop",
        )

    async def _stream(self, request: dict[str, Any], handler: StreamHandler) -> ChatResult:
        stream = await self._client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}  # tool-call fragments by index
        usage = Usage()
        model = ""
        finish_reason = "stop"
        async for chunk in stream:
            model = chunk.model or model
            if chunk.usage:
                usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            for choice in chunk.choices:
                delta = choice.delta
                if delta.content:
                    text.append(delta.content)
                    handler(delta.content)
                for fragment in delta.tool_calls or []:
                    call = calls.setdefault(fragment.index, {"id": "", "name": "", "arguments": ""})
                    call["id"] = fragment.id or call["id"]
                    if fragment.function:
                        call["name"] += fragment.function.name or ""
                        call["arguments"] += fragment.function.arguments or ""
                if choice.finish_reason:
                    finish_reason = choice.finish_reason
        return ChatResult(
            content="".join(text) or None,
            tool_calls=[_tool_call(c["id"], c["name"], c["arguments"]) for _, c in sorted(calls.items())],
            usage=usage,
            model=model,
            finish_reason=finish_reason,
        )

    def _map_error(self, exc: openai.OpenAIError, model: str) -> Exception:
        """The most specific Coherex error for an SDK exception; `Retryable` if worth retrying."""
        where = f"the LLM server at {self.base_url}"
        if isinstance(exc, openai.APITimeoutError):
            return Retryable(
                LLMError(
                    f"{where} did not answer within {self.timeout:g} s.", hint="raise COHEREX_LLM_TIMEOUT"
                )
            )
        if isinstance(exc, openai.APIConnectionError):
            return Retryable(
                LLMError(
                    f"Cannot reach {where}: {exc}.", hint="check OPENAI_BASE_URL and that the server runs"
                )
            )
        if not isinstance(exc, openai.APIStatusError):
            return LLMError(f"Unexpected answer from {where}: {exc}")
        status = exc.status_code
        detail = _server_message(exc)
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
        if status == 429 and _error_code(exc) == "insufficient_quota":
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
                retry_after=_retry_after(exc.response.headers),
            )
        if status in _RETRY_STATUSES or status >= 500:
            return Retryable(
                LLMError(f"{where} failed ({status}): {detail}"),
                retry_after=_retry_after(exc.response.headers),
            )
        if status in (400, 413, 422):
            return LLMBadRequest(f"{where} rejected the request ({status}): {detail}")
        return LLMError(f"{where} answered {status}: {detail}")


def _tool_call(call_id: str | None, name: str, arguments: str | None) -> ToolCall:
    # Some compatible servers omit ids; the conversation still needs one to pair results.
    return ToolCall(
        id=call_id or f"call_{uuid.uuid4().hex[:24]}",
        name=name,
        arguments=parse_tool_arguments(arguments, name),
    )


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return exc.message


def _error_code(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    error = body.get("error", body) if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asks us to wait: `retry-after-ms` (OpenAI), `retry-after` s or date."""
    try:
        if ms := headers.get("retry-after-ms"):
            return float(ms) / 1000
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
