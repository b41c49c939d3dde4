"""The runtime's limits and tool rounds on the in-process doubles (ScriptedLLM, FakeSandbox): no
HTTP, no sandbox server — only the test database. The same behaviours through the real client and
sandbox are in test_runtime_loop.py and test_runtime_sandbox.py."""

from __future__ import annotations

import time

import pytest

from coherex.runtime import Runtime
from coherex.store.db import Identity
from coherex.testing.fake_openai import Reply, Slow, Text, ToolCall
from coherex.testing.fake_sandbox import FakeSandbox, opener
from coherex.testing.scripted_llm import ScriptedLLM

PY_TOOL = "- use: python\n"


@pytest.fixture
def boxes() -> list[FakeSandbox]:
    return []


@pytest.fixture
def run(db, make_agent, spec_yaml, scripted_llm, boxes):
    """run(script, limits="", tools=PY_TOOL, files=None) -> (final execution, its events)."""

    async def go(script, *, limits: str = "", tools: str = PY_TOOL, files=None):
        scripted_llm.script(script[:-1]).always(script[-1])  # the last item answers every later call
        agent = await make_agent(spec_yaml(tools=tools, limits=limits))
        runtime = Runtime(db, llm=scripted_llm, sandbox_opener=opener(boxes))
        t = make_agent.tenant
        ex = await runtime.create(t.identity, t.team_id, agent)
        final = await runtime.run(ex.id, files=files)
        async with db.session(Identity.system()) as s:
            return final, await s.executions.events(ex.id)

    return go


async def test_code_runs_in_the_sandbox_and_its_output_goes_back_to_the_model(run, scripted_llm, boxes):
    final, events = await run(
        [
            ToolCall(
                "python", {"code": "rows = open('sales.csv').read().splitlines()\nprint(len(rows) - 1)"}
            ),
            ToolCall("python", {"code": "rows[1]"}),  # the namespace is kept between calls
            Text("There are 2 sales; the first is north,10."),
        ],
        files={"sales.csv": b"region,amount\nnorth,10\nsouth,20\n"},
    )
    assert final.status == "completed" and final.output == {
        "text": "There are 2 sales; the first is north,10."
    }
    assert [e.payload["text"] for e in events if e.type == "stdout"] == ["2\n"]  # streamed while it ran
    results = [e.payload["content"] for e in events if e.type == "tool_result"]
    assert '"stdout": "2\\n"' in results[0] and "'north,10'" in results[1]
    # what the model read back is the tool's result, paired with its call
    sent = scripted_llm.chat_requests[1].body["messages"][-1]
    assert sent["role"] == "tool" and sent["content"] == results[0]
    [box] = boxes
    assert box.killed and len(box.code) == 2  # one sandbox for the run, killed at its end


async def test_code_that_raises_is_told_to_the_model(run, scripted_llm):
    final, events = await run([ToolCall("python", {"code": "print('before')\n1/0"}), Text("It failed.")])
    assert final.status == "completed"
    [result] = [e for e in events if e.type == "tool_result"]
    assert result.payload["ok"] is False
    told = scripted_llm.chat_requests[1].body["messages"][-1]["content"]
    assert told.startswith("Error: ZeroDivisionError: division by zero") and "before" in told


async def test_max_steps_stops_a_model_that_never_answers(run, scripted_llm, boxes):
    final, events = await run([ToolCall("python", {"code": "print(1)"})], limits="{maxSteps: 3}")
    assert final.status == "failed"
    assert final.error == "Stopped after 3 steps without a final answer (limits.maxSteps)."
    assert len(scripted_llm.chat_requests) == 3 and len(boxes[0].code) == 3
    assert [e.type for e in events][-2:] == ["error", "status"] and boxes[0].killed


async def test_max_cost_stops_the_run_at_the_step_that_reaches_it(run, scripted_llm, boxes):
    # gpt-4o-mini: 10 000 tokens in = $0.0015 a step; the limit is reached at the second step
    step = Reply(
        tool_calls=[ToolCall("python", {"code": "print(1)"})], prompt_tokens=10_000, completion_tokens=0
    )
    final, _ = await run([step], limits="{maxCostUsd: 0.003}")
    assert final.status == "failed"
    assert final.error == "Stopped: the run cost $0.0030, reaching limits.maxCostUsd ($0.003)."
    assert len(scripted_llm.chat_requests) == 2 and float(final.cost_usd) == pytest.approx(0.003)
    assert len(boxes[0].code) == 1  # the second step's tool call was not run


async def test_timeout_stops_code_that_runs_too_long(run, boxes):
    began = time.monotonic()
    final, events = await run(
        [ToolCall("python", {"code": "import time\nprint('start', flush=True)\ntime.sleep(60)"}), Text("x")],
        limits="{timeoutSeconds: 1}",
    )
    assert final.status == "timed_out"
    assert final.error == "Stopped after 1 s (limits.timeoutSeconds)."
    assert time.monotonic() - began < 20  # not the 60 s the code wanted
    assert [e.payload["text"] for e in events if e.type == "stdout"] == ["start\n"]
    assert boxes[0].killed


async def test_timeout_stops_a_model_that_does_not_answer(run, boxes):
    final, _ = await run([Slow(60, Text("too late"))], limits="{timeoutSeconds: 1}")
    assert final.status == "timed_out" and final.error == "Stopped after 1 s (limits.timeoutSeconds)."
    assert boxes == []  # no python call, no sandbox opened


def test_the_scripted_llm_is_what_the_runtime_takes():
    from coherex.llm import LLMClient

    assert isinstance(ScriptedLLM(), LLMClient)
