"""After a run that used a credential on the host, nothing in the sandbox can see it: its
environment, /proc, and every command's output are scanned for the plaintext token."""

from __future__ import annotations

import textwrap

from coherex.integrations.service import add_source
from coherex.llm.openai_client import OpenAIClient
from coherex.runtime import Runtime
from coherex.services.agents import apply_spec
from coherex.store.db import Identity
from coherex.testing.fake_openai import FakeOpenAI, Text, ToolCall

SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: snoop}
    spec:
      instructions: Read the channel, then look around the sandbox.
      tools:
        - use: slack.read_channel
          dataSource: team-slack
          access: read
        - use: python
    """)

SNOOP = textwrap.dedent("""\
    import os, subprocess
    print(dict(os.environ))
    print(open('/proc/self/environ', 'rb').read())
    print(subprocess.run(['sh', '-c', 'env; cat /proc/1/environ; ls -la / /home/user /tmp'],
                         capture_output=True, text=True).stdout)
    """)


async def test_sandbox_never_sees_the_credential(world, local_sandbox):
    saas = world.saas
    saas.slack.add_channel("general", messages=["hello"])
    await add_source(
        world.db,
        world.admin,
        world.team_id,
        "slack",
        "team-slack",
        credentials={"bot_token": saas.slack_token},
    )
    async with world.db.session(world.admin) as s:
        agent = (await apply_spec(s, world.team_id, SPEC)).agent
    with FakeOpenAI() as llm_server:
        llm_server.script(
            [
                ToolCall("slack_read_channel", {"channel": "#general"}),
                ToolCall("python", {"code": SNOOP}),
                Text("done"),
            ]
        )
        runtime = Runtime(
            world.db,
            llm=OpenAIClient(api_key=llm_server.api_key, base_url=llm_server.base_url),
            settings=local_sandbox[1],
        )
        execution = await runtime.create(world.admin, world.team_id, agent)
        final = await runtime.run(execution.id)
    assert final.status == "completed", final.error
    async with world.db.session(Identity.system()) as s:
        events = await s.executions.events(execution.id)
    output = "\n".join(
        str(e.payload) for e in events if e.type in ("stdout", "stderr", "tool_result", "code")
    )
    assert "PATH" in output  # the snooping code really ran and printed the environment
    assert saas.slack_token not in output
    # events are redacted on the way in, so a leak would show as a redaction mark: there is none
    sandbox_output = "\n".join(str(e.payload) for e in events if e.type in ("stdout", "stderr", "code"))
    assert "[redacted]" not in sandbox_output
    assert "hello" in output  # while the tool itself did read the channel with it
