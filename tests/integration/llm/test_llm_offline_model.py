"""The offline default model (bundled SmolLM2-135M) behind the same `LLMClient` interface."""

import ast

import pytest

from coherex.llm import get_llm_client
from coherex.llm.local_model import MODEL_NAME
from coherex.settings import Settings

pytestmark = pytest.mark.slow

PYTHON_TOOL = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code in the sandbox and return its output",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    },
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
        },
    },
}


@pytest.fixture(scope="module")
def offline():
    settings = Settings(openai_api_key=None, openai_base_url=None)
    assert settings.llm_offline
    return get_llm_client(settings)


async def test_data_analysis_request_gets_a_python_tool_call_then_an_answer(offline):
    messages = [
        {
            "role": "system",
            "content": "You are a data analyst. Use the python tool. sales.csv has columns region, amount.",
        },
        {"role": "user", "content": "What is the total amount per region in sales.csv?"},
    ]
    first = await offline.chat(messages, [PYTHON_TOOL])
    [call] = first.tool_calls
    assert call.name == "python" and set(call.arguments) == {"code"}
    ast.parse(call.arguments["code"])  # well-formed Python, not just a string
    assert first.finish_reason == "tool_calls" and first.model == MODEL_NAME
    assert first.usage.completion_tokens > 0 and first.cost_usd == 0

    messages += [
        first.to_message(),
        {"role": "tool", "tool_call_id": call.id, "content": "north 120\nsouth 80"},
    ]
    deltas: list[str] = []
    final = await offline.chat(messages, [PYTHON_TOOL], stream_handler=deltas.append)
    assert final.tool_calls == [] and final.content
    assert "".join(deltas).strip() == final.content


async def test_arguments_follow_the_tool_schema(offline):
    messages = [{"role": "user", "content": "What's the weather in Paris right now?"}]
    [call] = (await offline.chat(messages, [PYTHON_TOOL, WEATHER_TOOL])).tool_calls
    assert call.name == "get_weather"
    assert isinstance(call.arguments["city"], str) and call.arguments["city"]
    assert call.arguments["unit"] in ("celsius", "fahrenheit")
