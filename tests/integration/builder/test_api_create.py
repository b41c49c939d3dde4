"""POST /api/agents/create over real HTTP: the real builder session against the fake LLM server."""

from __future__ import annotations

import pytest

from coherex.testing.api import ApiServer
from coherex.testing.fake_openai import Text, ToolCall

FACT = """\
apiVersion: coherex/v1
kind: Agent
metadata: {name: daily-fact, description: Tell the team one surprising fact}
spec:
  instructions: Write one surprising, true fact about {{topic}}.
  inputs: {topic: {type: string, default: octopuses}}
"""
BROKEN = """\
apiVersion: coherex/v1
kind: Agent
metadata: {name: Daily Fact}
spec:
  instructions: Write a fact.
  tools: [{use: pyhton}]
"""


@pytest.fixture
def api(cli_env, fake_llm, monkeypatch):
    from coherex.settings import reset_settings_cache

    fake_llm.reset()
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", fake_llm.api_key)
    monkeypatch.setenv("COHEREX_LLM_MAX_ATTEMPTS", "1")
    reset_settings_cache()
    with ApiServer() as server:
        yield server
    reset_settings_cache()


@pytest.fixture
async def alpha_key(db, two_teams) -> str:
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        return (await s.api_keys.create(alpha.team_id, "tests"))[1]


async def test_create_from_a_description_returns_the_draft_without_saving(api, alpha_key, fake_llm):
    fake_llm.script(
        [
            ToolCall("draft_spec", {"yaml": FACT}),
            Text("Here is your agent. Should it post to Slack? Which channel should it use?"),
        ]
    )
    async with api.client(alpha_key) as c:
        r = await c.post("/api/agents/create", json={"description": "Every morning tell the team a fact"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["valid"] and body["name"] == "daily-fact" and body["saved"] is None
        assert "kind: Agent" in body["yaml"] and body["spec"]["metadata"]["name"] == "daily-fact"
        assert "only when you start it" in body["summary"]
        assert body["questions"] == ["Should it post to Slack?", "Which channel should it use?"]
        assert body["llm_calls"] == 2 and body["tokens"] > 0
        # nothing was stored
        assert (await c.get("/api/agents")).json() == []
    # the model was not offered saving or running (the caller decides)
    offered = {t["function"]["name"] for t in fake_llm.chat_requests[0].body["tools"]}
    assert "draft_spec" in offered and not offered & {"save_spec", "test_run", "run_agent"}


async def test_create_from_a_transcript_and_save(api, alpha_key, fake_llm):
    fake_llm.script(
        [ToolCall("draft_spec", {"yaml": BROKEN}), ToolCall("draft_spec", {"yaml": FACT}), Text("Done.")]
    )
    transcript = [
        {"role": "user", "content": "I want an agent that tells facts"},
        {"role": "assistant", "content": "About which topic?"},
        {"role": "user", "content": "Octopuses, please"},
    ]
    async with api.client(alpha_key) as c:
        r = await c.post("/api/agents/create", json={"transcript": transcript, "save": True})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["valid"] and body["problems"] == [] and body["questions"] == []
        assert body["saved"]["name"] == "daily-fact" and body["saved"]["version"] == 1
        agent = (await c.get(f"/api/agents/{body['saved']['agent_id']}")).json()
        assert agent["agent"]["name"] == "daily-fact"
    # the earlier conversation reached the model in order, the repair went back to it
    messages = fake_llm.chat_requests[0].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[2]["content"] == "About which topic?"
    assert "spec.tools[0].use" in fake_llm.chat_requests[1].body["messages"][-1]["content"]


async def test_no_valid_draft_reports_the_problems_and_saves_nothing(api, alpha_key, fake_llm):
    fake_llm.always(ToolCall("draft_spec", {"yaml": BROKEN}))
    async with api.client(alpha_key) as c:
        r = await c.post("/api/agents/create", json={"description": "facts", "save": True})
        assert r.status_code == 200, r.text
        body = r.json()
        assert not body["valid"] and body["saved"] is None and body["yaml"] is None
        assert {"metadata.name", "spec.tools[0].use"} <= {p["path"] for p in body["problems"]}
        assert (await c.get("/api/agents")).json() == []


async def test_bad_bodies_are_422_with_a_message(api, alpha_key):
    async with api.client(alpha_key) as c:
        for payload in (
            {},
            {"description": "x", "transcript": [{"role": "user", "content": "x"}]},
            {"transcript": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]},
            {"transcript": [{"role": "system", "content": "x"}]},
        ):
            r = await c.post("/api/agents/create", json=payload)
            assert r.status_code == 422, (payload, r.text)
            assert r.json()["error"]["message"]
