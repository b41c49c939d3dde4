"""The contract every LLMClient a test can use keeps: the OpenAI-compatible client (real SDK) against
the fake OpenAI server, and the in-process ScriptedLLM, given the same script, answer the same —
text, tool calls (ids, parsed and repaired arguments), usage, cost, streamed deltas, errors and
how often a call is tried."""

from __future__ import annotations

import dataclasses
import json

import pytest

from coherex.llm.errors import (
    LLMAuthError,
    LLMBadRequest,
    LLMError,
    LLMModelNotFound,
    LLMRateLimited,
    LLMResponseError,
)
from coherex.llm.openai_client import OpenAIClient
from coherex.retry import RetryPolicy
from coherex.testing.fake_openai import Error, FakeOpenAI, Reply, Slow, Text, ToolCall
from coherex.testing.scripted_llm import ScriptedLLM

USER = [{"role": "user", "content": "Analyse sales.csv"}]
PYTHON_TOOL = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code in the sandbox",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    },
}


@pytest.fixture(scope="module")
def http_server():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(params=["openai-over-http", "scripted"])
def make(request, http_server):
    """make(timeout=5, attempts=3) -> (the script's target, the client)."""
    http_server.reset()

    def build(timeout: float = 5.0, attempts: int = 3):
        if request.param == "scripted":
            double = ScriptedLLM(timeout=timeout, retry=RetryPolicy(max_attempts=attempts, base_delay=0))
            return double, double
        client = OpenAIClient(
            api_key=http_server.api_key,
            base_url=http_server.base_url,
            timeout=timeout,
            retry=RetryPolicy(max_attempts=attempts, base_delay=0.01, max_delay=0.02),
        )
        return http_server, client

    return build


def _same(result):
    return {k: v for k, v in dataclasses.asdict(result).items() if k != "duration_ms"}


async def test_both_clients_give_the_same_results_for_one_script():
    script = [
        Text("Total is 42."),
        ToolCall("python", {"code": "print(1)"}),
        Reply("Two at once.", [ToolCall("python", {"code": "1"}), ToolCall("python", '{"code": "2",}')]),
        Text("Unpriced.", model="fake-model"),
    ]
    with FakeOpenAI() as server:
        server.script(script)
        http = OpenAIClient(api_key=server.api_key, base_url=server.base_url)
        double = ScriptedLLM(script)
        for streamed in (False, False, True, False):
            got = []
            for client in (http, double):
                deltas: list[str] = []
                result = await client.chat(
                    USER, [PYTHON_TOOL], temperature=0.1, stream_handler=deltas.append if streamed else None
                )
                got.append((_same(result), deltas))
            assert got[0] == got[1]
        # what each client sent is the same request body
        assert [r.body for r in server.chat_requests] == [r.body for r in double.chat_requests]


async def test_text_usage_and_cost(make):
    target, client = make()
    target.script([Text("Total is 42.", prompt_tokens=1000, completion_tokens=200)])
    result = await client.chat(USER, model="gpt-4o-mini")
    assert (result.content, result.tool_calls, result.finish_reason) == ("Total is 42.", [], "stop")
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (1000, 200)
    assert result.cost_usd == pytest.approx((1000 * 0.15 + 200 * 0.60) / 1e6) and result.price_known
    # unless scripted, usage is counted from what was sent and answered (characters // 4)
    target.script([Text("abcdefgh")])
    counted = await client.chat(USER)
    assert counted.usage.completion_tokens == 2
    sent = json.dumps(USER) + json.dumps([])  # the messages and (no) tools
    assert counted.usage.prompt_tokens == len(sent) // 4 == 13


async def test_tool_calls_are_parsed_repaired_and_round_trip(make):
    target, client = make()
    target.script(
        [
            Reply(
                tool_calls=[
                    ToolCall("python", {"code": "1"}, id="call_a"),
                    ToolCall("python", '```json\n{"code": "2",}\n```'),
                ]
            ),
            Text("done"),
        ]
    )
    result = await client.chat(USER, [PYTHON_TOOL])
    assert [(c.name, c.arguments) for c in result.tool_calls] == [
        ("python", {"code": "1"}),
        ("python", {"code": "2"}),
    ]
    assert result.tool_calls[0].id == "call_a" and result.tool_calls[1].id.startswith("call_")
    assert result.finish_reason == "tool_calls"
    messages = [*USER, result.to_message(), {"role": "tool", "tool_call_id": "call_a", "content": "1"}]
    assert (await client.chat(messages, [PYTHON_TOOL])).content == "done"
    assert target.chat_requests[-1].body["messages"][1]["tool_calls"][0]["id"] == "call_a"


async def test_arguments_that_are_not_an_object_are_an_error(make):
    target, client = make()
    target.script([ToolCall("python", "[1, 2]")])
    with pytest.raises(LLMResponseError, match="python"):
        await client.chat(USER, [PYTHON_TOOL])


async def test_streamed_text_reaches_the_handler_word_by_word(make):
    target, client = make()
    target.script([Text("The answer is 2.")])
    deltas: list[str] = []
    result = await client.chat(USER, stream_handler=deltas.append)
    assert deltas == ["The", " answer", " is", " 2."] and result.content == "The answer is 2."
    assert result.usage.completion_tokens >= 1 and target.chat_requests[0].body["stream"] is True


async def test_server_errors_are_retried_then_give_up(make):
    target, client = make(attempts=3)
    target.script([Error(500), Error(503), Text("third time")])
    assert (await client.chat(USER)).content == "third time"
    assert len(target.chat_requests) == 3
    target.reset()
    with pytest.raises(LLMError, match=r"failed \(500\).*gave up after 3 attempts"):
        await client.chat(USER)
    assert len(target.chat_requests) == 3


@pytest.mark.parametrize(
    "error, kind, tries",
    [
        (Error(429, "slow down"), LLMRateLimited, 3),
        (Error(429, "You exceeded your current quota", code="insufficient_quota"), LLMRateLimited, 1),
        (Error(401, "Incorrect API key provided."), LLMAuthError, 1),
        (Error(400, "context too long"), LLMBadRequest, 1),
    ],
)
async def test_each_error_answer_is_its_own_type(make, error, kind, tries):
    target, client = make(attempts=3)
    target.always(error)
    with pytest.raises(kind) as info:
        await client.chat(USER)
    assert error.message in str(info.value)
    assert len(target.chat_requests) == tries


async def test_an_unknown_model_names_the_setting(make):
    _, client = make()
    with pytest.raises(LLMModelNotFound, match="gpt-17-ultra") as info:
        await client.chat(USER, model="gpt-17-ultra")
    assert "COHEREX_MODEL" in str(info.value)


async def test_a_slow_answer_times_out_and_is_retried(make):
    target, client = make(timeout=0.3, attempts=2)
    target.script([Slow(2, Text("too late")), Text("in time")])
    assert (await client.chat(USER)).content == "in time"
    target.always(Slow(2, Text("too late")))
    with pytest.raises(LLMError, match="did not answer within 0.3 s") as info:
        await client.chat(USER)
    assert "COHEREX_LLM_TIMEOUT" in str(info.value)
