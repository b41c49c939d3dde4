"""/mcp over real HTTP with the official `mcp` client: a real web app, a real worker process, a
fake LLM. What an MCP client (Claude Desktop, Cursor, an IDE) would notice."""

from __future__ import annotations

import asyncio
import textwrap
import time
from contextlib import asynccontextmanager

import anyio
import httpx
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError

from coherex.services.agents import apply_spec
from coherex.spec import load_spec
from coherex.store.db import Identity
from coherex.testing.fake_openai import Error, Slow, Text

SUMMARISER = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: summariser, description: Summarise a topic in two lines}
    spec:
      instructions: Summarise {{topic}}.
      inputs:
        topic: {type: string, description: what to summarise}
        lines: {type: integer, default: 2}
      tools:
        - use: python
    """)
HELLO = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: hello}
    spec:
      instructions: Say hello.
    """)


@asynccontextmanager
async def mcp_session(api, key: str | None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(f"{api.base_url}/mcp", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def save(db, tenant, *specs: str) -> None:
    async with db.session(tenant.identity) as s:
        for spec in specs:
            await apply_spec(s, tenant.team_id, spec)


async def test_agents_are_tools_and_a_call_returns_the_answer_with_progress(
    api, worker, keys, db, two_teams, fake_llm
):
    alpha, _ = two_teams
    await save(db, alpha, SUMMARISER, HELLO)
    fake_llm.script([Text("Two quiet lines.")])
    async with mcp_session(api, keys[0]) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert set(tools) == {"summariser", "hello"}
        tool = tools["summariser"]
        assert tool.description == "Summarise a topic in two lines"
        assert tool.inputSchema["properties"]["topic"] == {
            "type": "string",
            "description": "what to summarise",
        }
        assert tool.inputSchema["required"] == ["topic"]  # `lines` has a default
        assert tool.annotations.readOnlyHint is True  # python only reads (it runs in the sandbox)

        seen: list[tuple[float, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, message))

        result = await session.call_tool(
            "summariser", {"topic": "the weather"}, progress_callback=on_progress
        )
    assert result.isError is False
    assert result.content[0].text == "Two quiet lines."
    assert result.structuredContent["status"] == "completed"
    assert [m for _, m in seen] == ["model gpt-4o-mini: answers", "run completed"]
    assert [p for p, _ in seen] == [1, 2]  # increasing, as the spec requires

    async with db.session(alpha.identity) as s:
        run = await s.executions.get(result.structuredContent["execution_id"])
        audit = await s.audit.list(alpha.team_id, action="execution.create")
    assert run.trigger == "mcp" and run.inputs == {"topic": "the weather", "lines": 2}
    assert run.status == "completed" and run.output["text"] == "Two quiet lines."
    assert [a.details["trigger"] for a in audit] == ["mcp"] and audit[0].target_id == str(run.id)
    # the system prompt the model got carries the input
    assert "Summarise the weather." in fake_llm.chat_requests[0].body["messages"][0]["content"]


async def test_cancelling_a_call_stops_its_run(api, worker, keys, db, two_teams, fake_llm):
    alpha, _ = two_teams
    await save(db, alpha, HELLO)
    fake_llm.script([Slow(60, Text("too late"))])
    answers = []

    async def call(session: ClientSession) -> None:
        try:
            answers.append(await session.call_tool("hello", {}))
        except McpError as exc:
            answers.append(exc.error.message)

    async with mcp_session(api, keys[0]) as session:
        request_id = session._request_id  # the id the next request gets (the SDK numbers them)
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, session)
            run = await wait_for_run(db, alpha, lambda r: r.status == "running")
            await session.send_notification(
                types.ClientNotification(
                    types.CancelledNotification(
                        params=types.CancelledNotificationParams(
                            requestId=request_id, reason="the user pressed stop"
                        )
                    )
                )
            )
            final = await wait_for_run(db, alpha, lambda r: r.finished)
    assert final.id == run.id and final.status == "cancelled"
    assert answers == ["Request cancelled"]
    async with db.session(alpha.identity) as s:
        assert [a.target_id for a in await s.audit.list(alpha.team_id, action="execution.stop")] == [
            str(run.id)
        ]


async def wait_for_run(db, tenant, ready, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with db.session(tenant.identity) as s:
            runs = await s.executions.list(team_id=tenant.team_id, limit=5)
        if runs and ready(runs[0]):
            return runs[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no run became ready in {timeout} s: {runs}")


async def test_failures_are_tool_errors_with_the_platforms_message(
    api, worker, keys, db, two_teams, fake_llm
):
    alpha, _ = two_teams
    await save(db, alpha, HELLO)
    fake_llm.script([Error(400, "This model does not accept that request.")])
    async with mcp_session(api, keys[0]) as session:
        failed = await session.call_tool("hello", {})
        unknown = await session.call_tool("no-such-agent", {})
        bad_input = await session.call_tool("hello", {"nope": 1})
    assert failed.isError is True and failed.structuredContent["status"] == "failed"
    assert failed.content[0].text.startswith("The run failed: ")
    assert "This model does not accept that request." in failed.content[0].text
    assert unknown.isError is True and "There is no agent 'no-such-agent'" in unknown.content[0].text
    assert bad_input.isError is True and "nope" in bad_input.content[0].text


async def test_another_teams_key_sees_no_agent_and_runs_none(api, keys, db, two_teams):
    alpha, _ = two_teams
    await save(db, alpha, HELLO)
    async with mcp_session(api, keys[1]) as session:
        assert (await session.list_tools()).tools == []
        refused = await session.call_tool("hello", {})
    assert refused.isError is True and "There is no agent 'hello'" in refused.content[0].text
    async with db.session(Identity.system()) as s:
        assert await s.executions.list(limit=5) == []


async def test_an_exhausted_quota_is_a_clear_tool_error(api, keys, db, two_teams):
    alpha, _ = two_teams
    await save(db, alpha, HELLO)
    async with db.session(alpha.identity) as s:
        await s.teams.set_quotas(
            alpha.team_id, executions_month=0, cost_month_usd=None, max_concurrent_runs=None
        )
    async with mcp_session(api, keys[0]) as session:
        over = await session.call_tool("hello", {})
    assert over.isError is True and over.structuredContent == {"code": "quota_exceeded"}
    assert "Team alpha has used its 0 executions for this month." in over.content[0].text
    assert "coherex teams quota" in over.content[0].text  # and what to do about it


async def test_keys_rate_limit_and_oauth_metadata(api, keys):
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        missing = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        bad = await http.post("/mcp", json={}, headers={"Authorization": "Bearer cx_nope"})
        metadata_url = missing.headers["www-authenticate"].split('resource_metadata="')[1].rstrip('"')
        metadata = (await http.get(metadata_url)).json()
        root_metadata = (await http.get("/.well-known/oauth-protected-resource")).json()
        statuses = [
            (
                await http.post(
                    "/mcp",
                    json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                    headers={"Authorization": f"Bearer {keys[0]}"},
                )
            ).status_code
            for _ in range(40)
        ]
    assert missing.status_code == 401 and "API key" in missing.json()["error"]["message"]
    assert missing.headers["www-authenticate"].startswith("Bearer ")
    assert bad.status_code == 401 and "not valid" in bad.json()["error"]["message"]
    assert metadata == root_metadata and metadata["resource"] == f"{api.base_url}/mcp"
    assert metadata["bearer_methods_supported"] == ["header"]
    assert 429 in statuses  # the key's bucket (burst 30 in these tests) is the HTTP API's


async def test_host_origin_and_session_ownership_are_checked(api, keys, db, two_teams):
    alpha_key, bravo_key = keys
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with httpx.AsyncClient(base_url=api.base_url) as http:
        rebound = await http.post(
            "/mcp", json=ping, headers={"Host": "evil.example", "Authorization": f"Bearer {alpha_key}"}
        )
        foreign = await http.post(
            "/mcp",
            json=ping,
            headers={"Origin": "https://evil.example", "Authorization": f"Bearer {alpha_key}"},
        )
        assert rebound.status_code == 421 and foreign.status_code == 403

        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"},
            },
        }
        accept = {"Accept": "application/json, text/event-stream"}
        opened = await http.post(
            "/mcp", json=init, headers={**accept, "Authorization": f"Bearer {alpha_key}"}
        )
        session = opened.headers["mcp-session-id"]
        stolen = await http.post(
            "/mcp",
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            headers={**accept, "Authorization": f"Bearer {bravo_key}", "Mcp-Session-Id": session},
        )
    assert opened.status_code == 200
    assert stolen.status_code == 404  # another key cannot use alpha's session


def test_read_only_hint_follows_the_catalogue():
    from coherex.api.mcp import read_only

    def spec(tools: str):
        return load_spec(
            HELLO.replace("instructions: Say hello.", "instructions: Say hello.\n  tools:\n" + tools)
        )

    assert read_only(load_spec(HELLO)) is True
    assert read_only(spec("    - use: knowledge.search\n      collection: handbook\n")) is True
    assert (
        read_only(spec("    - use: slack.post_message\n      dataSource: team-slack\n      access: write\n"))
        is False
    )
    assert read_only(spec("    - use: http.request\n      dataSource: api\n      access: write\n")) is False
