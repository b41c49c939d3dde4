"""The OpenAI adapter, through the real `openai` SDK, against the fake OpenAI server."""

import pytest

from coherex.llm import get_llm_client
from coherex.llm.errors import LLMAuthError, LLMError, LLMModelNotFound, LLMRateLimited, LLMResponseError
from coherex.llm.openai_client import OpenAIClient
from coherex.retry import RetryPolicy
from coherex.settings import Settings
from coherex.testing.fake_openai import Error, Reply, Slow, Text, ToolCall

USER = [{"role": "user", "content": "Analyse sales.csv"}]
PYTHON_TOOL = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code in the sandbox",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    },
}


async def test_text_answer_with_usage_and_cost(server, client):
    server.script([Text("Total is 42.", prompt_tokens=1000, completion_tokens=200)])
    result = await client.chat(USER, model="gpt-4o-mini")
    assert result.content == "Total is 42."
    assert result.tool_calls == []
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (1000, 200)
    assert result.cost_usd == pytest.approx((1000 * 0.15 + 200 * 0.60) / 1e6)
    assert result.price_known
    assert result.model == "gpt-4o-mini" and result.finish_reason == "stop"
    assert result.duration_ms > 0


async def test_what_the_client_sent(server, client):
    server.script([Text("ok")])
    await client.chat(USER, [PYTHON_TOOL], model="gpt-4.1-mini", temperature=0.2)
    [sent] = server.chat_requests
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.body["messages"] == USER
    assert sent.body["tools"] == [PYTHON_TOOL]
    assert sent.body["model"] == "gpt-4.1-mini" and sent.body["temperature"] == 0.2


async def test_tool_call_arguments_arrive_as_a_dict(server, client):
    server.script([ToolCall("python", {"code": "import pandas as pd\nprint(pd.__version__)"})])
    result = await client.chat(USER, [PYTHON_TOOL])
    [call] = result.tool_calls
    assert call.name == "python"
    assert call.arguments == {"code": "import pandas as pd\nprint(pd.__version__)"}
    assert call.id and result.finish_reason == "tool_calls"
    # the assistant message can be sent back as is, followed by the tool result
    server.script([Text("pandas is installed")])
    messages = [*USER, result.to_message(), {"role": "tool", "tool_call_id": call.id, "content": "2.2"}]
    assert (await client.chat(messages, [PYTHON_TOOL])).content == "pandas is installed"
    assert server.chat_requests[-1].body["messages"][1]["tool_calls"][0]["id"] == call.id


async def test_parallel_tool_calls(server, client):
    server.script([Reply(tool_calls=[ToolCall("python", {"code": "1"}), ToolCall("python", {"code": "2"})])])
    result = await client.chat(USER, [PYTHON_TOOL])
    assert [c.arguments["code"] for c in result.tool_calls] == ["1", "2"]
    assert len({c.id for c in result.tool_calls}) == 2


async def test_slightly_broken_arguments_are_repaired(server, client):
    server.script([ToolCall("python", '```json\n{"code": "print(1)",}\n```')])
    [call] = (await client.chat(USER, [PYTHON_TOOL])).tool_calls
    assert call.arguments == {"code": "print(1)"}


async def test_arguments_that_are_not_an_object_are_a_clear_error(server, client):
    server.script([ToolCall("python", "[1, 2, 3]")])
    with pytest.raises(LLMResponseError, match="python"):
        await client.chat(USER, [PYTHON_TOOL])


async def test_streaming_text_reaches_the_handler_and_usage_is_counted(server, client):
    server.script([Text("The total is 42 euros.", prompt_tokens=50, completion_tokens=6)])
    deltas: list[str] = []
    result = await client.chat(USER, stream_handler=deltas.append)
    assert len(deltas) > 1 and "".join(deltas) == "The total is 42 euros."
    assert result.content == "The total is 42 euros."
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (50, 6)
    assert result.cost_usd > 0
    [sent] = server.chat_requests
    assert sent.body["stream"] is True and sent.body["stream_options"] == {"include_usage": True}


async def test_streamed_tool_call_is_reassembled(server, client):
    code = "import pandas as pd\ndf = pd.read_csv('sales.csv')\nprint(df.groupby('region').amount.sum())"
    server.script([ToolCall("python", {"code": code})])
    result = await client.chat(USER, [PYTHON_TOOL], stream_handler=lambda _: None)
    [call] = result.tool_calls
    assert call.arguments == {"code": code} and result.finish_reason == "tool_calls"


async def test_unknown_model_is_priced_zero_and_flagged(server, client):
    server.models.append("llama3.2:3b")
    server.script([Text("hi", prompt_tokens=10, completion_tokens=1)])
    result = await client.chat(USER, model="llama3.2:3b")
    assert result.cost_usd == 0 and not result.price_known


async def test_two_server_errors_then_success(server, client):
    server.script([Error(500), Error(503), Text("recovered")])
    result = await client.chat(USER)
    assert result.content == "recovered"
    assert len(server.chat_requests) == 3


async def test_always_failing_server_gives_a_clear_error_after_n_attempts(server, client):
    server.always(Error(500, "upstream exploded"))
    with pytest.raises(LLMError, match=r"failed \(500\).*upstream exploded.*gave up after 3 attempts"):
        await client.chat(USER)
    assert len(server.chat_requests) == 3


async def test_streaming_call_is_retried_too(server, client):
    server.script([Error(500), Text("second time lucky")])
    deltas: list[str] = []
    result = await client.chat(USER, stream_handler=deltas.append)
    assert result.content == "second time lucky" and "".join(deltas) == "second time lucky"


async def test_rate_limit_retry_after_is_honoured(server, client):
    server.script([Error(429, "slow down", retry_after=1), Text("ok")])
    assert (await client.chat(USER)).content == "ok"
    first, second = server.chat_requests
    assert second.at - first.at >= 1.0  # waited at least what the server asked


async def test_persistent_rate_limit_names_the_problem(server, client):
    server.always(Error(429, "Rate limit reached", retry_after=0))
    with pytest.raises(LLMRateLimited, match="rate limiting"):
        await client.chat(USER)
    assert len(server.chat_requests) == 3


async def test_out_of_quota_is_not_retried(server, client):
    server.always(Error(429, "You exceeded your current quota", code="insufficient_quota"))
    with pytest.raises(LLMRateLimited, match="quota") as info:
        await client.chat(USER)
    assert "OPENAI_API_KEY" in str(info.value)
    assert len(server.chat_requests) == 1


async def test_timeouts_are_retried(server):
    client = OpenAIClient(
        api_key=server.api_key,
        base_url=server.base_url,
        timeout=0.3,
        retry=RetryPolicy(max_attempts=2, base_delay=0.01),
    )
    server.script([Slow(2, Text("too late")), Text("in time")])
    assert (await client.chat(USER)).content == "in time"


async def test_timeouts_exhausted_name_the_timeout_setting(server):
    client = OpenAIClient(
        api_key=server.api_key,
        base_url=server.base_url,
        timeout=0.2,
        retry=RetryPolicy(max_attempts=2, base_delay=0.01),
    )
    server.always(Slow(1, Text("too late")))
    with pytest.raises(LLMError, match="did not answer within") as info:
        await client.chat(USER)
    assert "COHEREX_LLM_TIMEOUT" in str(info.value)


async def test_wrong_key_names_openai_api_key(server):
    client = OpenAIClient(api_key="sk-wrong", base_url=server.base_url, retry=RetryPolicy(base_delay=0.01))
    with pytest.raises(LLMAuthError) as info:
        await client.chat(USER)
    assert "OPENAI_API_KEY" in str(info.value) and "401" in str(info.value)
    assert len(server.chat_requests) == 1  # a wrong key is not retried


async def test_unknown_model_is_a_clear_error(server, client):
    with pytest.raises(LLMModelNotFound) as info:
        await client.chat(USER, model="gpt-17-ultra")
    message = str(info.value)
    assert "gpt-17-ultra" in message and "COHEREX_MODEL" in message
    assert len(server.chat_requests) == 1


async def test_unreachable_server_names_the_base_url():
    client = OpenAIClient(
        api_key="x", base_url="http://127.0.0.1:9/v1", retry=RetryPolicy(max_attempts=2, base_delay=0.01)
    )
    with pytest.raises(LLMError, match="Cannot reach") as info:
        await client.chat(USER)
    assert "OPENAI_BASE_URL" in str(info.value)


async def test_settings_pick_the_openai_compatible_client(server):
    settings = Settings(
        openai_api_key=server.api_key, openai_base_url=server.base_url, default_model="gpt-4.1-nano"
    )
    client = get_llm_client(settings)
    server.script([Text("from settings")])
    result = await client.chat(USER)
    assert result.content == "from settings" and result.model == "gpt-4.1-nano"


def test_sync_code_can_use_the_server_too(server):
    import openai

    server.script([Text("sync works")])
    sync_client = openai.OpenAI(api_key=server.api_key, base_url=server.base_url, max_retries=0)
    answer = sync_client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert answer.choices[0].message.content == "sync works"
    vectors = sync_client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b", "a"], dimensions=8
    )
    a, b, a_again = (d.embedding for d in vectors.data)
    assert len(a) == 8 and a == a_again and a != b
    assert "gpt-4o-mini" in [m.id for m in sync_client.models.list()]
