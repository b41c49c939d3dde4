"""The runtime with a real sandbox: code runs isolated, its output streams, limits and stop hold."""

from __future__ import annotations

import asyncio

import pytest

from coherex.errors import UserError
from coherex.runtime import Runtime
from coherex.store.db import Identity
from coherex.testing.fake_openai import Text, ToolCall

PY_TOOL = "- use: python\n"


async def _events(db, execution_id):
    async with db.session(Identity.system()) as s:
        return await s.executions.events(execution_id)


async def _sandbox_is_gone(settings, sandbox_id: str) -> bool:
    """Asks the sandbox server itself (its E2B control plane) whether the box still exists."""
    import httpx

    from coherex.sandbox.e2b_client import connection_options

    opts = connection_options(settings)
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(
            f"{opts['api_url']}/sandboxes/{sandbox_id}", headers={"X-API-KEY": opts["api_key"]}
        )
    return r.status_code == 404


async def test_python_then_answer(db, llm, make_agent, spec_yaml, fake_llm, local_sandbox):
    _, settings = local_sandbox
    runtime = Runtime(db, llm=llm, settings=settings)
    agent = await make_agent(spec_yaml(tools=PY_TOOL))
    code = (
        "import pandas as pd\ndf = pd.read_csv('sales.csv')\nprint('total', "
        "df.amount.sum())\nint(df.amount.max())"
    )
    fake_llm.script([ToolCall("python", {"code": code}), Text("Total sales are 60.")])
    t = make_agent.tenant
    ex = await runtime.create(t.identity, t.team_id, agent)
    final = await runtime.run(ex.id, files={"sales.csv": b"amount\n10\n20\n30\n"})
    assert final.status == "completed" and final.output == {"text": "Total sales are 60."}
    assert final.sandbox_id and await _sandbox_is_gone(settings, final.sandbox_id)
    events = await _events(db, ex.id)
    assert [e.type for e in events] == [
        "llm_call",
        "tool_call",
        "stdout",
        "code",
        "tool_result",
        "llm_call",
        "status",
    ]
    assert events[2].payload["text"].strip() == "total 60"
    assert events[3].payload["results"][0]["text"] == "30"
    # what the model got back from the tool
    tool_msg = fake_llm.chat_requests[1].body["messages"][-1]
    assert tool_msg["role"] == "tool" and "total 60" in tool_msg["content"]
    # tokens and cost are the sum of the two LLM calls
    llm_events = [e for e in events if e.type == "llm_call"]
    assert final.tokens_in == sum(e.tokens_in for e in llm_events) > 0
    assert final.cost_usd == sum(e.cost_usd for e in llm_events)


async def test_user_code_error_goes_back_to_the_model(
    db, llm, make_agent, spec_yaml, fake_llm, local_sandbox
):
    runtime = Runtime(db, llm=llm, settings=local_sandbox[1])
    agent = await make_agent(spec_yaml(tools=PY_TOOL))
    fake_llm.script([ToolCall("python", {"code": "1/0"}), Text("It failed: division by zero.")])
    t = make_agent.tenant
    final = await runtime.run((await runtime.create(t.identity, t.team_id, agent)).id)
    assert final.status == "completed"
    assert "ZeroDivisionError" in fake_llm.chat_requests[1].body["messages"][-1]["content"]


async def test_slow_code_stops_at_the_timeout(db, llm, make_agent, spec_yaml, fake_llm, local_sandbox):
    runtime = Runtime(db, llm=llm, settings=local_sandbox[1])
    agent = await make_agent(spec_yaml(tools=PY_TOOL, limits="{timeoutSeconds: 2}"))
    fake_llm.script([ToolCall("python", {"code": "import time\nprint('start', flush=True)\ntime.sleep(60)"})])
    t = make_agent.tenant
    final = await runtime.run((await runtime.create(t.identity, t.team_id, agent)).id)
    assert final.status == "timed_out" and "limits.timeoutSeconds" in final.error
    assert final.duration_ms < 30_000
    assert await _sandbox_is_gone(local_sandbox[1], final.sandbox_id)  # killed, not left to its timeout


async def test_stop_while_code_runs(db, llm, make_agent, spec_yaml, fake_llm, local_sandbox):
    runtime = Runtime(db, llm=llm, settings=local_sandbox[1])
    agent = await make_agent(spec_yaml(tools=PY_TOOL))
    fake_llm.script(
        [ToolCall("python", {"code": "import time\nprint('working', flush=True)\ntime.sleep(120)"})]
    )
    t = make_agent.tenant
    ex = await runtime.create(t.identity, t.team_id, agent)
    seen = asyncio.Event()
    task = asyncio.create_task(
        runtime.run(ex.id, listeners=[lambda e: seen.set() if e.type == "stdout" else None])
    )
    await asyncio.wait_for(seen.wait(), 30)
    await runtime.stop(t.identity, ex.id)
    final = await asyncio.wait_for(task, 10)
    assert final.status == "cancelled"
    assert await _sandbox_is_gone(local_sandbox[1], final.sandbox_id)


async def test_uploads_keep_only_their_base_name(db, llm, make_agent, spec_yaml, fake_llm, local_sandbox):
    runtime = Runtime(db, llm=llm, settings=local_sandbox[1])
    agent = await make_agent(spec_yaml(tools=PY_TOOL))
    code = "import os\nprint(sorted(os.listdir('.')), os.path.exists('/etc/evil'))"
    fake_llm.script([ToolCall("python", {"code": code}), Text("done")])
    t = make_agent.tenant
    ex = await runtime.create(t.identity, t.team_id, agent)
    final = await runtime.run(ex.id, files={"../../etc/evil": b"x"})
    assert final.status == "completed"
    stdout = [e for e in await _events(db, ex.id) if e.type == "stdout"][0].payload["text"]
    assert "'evil'" in stdout and stdout.strip().endswith("False")
    with pytest.raises(UserError, match="not a usable file name"):
        await runtime.run((await runtime.create(t.identity, t.team_id, agent)).id, files={"..": b"x"})


async def test_a_package_that_cannot_be_installed_is_a_clear_tool_error(
    db, llm, make_agent, spec_yaml, fake_llm, tmp_path
):
    """Cloud sandboxes (the e2b backend, here a second local server) install `runtime.packages`
    first; when pip fails the model and the person read why, instead of a later ImportError."""
    from coherex.settings import Settings
    from coherex.testing.sandbox import start_local_sandbox

    server, _ = start_local_sandbox(tmp_path / "cloud", pool_size=0)
    try:
        key = (tmp_path / "cloud" / "sandbox" / "api_key").read_text()
        cloud = Settings(
            sandbox_backend="e2b",
            e2b_api_key=key,
            e2b_api_url=server.url,
            e2b_sandbox_url=server.url,
            data_dir=tmp_path / "unused",
        )
        runtime = Runtime(db, llm=llm, settings=cloud)
        text = spec_yaml(tools=PY_TOOL) + "  runtime:\n    packages: [coherex-no-such-package-xyz]\n"
        agent = await make_agent(text)
        fake_llm.script(
            [ToolCall("python", {"code": "print('hi')"}), Text("The package could not be installed.")]
        )
        t = make_agent.tenant
        final = await runtime.run((await runtime.create(t.identity, t.team_id, agent)).id)
    finally:
        server.stop()
    assert final.status == "completed"
    told = fake_llm.chat_requests[1].body["messages"][-1]["content"]
    assert "Installing runtime.packages (coherex-no-such-package-xyz) failed" in told
    assert "No matching distribution" in told or "Could not find a version" in told
