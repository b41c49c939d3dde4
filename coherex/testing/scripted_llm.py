"""An in-process `LLMClient` driven by a script: the items `FakeOpenAI` takes, without HTTP.

As pydantic-ai ships `TestModel`/`FunctionModel` beside its real models: for tests of what the
runtime or the builder does with the model's answers (limits, repairs, tool rounds), where the
wire protocol is not the point. What the HTTP fake and this double answer is the same — text,
tool calls and their ids, usage, cost, streamed deltas, errors and retries — and
tests/integration/llm/test_llm_contract.py holds both to it.

    from coherex.testing.fake_openai import Text, ToolCall, Error
    from coherex.testing.scripted_llm import ScriptedLLM

    llm = ScriptedLLM([ToolCall("python", {"code": "print(1+1)"}), Text("The answer is 2.")])
    runtime = Runtime(db, llm=llm)
    ...
    assert llm.chat_requests[0].body["tools"][0]["function"]["name"] == "python"

Same API as `FakeOpenAI`: `script(items)`, `always(item)`, `reset()`, `requests`/`chat_requests`
(each a `RecordedRequest` whose `body` is the JSON the real client would send: `model`,
`messages`, `tools`, `temperature`, `stream`), `models` (a model not listed is a 404 like the
server's). Items: `Text`, `ToolCall`, `Reply`, `Error`, `Slow`, or a callable of the request.

Limits (what the HTTP fake tests and this does not): no SDK, no JSON over a socket, no SSE framing
(streamed text reaches the handler word by word, as the fake server sends it); `Slow` past the
client `timeout` fails like a client timeout without a request left in flight; the retry policy's
waits default to none (a scripted Retry-After is still waited for); there is no API key check
(`Error(401)` scripts a refused key); no embeddings.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from coherex.llm.errors import gave_up, status_error, timeout_error
from coherex.llm.pricing import cost_usd
from coherex.llm.types import ChatResult, Message, StreamHandler, Tool, ToolCall, Usage, parse_tool_arguments
from coherex.retry import RetriesExhausted, RetryPolicy, call_with_retries
from coherex.testing.fake_openai import (
    DEFAULT_MODELS,
    Error,
    Item,
    RecordedRequest,
    Reply,
    Slow,
    Text,
    _arguments,
    _as_reply,
    _call_ids,
    _usage,
)
from coherex.testing.fake_openai import ToolCall as ScriptedCall

CHAT_PATH = "/v1/chat/completions"
#: no waits between attempts (a scripted Retry-After still counts): tests stay fast
NO_WAIT = RetryPolicy(base_delay=0.0, max_delay=0.0)


class ScriptedLLM:
    """`ScriptedLLM(items=(), *, default_model="gpt-4o-mini", timeout=120, retry=NO_WAIT)`."""

    where = "the scripted LLM"

    def __init__(
        self,
        items: Iterable[Item] = (),
        *,
        default_model: str = "gpt-4o-mini",
        models: Iterable[str] = DEFAULT_MODELS,
        timeout: float = 120.0,
        retry: RetryPolicy = NO_WAIT,
    ):
        self.default_model = default_model
        self.models = list(models)
        self.timeout = timeout
        self.retry = retry
        self._script: deque[Item] = deque(items)
        self._fallback: Item = Error(500, "scripted LLM: script exhausted")
        self._requests: list[RecordedRequest] = []

    # --- scripting and records (as FakeOpenAI) ---
    def script(self, items: Iterable[Item]) -> ScriptedLLM:
        self._script.extend(items)
        return self

    def always(self, item: Item) -> ScriptedLLM:
        self._fallback = item
        return self

    def reset(self) -> None:
        self._script.clear()
        self._requests.clear()
        self._fallback = Error(500, "scripted LLM: script exhausted")

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return self.requests

    # --- the LLMClient port ---
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
        # what the real client sends: a JSON round trip, so no test holds on to our own objects
        body: dict[str, Any] = {"model": model, "messages": json.loads(json.dumps(list(messages)))}
        if tools:
            body["tools"] = json.loads(json.dumps(list(tools)))
        if temperature is not None:
            body["temperature"] = temperature
        if stream_handler is not None:
            body.update(stream=True, stream_options={"include_usage": True})
        started = time.perf_counter()

        async def attempt() -> ChatResult:
            recorded = RecordedRequest("POST", CHAT_PATH, {}, body, time.monotonic())
            self._requests.append(recorded)
            if model not in self.models:
                detail = f"The model `{model}` does not exist or you do not have access to it."
                raise status_error(self.where, model, 404, detail, code="model_not_found")
            item = self._script.popleft() if self._script else self._fallback
            reply = await self._resolve(item, recorded, model)
            return self._answer(reply, body, model, stream_handler)

        try:
            result = await call_with_retries(attempt, self.retry)
        except RetriesExhausted as exc:
            raise gave_up(exc.cause, exc.attempts) from None
        cost, known = cost_usd(result.model, result.usage.prompt_tokens, result.usage.completion_tokens)
        return ChatResult(
            content=result.content,
            tool_calls=result.tool_calls,
            usage=result.usage,
            cost_usd=cost,
            price_known=known,
            model=result.model,
            finish_reason=result.finish_reason,
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    async def _resolve(self, item: Item, recorded: RecordedRequest, model: str) -> Reply:
        waited = 0.0
        while True:
            if callable(item) and not isinstance(item, (Text, ScriptedCall, Reply, Error, Slow)):
                item = item(recorded)
            elif isinstance(item, Slow):
                if waited + item.seconds > self.timeout:  # the client would stop waiting here
                    await asyncio.sleep(max(0.0, self.timeout - waited))
                    raise timeout_error(self.where, self.timeout)
                await asyncio.sleep(item.seconds)
                waited += item.seconds
                item = item.then
            elif isinstance(item, Error):
                raise status_error(
                    self.where, model, item.status, item.message, code=item.code, retry_after=item.retry_after
                )
            else:
                return _as_reply(item)

    def _answer(
        self, reply: Reply, body: dict[str, Any], model: str, stream_handler: StreamHandler | None
    ) -> ChatResult:
        usage = _usage(body, reply)
        if stream_handler is not None and reply.content:
            for i, word in enumerate(reply.content.split(" ")):  # as the fake server streams it
                stream_handler(word if i == 0 else " " + word)
        calls = [
            ToolCall(cid, c.name, parse_tool_arguments(_arguments(c), c.name))
            for cid, c in zip(_call_ids(reply), reply.tool_calls, strict=False)
        ]
        return ChatResult(
            # a stream of no text is no content, as the real client reassembles it
            content=(reply.content or None) if stream_handler is not None else reply.content,
            tool_calls=calls,
            usage=Usage(usage["prompt_tokens"], usage["completion_tokens"]),
            model=reply.model or model,
            finish_reason="tool_calls" if reply.tool_calls else "stop",
        )
