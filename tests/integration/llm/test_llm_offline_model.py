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


CONVERT_AND_ANSWER = """
import asyncio, json, sys, time
t = time.perf_counter()
from coherex.llm.local_model import LocalModelClient, _converted_dir
client = LocalModelClient()
loaded = time.perf_counter() - t
answer = asyncio.run(client.chat([{"role": "user", "content": "Name three colours."}], []))
done = (_converted_dir() / "done").exists()
print(json.dumps({"text": answer.content, "converted": done, "load_s": loaded}))
"""


@pytest.mark.timeout(600)  # converting takes ~30 s of CPU on an idle machine, minutes under load
def test_the_model_is_converted_once_and_the_copy_answers_the_same(tmp_path):
    """The first process converts the GGUF weights into the models dir; the next loads that copy and
    writes the very same answer (greedy decoding), instead of converting again."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["COHEREX_MODELS_DIR"] = str(tmp_path / "models")
    runs = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", CONVERT_AND_ANSWER],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.splitlines()[-1]
        )
        for _ in range(2)
    ]
    assert runs[0]["converted"] and runs[1]["converted"]
    assert runs[0]["text"] and runs[1]["text"] == runs[0]["text"]
    assert len(list((tmp_path / "models").iterdir())) == 1, "one copy, no partial left behind"
