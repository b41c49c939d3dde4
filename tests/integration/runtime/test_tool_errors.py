"""Honest outcomes: a Python call whose code raised is a failed tool step, the run counts its tool
errors, and a run that answered after a failure nothing fixed is 'completed with errors' — not a
plain success. A failure the agent recovered from (a later call succeeded) stays a success."""

from __future__ import annotations

from coherex.runtime import Runtime
from coherex.store.db import Identity
from coherex.testing.fake_openai import Text, ToolCall

PY_TOOL = "- use: python\n"
BROKEN = "import pandas as pd\ndf = pd.read_csv('sales.csv'\nprint(df)"


async def _results(db, execution_id):
    async with db.session(Identity.system()) as s:
        return [e for e in await s.executions.events(execution_id) if e.type == "tool_result"]


async def test_code_that_raises_is_a_failed_step_and_the_run_completes_with_errors(
    db, llm, make_agent, spec_yaml, fake_llm, local_sandbox
):
    runtime = Runtime(db, llm=llm, settings=local_sandbox[1])
    agent = await make_agent(spec_yaml(tools=PY_TOOL))
    # the answer a small model gives after a failed call: it restates the call
    fake_llm.script(
        [ToolCall("python", {"code": BROKEN}), Text(f'I called: python({{"code": "{BROKEN[:20]}…"}})')]
    )
    t = make_agent.tenant
    final = await runtime.run((await runtime.create(t.identity, t.team_id, agent)).id)

    [result] = await _results(db, final.id)
    assert result.payload["ok"] is False
    assert "SyntaxError" in result.payload["content"] and "was never closed" in result.payload["content"]
    # the model was told it failed, with the error
    told = fake_llm.chat_requests[1].body["messages"][-1]["content"]
    assert told.startswith("Error: SyntaxError")
    assert final.status == "completed" and final.outcome == "completed_with_errors"
    assert final.tool_errors == 1 and "SyntaxError" in final.last_tool_error
    assert final.shown_status == "completed with errors"


async def test_a_failure_the_agent_recovered_from_is_a_success_with_its_error_counted(
    db, llm, make_agent, spec_yaml, fake_llm, local_sandbox
):
    runtime = Runtime(db, llm=llm, settings=local_sandbox[1])
    agent = await make_agent(spec_yaml(tools=PY_TOOL))
    fake_llm.script(
        [
            ToolCall("python", {"code": "1/0"}),
            ToolCall("python", {"code": "print(6 * 7)"}),
            Text("The answer is 42."),
        ]
    )
    t = make_agent.tenant
    final = await runtime.run((await runtime.create(t.identity, t.team_id, agent)).id)
    assert [r.payload["ok"] for r in await _results(db, final.id)] == [False, True]
    assert final.outcome == "completed" and final.tool_errors == 1 and final.last_tool_error is None


async def test_a_made_up_tool_counts_as_a_tool_error(db, runtime, make_agent, spec_yaml, fake_llm):
    agent = await make_agent(spec_yaml())
    fake_llm.script([ToolCall("send_rocket", {}), Text("Done: the rocket is on its way.")])
    t = make_agent.tenant
    final = await runtime.run((await runtime.create(t.identity, t.team_id, agent)).id)
    assert final.outcome == "completed_with_errors" and final.tool_errors == 1
    assert "There is no tool 'send_rocket'" in final.last_tool_error
