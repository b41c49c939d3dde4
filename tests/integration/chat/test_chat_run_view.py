"""A test run as the chat shows and stores it (the real runtime, sandbox and data layer; the LLM is
the fake server): a Python call whose code raised is a red ✗ step with its error, next to the LLM
calls, and the run ends "completed with errors" — also after a reload, from what was stored."""

from __future__ import annotations

import asyncio
import textwrap
import uuid

import chainlit as cl
import chainlit.data as chainlit_data
import pytest
from chainlit.context import init_http_context

from coherex.chat import CoherexDataLayer
from coherex.chat.data_layer import TEAM_KEY
from coherex.chat.run_view import ChatUI
from coherex.llm.openai_client import OpenAIClient
from coherex.retry import RetryPolicy
from coherex.runtime import Runtime
from coherex.services.agents import apply_spec
from coherex.testing.fake_openai import FakeOpenAI, Text, ToolCall

SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: csv-analysis}
    spec:
      instructions: Analyse data.csv.
      tools:
        - use: python
    """)
BROKEN = "import pandas as pd\ndf = pd.read_csv('data.csv'"


@pytest.fixture
def layer(db, monkeypatch):
    async def database():
        return db

    layer = CoherexDataLayer(database)
    # the chat app registers its layer with @cl.data_layer; here it is set the same way Chainlit keeps it
    monkeypatch.setattr(chainlit_data, "_data_layer", layer)
    monkeypatch.setattr(chainlit_data, "_data_layer_initialized", True)
    return layer


async def _settled(layer, thread_id: str, text: str) -> dict:
    """The stored thread once the run's last message is in (Chainlit writes in background tasks)."""
    for _ in range(600):  # a state, not a speed: up to 60 s on a loaded machine
        thread = await layer.get_thread(thread_id)
        if thread and any(text in str(s.get("output")) for s in thread["steps"]):
            return thread
        await asyncio.sleep(0.1)
    raise AssertionError(f"{text!r} was never stored")


async def test_a_failed_python_call_shows_as_a_failed_step_and_the_run_as_completed_with_errors(
    db, layer, two_teams, local_sandbox
):
    alpha, _ = two_teams
    user = await layer.get_user(alpha.email)
    thread_id = str(uuid.uuid4())
    init_http_context(thread_id=thread_id, user=cl.User(identifier=user.identifier, metadata=user.metadata))
    cl.user_session.set(TEAM_KEY, str(alpha.team_id))
    await layer.update_thread(thread_id, name="analyse my data")
    async with db.session(alpha.identity) as s:
        agent = (await apply_spec(s, alpha.team_id, SPEC)).agent

    with FakeOpenAI() as fake:
        fake.script(
            [ToolCall("python", {"code": BROKEN}), Text('I called: python({"code": "import pandas"})')]
        )
        runtime = Runtime(
            db,
            llm=OpenAIClient(api_key=fake.api_key, base_url=fake.base_url, retry=RetryPolicy(max_attempts=1)),
            settings=local_sandbox[1],
        )
        ui = ChatUI(None)
        execution = await runtime.create(alpha.identity, alpha.team_id, agent, trigger="chat")
        await ui.run_started(execution, agent)
        final = await runtime.run(execution.id, listeners=[ui.run_event])
        await ui.run_finished(final)

    thread = await _settled(layer, thread_id, "completed with errors**")  # the final message
    steps = thread["steps"]
    root = next(s for s in steps if s["type"] == "run")
    [python] = [s for s in steps if s["name"].startswith(("✓ python", "✗ python"))]
    assert python["name"].startswith("✗ python · SyntaxError") and python["isError"]
    assert "was never closed" in python["output"]
    assert python["parentId"] == root["id"]  # beside the LLM calls, not hidden inside one
    assert [s["name"].split(" ·")[0] for s in steps if s.get("parentId") == root["id"]] == [
        "LLM",
        "✗ python",
        "LLM",
    ]
    [code] = [s for s in steps if s["name"] == "code"]
    assert code["parentId"] == python["id"] and code["input"] == BROKEN and code["isError"]
    assert root["output"] == "completed with errors"
    [last] = [s for s in steps if "completed with errors**" in str(s.get("output"))]
    assert "1 tool call failed" in last["output"] and "SyntaxError" in last["output"]


async def test_a_sub_agents_steps_sit_under_the_tool_step_that_called_it(db, layer, two_teams):
    alpha, _ = two_teams
    user = await layer.get_user(alpha.email)
    thread_id = str(uuid.uuid4())
    init_http_context(thread_id=thread_id, user=cl.User(identifier=user.identifier, metadata=user.metadata))
    cl.user_session.set(TEAM_KEY, str(alpha.team_id))
    await layer.update_thread(thread_id, name="delegate")
    helper = "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: helper}\nspec: {instructions: Help.}\n"
    boss = (
        "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: boss}\n"
        "spec:\n  instructions: Delegate.\n  tools:\n    - use: agent\n      agent: helper\n"
    )
    async with db.session(alpha.identity) as s:
        await apply_spec(s, alpha.team_id, helper)
        agent = (await apply_spec(s, alpha.team_id, boss)).agent

    with FakeOpenAI() as fake:
        fake.script([ToolCall("helper", {}), Text("helped: 42"), Text("The helper says 42.")])
        runtime = Runtime(
            db,
            llm=OpenAIClient(api_key=fake.api_key, base_url=fake.base_url, retry=RetryPolicy(max_attempts=1)),
        )
        ui = ChatUI(None)
        execution = await runtime.create(alpha.identity, alpha.team_id, agent, trigger="chat")
        await ui.run_started(execution, agent)
        final = await runtime.run(execution.id, listeners=[ui.run_event])
        await ui.run_finished(final)

    steps = (await _settled(layer, thread_id, "The helper says 42."))["steps"]
    root = next(s for s in steps if s["type"] == "run")
    [call] = [s for s in steps if "helper" in s["name"] and s["type"] == "tool"]
    assert call["name"] == "✓ helper → helper" and call["parentId"] == root["id"]
    # the helper's own LLM step is inside the tool step, not beside the boss's LLM calls
    inner = [s for s in steps if s.get("parentId") == call["id"]]
    assert [s["name"].split(" ·")[0] for s in inner] == ["LLM"] and "helped: 42" in inner[0]["output"]
    assert [s["name"].split(" ·")[0] for s in steps if s.get("parentId") == root["id"]] == [
        "LLM",
        "✓ helper → helper",
        "LLM",
    ]


async def test_an_image_a_tool_returns_is_drawn_under_its_step(db, layer, two_teams):
    from coherex.tools import registry
    from tests.integration.tools import weather_provider

    alpha, _ = two_teams
    user = await layer.get_user(alpha.email)
    thread_id = str(uuid.uuid4())
    init_http_context(thread_id=thread_id, user=cl.User(identifier=user.identifier, metadata=user.metadata))
    cl.user_session.set(TEAM_KEY, str(alpha.team_id))
    await layer.update_thread(thread_id, name="weather")
    spec = (
        "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: weather}\n"
        "spec:\n  instructions: Forecast.\n  tools:\n    - use: weather.forecast\n"
    )
    with registry.use([*registry.BUILTIN, weather_provider.PROVIDER]), FakeOpenAI() as fake:
        async with db.session(alpha.identity) as s:
            agent = (await apply_spec(s, alpha.team_id, spec)).agent
        fake.script([ToolCall("weather_forecast", {"city": "Paris"}), Text("Sunny in Paris.")])
        runtime = Runtime(
            db,
            llm=OpenAIClient(api_key=fake.api_key, base_url=fake.base_url, retry=RetryPolicy(max_attempts=1)),
        )
        ui = ChatUI(None)
        execution = await runtime.create(alpha.identity, alpha.team_id, agent, trigger="chat")
        await ui.run_started(execution, agent)
        await ui.run_finished(await runtime.run(execution.id, listeners=[ui.run_event]))

    thread = await _settled(layer, thread_id, "Sunny in Paris.")
    [step] = [s for s in thread["steps"] if s["name"].startswith("✓ weather_forecast")]
    images = [e for e in thread["elements"] if e["type"] == "image"]
    assert [(e["forId"], e["mime"]) for e in images] == [(step["id"], "image/png")]
