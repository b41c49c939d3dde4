"""An agent (fake LLM) using MCP data sources end to end: real npm servers (server-everything,
server-filesystem, server-memory in sandbox boxes; server-everything over Streamable HTTP), the
real runtime, the allow-list, and a server that dies mid-call (the run is retried)."""

from __future__ import annotations

import asyncio
import json

import pytest

from coherex.integrations.service import add_source, check_source
from coherex.llm.openai_client import OpenAIClient
from coherex.runtime import Runtime
from coherex.services.agents import apply_spec
from coherex.settings import reset_settings_cache
from coherex.spec.models import ToolRef
from coherex.store.db import Identity
from coherex.testing.fake_openai import Text, ToolCall
from coherex.testing.mcp_servers import EVERYTHING, FILESYSTEM, MEMORY, EverythingServer
from coherex.tools.providers.mcp import provider as mcp

pytestmark = [
    pytest.mark.timeout(400),
    pytest.mark.skipif(
        "tools" not in ToolRef.model_fields, reason="needs the port's discovered tools (ToolRef.tools)"
    ),
]

SPEC = """\
apiVersion: coherex/v1
kind: Agent
metadata: {name: mcp-user, description: Uses four MCP servers}
spec:
  instructions: Use the tools.
  tools:
    - use: mcp
      dataSource: everything
      tools: [echo, get-tiny-image, trigger-long-running-operation]
    - use: mcp
      dataSource: memory
      access: write
      tools: [create_entities, search_nodes]
    - use: mcp
      dataSource: fs
      access: write
    - use: mcp
      dataSource: remote
      tools: [echo]
"""


@pytest.fixture
def remote(tmp_path):
    server = EverythingServer("streamableHttp", tmp_path / "everything.log").wait_ready()
    yield server
    server.stop()


@pytest.fixture
async def world(db, two_teams, local_sandbox, remote, monkeypatch, fake_llm):
    from coherex.integrations.vault import generate_key

    _, settings = local_sandbox
    env = {
        "COHEREX_DATA_DIR": str(settings.data_dir),
        "COHEREX_SANDBOX": "local",
        "COHEREX_SANDBOX_PORT": str(settings.sandbox_port),
        "COHEREX_SECRET_KEY": generate_key(),
        "COHEREX_EGRESS_ALLOW": f"127.0.0.1:{remote.port}",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    alpha, _ = two_teams
    sources = {
        "everything": {"command": EVERYTHING},
        "memory": {"command": MEMORY},
        "fs": {"command": FILESYSTEM},
        "remote": {"url": remote.url},
    }
    for name, config in sources.items():
        creds = {"env": {"MEMORY_FILE_PATH": "/home/user/memory.jsonl"}} if name == "memory" else {}
        await add_source(db, alpha.identity, alpha.team_id, "mcp", name, config=config, credentials=creds)
        _, check = await check_source(db, alpha.identity, alpha.team_id, name)  # reads and caches its tools
        assert check.ok, check.summary
    async with db.session(alpha.identity) as s:
        agent = (await apply_spec(s, alpha.team_id, SPEC)).agent
    llm = OpenAIClient(api_key=fake_llm.api_key, base_url=fake_llm.base_url)
    yield alpha, agent, Runtime(db, llm=llm, settings=settings)
    await mcp.POOL.close_all()
    reset_settings_cache()


def offered(fake_llm) -> set[str]:
    return {t["function"]["name"] for t in fake_llm.chat_requests[0].body["tools"]}


def tool_messages(fake_llm) -> list[str]:
    return [m["content"] for m in fake_llm.chat_requests[-1].body["messages"] if m["role"] == "tool"]


async def test_an_agent_lists_calls_and_reads_results_of_four_mcp_servers(db, world, fake_llm):
    team, agent, runtime = world
    entity = {"name": "Ada", "entityType": "person", "observations": ["first program"]}
    fake_llm.script(
        [
            ToolCall("everything_echo", {"message": "hi from the box"}),
            ToolCall("everything_get-tiny-image", {}),
            ToolCall("memory_create_entities", {"entities": [entity]}),
            ToolCall("memory_search_nodes", {"query": "Ada"}),
            ToolCall("fs_write_file", {"path": "/home/user/n.txt", "content": "box note"}),
            ToolCall("fs_read_text_file", {"path": "/home/user/n.txt"}),
            ToolCall("remote_echo", {"message": "over http"}),
            Text("All done."),
        ]
    )
    execution = await runtime.create(team.identity, team.team_id, agent)
    final = await runtime.run(execution.id)
    assert final.status == "completed", final.error

    names = offered(fake_llm)
    # the allow-list: only the listed tools of `everything` and `memory`; all of `fs`; one of `remote`
    assert {n for n in names if n.startswith("everything_")} == {
        "everything_echo",
        "everything_get-tiny-image",
        "everything_trigger-long-running-operation",
    }
    assert {n for n in names if n.startswith("memory_")} == {"memory_create_entities", "memory_search_nodes"}
    assert {"fs_write_file", "fs_read_text_file", "fs_list_directory"} <= names
    assert {n for n in names if n.startswith("remote_")} == {"remote_echo"}

    results = tool_messages(fake_llm)
    assert "Echo: hi from the box" in results[0]
    assert "image/png" in results[1]
    assert "first program" in results[3]
    assert "box note" in results[5]
    assert "Echo: over http" in results[6]
    async with db.session(Identity.system()) as s:
        events = await s.executions.events(execution.id)
    assert all(e.payload.get("ok", True) for e in events if e.type == "tool_result")


async def test_a_server_that_dies_mid_call_fails_the_attempt_and_the_retried_run_succeeds(
    db, world, fake_llm
):
    team, agent, runtime = world
    fake_llm.script(
        [
            ToolCall("everything_trigger-long-running-operation", {"duration": 30, "steps": 30}),
            # the retried attempt
            ToolCall("everything_echo", {"message": "second try"}),
            Text("Done on the second attempt."),
        ]
    )
    execution = await runtime.create(team.identity, team.team_id, agent)

    async def crash_the_server() -> None:
        for _ in range(600):
            live = [e.session for e in mcp.POOL._entries.values()]
            if live:
                await asyncio.sleep(1)
                await live[0].box.commands.run("pkill -9 -f server-everything || true", timeout=10)
                return
            await asyncio.sleep(0.1)

    killer = asyncio.create_task(crash_the_server())
    first = await runtime.run(execution.id, retry_backend_errors=True)
    await killer
    assert first.status == "pending"  # requeued: a dead server is a platform failure, not an answer
    async with db.session(Identity.system()) as s:
        events = await s.executions.events(execution.id)
    logs = json.dumps([e.payload for e in events if e.type == "log"])
    assert "went away" in logs and "retrying" in logs

    final = await runtime.run(execution.id, retry_backend_errors=True)
    assert final.status == "completed", final.error
    assert "Echo: second try" in tool_messages(fake_llm)[-1]
