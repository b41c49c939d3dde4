"""`coherex mcp serve --stdio`, started as a desktop client starts it, with the official client."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from coherex.services.agents import apply_spec
from coherex.testing.fake_openai import Text

HELLO = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: hello, description: Greets someone}
    spec:
      instructions: Greet {{who}}.
      inputs:
        who: {type: string}
    """)
COMMAND = [sys.executable, "-m", "coherex", "mcp", "serve", "--stdio"]


async def test_stdio_serves_the_keys_team_and_runs_an_agent(
    served_env, worker, keys, db, two_teams, fake_llm
):
    alpha, bravo = two_teams
    async with db.session(alpha.identity) as s:
        await apply_spec(s, alpha.team_id, HELLO)
    fake_llm.script([Text("Hello, Ada!")])
    for key, expected in ((keys[1], []), (keys[0], ["hello"])):
        params = StdioServerParameters(
            command=COMMAND[0], args=COMMAND[1:], env={**served_env, "COHEREX_API_KEY": key}
        )
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            assert [t.name for t in (await session.list_tools()).tools] == expected
            if expected:
                result = await session.call_tool("hello", {"who": "Ada"})
                assert result.isError is False and result.content[0].text == "Hello, Ada!"
    async with db.session(alpha.identity) as s:
        runs = await s.executions.list(team_id=alpha.team_id)
    assert [(r.trigger, r.status) for r in runs] == [("mcp", "completed")]


def test_stdio_refuses_a_missing_or_bad_key_clearly(served_env):
    env = {k: v for k, v in served_env.items() if k != "COHEREX_API_KEY"}
    missing = subprocess.run(
        COMMAND, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    bad = subprocess.run(
        COMMAND,
        env={**env, "COHEREX_API_KEY": "cx_nope"},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert missing.returncode == 1 and "set COHEREX_API_KEY" in missing.stderr and missing.stdout == ""
    assert bad.returncode == 1 and "This API key is not valid" in bad.stderr and bad.stdout == ""
    assert "Traceback" not in missing.stderr + bad.stderr
