"""A2A with the `a2a-sdk` client against a real web app and worker, with a fake LLM: cards,
tasks that are executions, streamed status, cancel, and team isolation."""

from __future__ import annotations

import asyncio
import textwrap
import time

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, create_client
from a2a.helpers.proto_helpers import new_data_part, new_text_part
from a2a.types import a2a_pb2 as pb
from a2a.utils.errors import A2AError

from coherex.services.agents import apply_spec
from coherex.testing.fake_openai import Slow, Text

GREETER = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: greeter, description: Greets someone, labels: {team: ops}}
    spec:
      instructions: Greet {{who}} {{times}} times.
      inputs:
        who: {type: string, description: whom to greet}
        times: {type: integer, default: 1}
    """)


@pytest.fixture
async def greeter(db, two_teams):
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        return (await apply_spec(s, alpha.team_id, GREETER)).agent


def http(key: str | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=30)


def message(*parts: pb.Part) -> pb.SendMessageRequest:
    return pb.SendMessageRequest(message=pb.Message(message_id="m1", role=pb.ROLE_USER, parts=list(parts)))


async def test_discover_send_and_stream_to_completion(api, worker, keys, db, two_teams, greeter, fake_llm):
    alpha, _ = two_teams
    fake_llm.script([Text("Hello, Ada!"), Text("Hello twice, Bob!")])
    async with http(keys[0]) as client_http:
        install = await A2ACardResolver(client_http, api.base_url).get_agent_card()
        assert [s.id for s in install.skills] == ["greeter"]
        card = await A2ACardResolver(client_http, f"{api.base_url}/a2a/agents/greeter").get_agent_card()
        assert card.name == "greeter" and card.capabilities.streaming is True
        assert "who (string): whom to greet" in card.skills[0].description and card.skills[0].tags == [
            "team=ops"
        ]
        assert card.security_schemes["coherexApiKey"].http_auth_security_scheme.scheme == "bearer"

        # message/send (not streaming): the task comes back finished, its id the execution's
        blocking = await create_client(card, ClientConfig(httpx_client=client_http, streaming=False))
        [reply] = [r async for r in blocking.send_message(message(new_text_part("Ada")))]
        task = reply.task
        assert task.status.state == pb.TASK_STATE_COMPLETED
        assert task.artifacts[0].parts[0].text == "Hello, Ada!"

        # message/stream: the task, status updates from its events, the answer, then completed
        streaming = await create_client(card, ClientConfig(httpx_client=client_http, streaming=True))
        updates = [
            r async for r in streaming.send_message(message(new_data_part({"who": "Bob", "times": 2})))
        ]
        fetched = await streaming.get_task(pb.GetTaskRequest(id=task.id))
    first, *rest = updates
    assert first.HasField("task") and first.task.status.state == pb.TASK_STATE_SUBMITTED
    states = [u.status_update.status.state for u in rest if u.HasField("status_update")]
    notes = [
        u.status_update.status.message.parts[0].text
        for u in rest
        if u.HasField("status_update") and u.status_update.status.message.parts
    ]
    assert states == [pb.TASK_STATE_WORKING, pb.TASK_STATE_COMPLETED]
    assert notes == ["model gpt-4o-mini: answers"]
    [artifact] = [u.artifact_update.artifact for u in rest if u.HasField("artifact_update")]
    assert artifact.parts[0].text == "Hello twice, Bob!"
    assert fetched.id == task.id and fetched.status.state == pb.TASK_STATE_COMPLETED

    async with db.session(alpha.identity) as s:
        runs = {str(r.id): r for r in await s.executions.list(team_id=alpha.team_id)}
        audit = await s.audit.list(alpha.team_id, action="execution.create")
    assert task.id in runs and first.task.id in runs  # task id = execution id
    assert runs[task.id].inputs == {"who": "Ada", "times": 1} and runs[first.task.id].inputs == {
        "who": "Bob",
        "times": 2,
    }
    assert {r.trigger for r in runs.values()} == {"a2a"} and [a.details["trigger"] for a in audit] == [
        "a2a",
        "a2a",
    ]


async def test_cancel_stops_the_run(api, worker, keys, db, two_teams, greeter, fake_llm):
    alpha, _ = two_teams
    fake_llm.script([Slow(60, Text("too late"))])
    async with http(keys[0]) as client_http:
        card = await A2ACardResolver(client_http, f"{api.base_url}/a2a/agents/greeter").get_agent_card()
        client = await create_client(card, ClientConfig(httpx_client=client_http, streaming=False))
        request = message(new_text_part("Ada"))
        request.configuration.return_immediately = True
        [reply] = [r async for r in client.send_message(request)]
        task_id = reply.task.id
        await wait_until(db, alpha, task_id, "running")
        cancelled = await client.cancel_task(pb.CancelTaskRequest(id=task_id))
    assert cancelled.status.state == pb.TASK_STATE_CANCELED
    async with db.session(alpha.identity) as s:
        assert (await s.executions.get(task_id)).status == "cancelled"
        assert [a.target_id for a in await s.audit.list(alpha.team_id, action="execution.stop")] == [task_id]


async def wait_until(db, tenant, execution_id: str, status: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with db.session(tenant.identity) as s:
            if (await s.executions.get(execution_id)).status == status:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"execution {execution_id} never became {status}")


async def test_another_teams_key_sees_no_card_and_no_task(api, keys, db, two_teams, greeter):
    alpha_key, bravo_key = keys
    async with http(alpha_key) as alpha_http:
        card = await A2ACardResolver(alpha_http, f"{api.base_url}/a2a/agents/greeter").get_agent_card()
        client = await create_client(card, ClientConfig(httpx_client=alpha_http, streaming=False))
        request = message(new_text_part("Ada"))
        request.configuration.return_immediately = True
        [reply] = [r async for r in client.send_message(request)]  # pending: no worker in this test
    async with http(bravo_key) as bravo_http:
        install = await A2ACardResolver(bravo_http, api.base_url).get_agent_card()
        theirs = await bravo_http.get(f"{api.base_url}/a2a/agents/greeter/.well-known/agent-card.json")
        bravo_client = await create_client(card, ClientConfig(httpx_client=bravo_http, streaming=False))
        with pytest.raises(A2AError, match="not found"):
            await bravo_client.get_task(pb.GetTaskRequest(id=reply.task.id))
        with pytest.raises(A2AError, match="not found"):
            await bravo_client.cancel_task(pb.CancelTaskRequest(id=reply.task.id))
        with pytest.raises(A2AError, match="no agent 'greeter'"):
            [r async for r in bravo_client.send_message(message(new_text_part("Eve")))]
    assert list(install.skills) == [] and theirs.status_code == 404
    async with db.session(two_teams[0].identity) as s:
        assert (await s.executions.get(reply.task.id)).status == "pending"  # untouched by bravo


async def test_legacy_method_names_keys_and_quota(api, keys, db, two_teams, greeter):
    alpha, _ = two_teams
    url = f"{api.base_url}/a2a/agents/greeter"
    send = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "message/send",
        "params": {
            "message": {
                "kind": "message",
                "messageId": "m1",
                "role": "user",
                "parts": [{"kind": "text", "text": "Ada"}],
            },
            "configuration": {"blocking": False},
        },
    }
    async with http(None) as anonymous:
        refused = await anonymous.post(url, json=send)
        public = (await anonymous.get(f"{api.base_url}/.well-known/agent-card.json")).json()
    assert refused.status_code == 401 and "API key" in refused.json()["error"]["message"]
    assert refused.headers["www-authenticate"] == 'Bearer realm="coherex"'
    assert public["skills"] == [] and "coherexApiKey" in public["securitySchemes"]
    async with http(keys[0]) as c:
        legacy = (await c.post(url, json=send)).json()
        assert legacy["result"]["kind"] == "task" and legacy["result"]["status"]["state"] in (
            "submitted",
            "working",
        )
        async with db.session(alpha.identity) as s:
            await s.teams.set_quotas(
                alpha.team_id, executions_month=1, cost_month_usd=None, max_concurrent_runs=None
            )
        over = (await c.post(url, json={**send, "id": 2})).json()
    assert "Team alpha has used its 1 executions for this month." in over["error"]["message"]
    assert over["error"]["data"]["code"] == "quota_exceeded"
