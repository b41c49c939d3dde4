"""MCP data sources through the platform: `coherex sources add mcp`/`test`/`tools`, and tool calls
through `integrations.service.invoke` (grant check, vault, rate limit, audit) to real npm servers
running in sandbox boxes."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from coherex.errors import PermissionDenied
from coherex.integrations.service import add_source, invoke, open_source
from coherex.integrations.vault import generate_key
from coherex.services.agents import apply_spec
from coherex.settings import reset_settings_cache
from coherex.store.db import Identity
from coherex.testing.mcp_servers import EVERYTHING, MEMORY, require_packages
from coherex.tools.port import ToolCall, ToolResult
from coherex.tools.providers.mcp import provider as mcp
from coherex.tools.providers.mcp.errors import McpServerDown

pytestmark = pytest.mark.timeout(300)
AGENT = """\
apiVersion: coherex/v1
kind: Agent
metadata: {name: helper, description: Uses MCP tools}
spec:
  instructions: Help.
"""


@pytest.fixture
def mcp_env(local_sandbox, monkeypatch):
    """The provider opens its boxes with the process settings: point them at the test sandbox."""
    require_packages()
    _, settings = local_sandbox
    env = {
        "COHEREX_DATA_DIR": str(settings.data_dir),
        "COHEREX_SANDBOX": "local",
        "COHEREX_SANDBOX_PORT": str(settings.sandbox_port),
        "COHEREX_SECRET_KEY": generate_key(),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    yield env
    reset_settings_cache()


@pytest.fixture
async def agent_with(db, two_teams, mcp_env):
    """(team, agent) and a function granting the agent a source."""
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        agent = (await apply_spec(s, alpha.team_id, AGENT)).agent

    async def grant(source, access: str) -> None:
        async with db.session(alpha.identity) as s:
            await s.agents.set_data_sources(agent, [(source.id, access)])

    yield alpha, agent, grant
    await mcp.POOL.close_all()


async def tools_of(db, source):
    return {t.name: t for t in await mcp.PROVIDER.discover(await open_source(db, source))}


def tool_call(db, team, agent, info, execution_id):
    return ToolCall(db, team.team_id, agent.id, execution_id, info)


async def test_memory_server_tools_are_discovered_and_called_through_the_platform(db, agent_with):
    team, agent, grant = agent_with
    source = await add_source(
        db,
        team.identity,
        team.team_id,
        "mcp",
        "memory",
        config={"command": MEMORY},
        credentials={"env": {"MEMORY_FILE_PATH": "/home/user/memory.jsonl"}},
    )
    tools = await tools_of(db, source)
    assert tools["read_graph"].access == "read" and tools["create_entities"].access == "write"
    assert tools["create_entities"].parameters["properties"]["entities"]["type"] == "array"

    await grant(source, "read")
    entity = {"name": "Ada", "entityType": "person", "observations": ["first program"]}
    with pytest.raises(PermissionDenied, match="needs write"):  # the grant is checked like any tool's
        await invoke(
            tool_call(db, team, agent, tools["create_entities"], None),
            mcp.PROVIDER,
            "memory",
            {"entities": [entity]},
        )
    await grant(source, "write")
    run = "run-1"  # one run: its calls share the server (its graph lives in the server's box)
    created = await invoke(
        tool_call(db, team, agent, tools["create_entities"], run),
        mcp.PROVIDER,
        "memory",
        {"entities": [entity]},
    )
    assert isinstance(created, ToolResult) and not created.is_error
    found = await invoke(
        tool_call(db, team, agent, tools["search_nodes"], run), mcp.PROVIDER, "memory", {"query": "Ada"}
    )
    assert found.data["entities"][0]["observations"] == ["first program"]
    async with db.session(Identity.system()) as s:
        audit = await s.audit.list(team.team_id)
    assert any(a.action == "tool.create_entities" for a in audit)  # writes are audited


async def test_a_server_that_dies_mid_call_is_a_platform_failure_and_comes_back(db, agent_with):
    team, agent, grant = agent_with
    source = await add_source(
        db, team.identity, team.team_id, "mcp", "everything", config={"command": EVERYTHING}
    )
    await grant(source, "write")
    tools = await tools_of(db, source)
    slow = tool_call(db, team, agent, tools["trigger-long-running-operation"], "run-2")
    call = asyncio.create_task(invoke(slow, mcp.PROVIDER, "everything", {"duration": 30, "steps": 30}))
    for _ in range(300):  # until the call's session is up
        live = [e.session for e in mcp.POOL._entries.values()]
        if live:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1)
    await live[0].box.commands.run("pkill -9 -f server-everything || true", timeout=10)
    with pytest.raises(McpServerDown, match="went away"):
        await asyncio.wait_for(call, 60)
    from coherex.runtime.tools import _platform_failure

    assert _platform_failure(McpServerDown("x"))  # so the run is retried, not answered
    echo = tool_call(db, team, agent, tools["echo"], "run-2")
    again = await invoke(echo, mcp.PROVIDER, "everything", {"message": "back"})
    assert again.text == "Echo: back"  # the next call started the server again


def test_cli_adds_tests_and_lists_an_mcp_source(cli_env, mcp_env):
    env = {**cli_env, **mcp_env}

    def coherex(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "coherex", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )

    added = coherex(
        "sources", "add", "mcp", "mem", "--command", MEMORY, "--env", "MEMORY_FILE_PATH=/home/user/m.jsonl"
    )
    assert added.returncode == 0, added.stderr
    assert "Added data source mem (mcp)" in added.stdout and "offers 9 tool(s)" in added.stdout
    wrong = coherex("sources", "add", "slack", "s", "--url", "https://example.com")
    assert wrong.returncode != 0 and "for `coherex sources add mcp NAME`" in (wrong.stdout + wrong.stderr)
    neither = coherex("sources", "add", "mcp", "nothing")
    assert neither.returncode != 0 and "exactly one of `url`" in (neither.stdout + neither.stderr)
