"""The LLM port: what the runtime and the builder see, whatever model answers.

Messages are OpenAI-style dicts (`{"role": "user", "content": "..."}`, assistant messages with
`tool_calls`, `{"role": "tool", "tool_call_id": ..., "content": ...}`); tools are OpenAI-style
function definitions (`{"type": "function", "function": {"name", "description", "parameters"}}`).
That format is the lingua franca of every OpenAI-compatible server, so adapters pass it through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from coherex.llm.errors import LLMResponseError

Message = dict[str, Any]
Tool = dict[str, Any]
#: receives each piece of assistant text as it streams
StreamHandler = Callable[[str], None]


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatResult:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    #: False when the model is not in the pricing table (its cost is then reported as 0)
    price_known: bool = True
    model: str = ""
    finish_reason: str = "stop"
    duration_ms: float = 0.0

    def to_message(self) -> Message:
        """The assistant message to append to the conversation before sending tool results."""
        message: Message = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in self.tool_calls
            ]
        return message


@runtime_checkable
class LLMClient(Protocol):
    """One chat turn. Adapters: `OpenAIClient` (hosted or compatible server), `LocalModelClient`."""

    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[Tool] | None = None,
        *,
        model: str | None = None,
        temperature: float | None = None,
        stream_handler: StreamHandler | None = None,
    ) -> ChatResult: ...


_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def parse_tool_arguments(raw: str | None, tool_name: str = "tool") -> dict[str, Any]:
    """Parse a tool call's `arguments` string into a JSON object, repairing common slips.

    Models (especially small or local ones) wrap JSON in code fences, leave trailing commas or
    stop before the closing braces. Those are repaired; anything still not a JSON object raises
    `LLMResponseError`, so a caller never receives arguments that are not a dict.
    """
    text = (raw or "").strip()
    if not text:
        return {}
    for candidate in _repairs(text):
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
        break  # valid JSON but not an object: repairing will not help
    raise LLMResponseError(
        f"The model called `{tool_name}` with arguments that are not a JSON object: {text[:200]!r}"
    )


def _repairs(text: str) -> list[str]:
    fenced = _FENCE.sub("", text).strip()
    start = fenced.find("{")
    body = fenced[start:] if start >= 0 else fenced
    no_commas = _TRAILING_COMMA.sub(r"\1", body)
    return [text, fenced, body, no_commas, _close_open(no_commas)]


def _close_open(text: str) -> str:
    """Close an unterminated string and any open brackets (a reply cut off by max_tokens)."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append("}" if char == "{" else "]")
        elif char in "}]" and stack:
            stack.pop()
    return text + ('"' if in_string else "") + "".join(reversed(stack))
