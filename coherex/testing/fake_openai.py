"""A fake OpenAI-compatible server for tests: real HTTP on 127.0.0.1, driven by a script.

Tests exercise our real client code (the official `openai` SDK) against it, so the wire protocol
— JSON bodies, SSE streaming, status codes, headers — is what production sees.

Quick start::

    from coherex.testing.fake_openai import FakeOpenAI, Text, ToolCall, Error

    with FakeOpenAI() as server:                 # starts on a free port; stops on exit
        server.script([ToolCall("python", {"code": "print(1+1)"}), Text("The answer is 2.")])
        # point a client at it: OPENAI_BASE_URL=server.base_url, OPENAI_API_KEY=server.api_key
        ...
        assert server.chat_requests[0].body["tools"][0]["function"]["name"] == "python"

It works from sync and async tests alike (the server runs in its own thread with its own event
loop). For pytest, wrap it in a fixture: ``with FakeOpenAI() as s: yield s``.

API
- ``FakeOpenAI(api_key=None, models=DEFAULT_MODELS)``: with ``api_key`` set, any other bearer
  token is answered 401 like OpenAI does; a chat request for a model not in ``models`` is answered
  404 ``model_not_found``. ``base_url`` (ends in ``/v1``), ``api_key`` (what clients should send).
- ``server.script(items)``: queue replies for ``/v1/chat/completions``, consumed one per request.
  ``server.always(item)``: the reply once the queue is empty (default: a 500 saying the script ran
  out, so a test that makes more calls than it scripted fails loudly).
- Reply items:
    ``Text(content, prompt_tokens=None, completion_tokens=None, model=None)`` — assistant text.
    ``ToolCall(name, arguments: dict | str, id=None)`` — one tool call; ``arguments`` as a str is
      sent verbatim (to test malformed JSON).
    ``Reply(content=None, tool_calls=[ToolCall...], prompt_tokens=..., completion_tokens=...)``
      — several tool calls (parallel calls) and/or text in one answer.
    ``Error(status, message="...", retry_after=None, code=None)`` — an HTTP error (429 with a
      ``Retry-After`` header, 500, 401, 404, ...), shaped like OpenAI's error body.
    ``Slow(seconds, then)`` — wait before answering ``then`` (for client timeouts).
    a callable ``f(request: RecordedRequest) -> item`` — decide from what the client sent.
- Usage: unless given, ``prompt_tokens`` = characters of the request's messages and tools JSON
  // 4 and ``completion_tokens`` = characters of the reply's text and arguments // 4 (at least 1
  each), so token counts are deterministic. Streaming requests get the usage chunk only with
  ``stream_options={"include_usage": true}``, as from OpenAI.
- Streaming: text is sent as one SSE chunk per word; tool calls as a name chunk followed by
  argument fragments; then the finish chunk, the usage chunk if asked, and ``[DONE]``.
- ``/v1/embeddings``: deterministic unit vectors (a hash of each input), ``dimensions`` honoured
  (default 1536). ``/v1/models``: the ``models`` list.
- Recording: ``server.requests`` (every request, in order), ``server.chat_requests``;
  each ``RecordedRequest`` has ``method``, ``path``, ``headers`` (lower-case), ``body`` (parsed
  JSON) and ``at`` (``time.monotonic()`` when it arrived). ``server.reset()`` clears script and
  records.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from coherex.testing._server import BackgroundServer, ServedApp

DEFAULT_MODELS = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o4-mini",
    "text-embedding-3-small",
    "fake-model",
)


@dataclass(frozen=True)
class Text:
    content: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str | None = None


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    content: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str | None = None


@dataclass(frozen=True)
class Error:
    status: int
    message: str = "injected error"
    retry_after: float | None = None
    code: str | None = None


@dataclass(frozen=True)
class Slow:
    seconds: float
    then: Item


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


Item = Text | ToolCall | Reply | Error | Slow | Callable[[RecordedRequest], "Item"]


class FakeOpenAI(ServedApp):
    server_name = "fake-openai"

    def __init__(self, *, api_key: str | None = None, models: Iterable[str] = DEFAULT_MODELS):
        self.api_key = api_key or "sk-fake"
        self._check_key = api_key is not None
        self.models = list(models)
        self._lock = threading.Lock()
        self._script: deque[Item] = deque()
        self._fallback: Item = Error(500, "fake OpenAI server: script exhausted")
        self._requests: list[RecordedRequest] = []
        self._server: BackgroundServer | None = None
        self.port = 0

    # --- scripting and records ---
    def script(self, items: Iterable[Item]) -> FakeOpenAI:
        with self._lock:
            self._script.extend(items)
        return self

    def always(self, item: Item) -> FakeOpenAI:
        with self._lock:
            self._fallback = item
        return self

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._requests.clear()
            self._fallback = Error(500, "fake OpenAI server: script exhausted")

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- HTTP ---
    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    async def _record(self, request: Request) -> RecordedRequest:
        raw = await request.body()
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=json.loads(raw) if raw else None,
            at=time.monotonic(),
        )
        with self._lock:
            self._requests.append(recorded)
        return recorded

    def _unauthorized(self, recorded: RecordedRequest) -> Response | None:
        if self._check_key and recorded.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(Error(401, "Incorrect API key provided.", code="invalid_api_key"))
        return None

    async def _models(self, request: Request) -> Response:
        recorded = await self._record(request)
        return self._unauthorized(recorded) or JSONResponse(
            {
                "object": "list",
                "data": [{"id": m, "object": "model", "owned_by": "fake"} for m in self.models],
            }
        )

    async def _embeddings(self, request: Request) -> Response:
        recorded = await self._record(request)
        if denied := self._unauthorized(recorded):
            return denied
        body = recorded.body
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = int(body.get("dimensions") or 1536)
        data = [
            {"object": "embedding", "index": i, "embedding": _vector(str(text), dims)}
            for i, text in enumerate(inputs)
        ]
        tokens = sum(max(1, len(str(t)) // 4) for t in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _chat(self, request: Request) -> Response:
        recorded = await self._record(request)
        if denied := self._unauthorized(recorded):
            return denied
        model = recorded.body.get("model")
        if model not in self.models:
            return _error(
                Error(
                    404,
                    f"The model `{model}` does not exist or you do not have access to it.",
                    code="model_not_found",
                )
            )
        with self._lock:
            item: Item = self._script.popleft() if self._script else self._fallback
        while True:
            if callable(item) and not isinstance(item, (Text, ToolCall, Reply, Error, Slow)):
                item = item(recorded)
            elif isinstance(item, Slow):
                await asyncio.sleep(item.seconds)
                item = item.then
            else:
                break
        if isinstance(item, Error):
            return _error(item)
        reply = _as_reply(item)
        usage = _usage(recorded.body, reply)
        model = reply.model or model
        if recorded.body.get("stream"):
            include_usage = bool((recorded.body.get("stream_options") or {}).get("include_usage"))
            chunks = _stream_chunks(reply, model, usage if include_usage else None)
            return StreamingResponse(_sse(chunks), media_type="text/event-stream")
        return JSONResponse(_completion(reply, model, usage))


def _as_reply(item: Item) -> Reply:
    if isinstance(item, Text):
        return Reply(item.content, [], item.prompt_tokens, item.completion_tokens, item.model)
    if isinstance(item, ToolCall):
        return Reply(None, [item])
    if isinstance(item, Reply):
        return item
    raise TypeError(f"not a fake OpenAI reply: {item!r}")


def _arguments(call: ToolCall) -> str:
    return call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)


def _usage(body: dict[str, Any], reply: Reply) -> dict[str, int]:
    sent = json.dumps(body.get("messages", [])) + json.dumps(body.get("tools", []))
    produced = (reply.content or "") + "".join(c.name + _arguments(c) for c in reply.tool_calls)
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else max(1, len(sent) // 4)
    completion = (
        reply.completion_tokens if reply.completion_tokens is not None else max(1, len(produced) // 4)
    )
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _call_ids(reply: Reply) -> list[str]:
    return [
        c.id or f"call_{hashlib.sha1(f'{i}{c.name}{_arguments(c)}'.encode()).hexdigest()[:24]}"
        for i, c in enumerate(reply.tool_calls)
    ]


def _completion(reply: Reply, model: str, usage: dict[str, int]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": cid, "type": "function", "function": {"name": c.name, "arguments": _arguments(c)}}
            for cid, c in zip(_call_ids(reply), reply.tool_calls, strict=False)
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}
        ],
        "usage": usage,
    }


def _stream_chunks(reply: Reply, model: str, usage: dict[str, int] | None) -> Iterator[dict[str, Any]]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    words = (reply.content or "").split(" ")
    for i, word in enumerate(words if reply.content else []):
        yield chunk({"content": word if i == 0 else " " + word})
    for index, (cid, call) in enumerate(zip(_call_ids(reply), reply.tool_calls, strict=False)):
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": index,
                        "id": cid,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
        )
        args = _arguments(call)
        for start in range(0, len(args), 16):
            yield chunk(
                {"tool_calls": [{"index": index, "function": {"arguments": args[start : start + 16]}}]}
            )
    yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
    if usage is not None:
        yield {**base, "choices": [], "usage": usage}


async def _sse(chunks: Iterator[dict[str, Any]]) -> Any:
    for data in chunks:
        yield f"data: {json.dumps(data)}\n\n"
    yield "data: [DONE]\n\n"


def _error(error: Error) -> Response:
    headers = {} if error.retry_after is None else {"retry-after": f"{error.retry_after:g}"}
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "invalid_request_error",
        429: "rate_limit_error",
    }.get(error.status, "server_error")
    body = {"error": {"message": error.message, "type": kind, "param": None, "code": error.code}}
    return JSONResponse(body, status_code=error.status, headers=headers)


def _vector(text: str, dims: int) -> list[float]:
    digest = b""
    counter = 0
    while len(digest) < dims:
        digest += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    values = [b / 127.5 - 1.0 for b in digest[:dims]]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]
