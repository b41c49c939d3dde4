"""A team's model, connected like a data source (real vault, database and egress guard; the model
server is the fake OpenAI server): the connection test tells a wrong key, a wrong URL and a missing
model apart and stores nothing then; once connected, the team's runs and builder talk to it."""

from __future__ import annotations

import socket

import pytest

from coherex.errors import CoherexError
from coherex.integrations import add_source
from coherex.llm.team import model_label, team_model
from coherex.runtime import Runtime
from coherex.services.agents import apply_spec
from coherex.settings import reset_settings_cache
from coherex.store.db import Identity
from coherex.testing.fake_openai import FakeOpenAI, Text

SPEC = "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: greeter}\nspec: {instructions: Say hello.}\n"


@pytest.fixture
def dead_port():
    """A port on this host where nothing answers (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def model_server(settings_env, monkeypatch, dead_port):
    with FakeOpenAI(api_key="sk-team-key", models=["gpt-4o-mini", "llama3.1"]) as server:
        allowed = f"{settings_env['COHEREX_EGRESS_ALLOW']},127.0.0.1:{server.port},127.0.0.1:{dead_port}"
        monkeypatch.setenv("COHEREX_EGRESS_ALLOW", allowed)  # servers on this host, as an operator allows
        reset_settings_cache()
        yield server
    reset_settings_cache()


async def _connect(db, tenant, **config_and_key):
    key = config_and_key.pop("api_key", None)
    return await add_source(
        db,
        tenant.identity,
        tenant.team_id,
        "model",
        "team-llm",
        config=config_and_key,
        credentials={"api_key": key} if key else {},
        check=True,
    )


async def _source_names(db, tenant):
    async with db.session(Identity.system()) as s:
        return [x.name for x in await s.sources.list(tenant.team_id)]


async def test_wrong_key_url_or_model_is_told_apart_and_nothing_is_stored(
    db, two_teams, model_server, dead_port
):
    alpha, _ = two_teams
    base = model_server.base_url
    with pytest.raises(CoherexError, match=r"refused the API key \(HTTP 401\)"):
        await _connect(db, alpha, base_url=base, model="llama3.1", api_key="sk-wrong")
    with pytest.raises(CoherexError, match=r"has no model 'gpt-9'\. It has: gpt-4o-mini, llama3\.1\."):
        await _connect(db, alpha, base_url=base, model="gpt-9", api_key="sk-team-key")
    with pytest.raises(CoherexError, match=r"has no /models: is this the OpenAI-compatible API's base URL"):
        await _connect(db, alpha, base_url=base.removesuffix("/v1") + "/wrong", model="llama3.1")
    with pytest.raises(CoherexError, match="Cannot reach"):
        await _connect(db, alpha, base_url=f"http://127.0.0.1:{dead_port}/v1", model="x")
    with pytest.raises(CoherexError, match="not allowed|refused|egress|COHEREX_EGRESS_ALLOW"):
        await _connect(db, alpha, base_url="http://169.254.169.254/v1", model="x")  # cloud metadata
    assert await _source_names(db, alpha) == []
    assert await team_model(db, alpha.team_id) is None


async def test_the_teams_runs_and_label_use_its_connected_model(db, two_teams, model_server):
    alpha, bravo = two_teams
    model_server.script([Text("OK")])  # the connection test's one-token answer
    await _connect(db, alpha, base_url=model_server.base_url, model="llama3.1", api_key="sk-team-key")
    assert model_server.chat_requests[-1].body["max_tokens"] == 1
    assert await _source_names(db, alpha) == ["team-llm"]
    assert await model_label(db, alpha.team_id) == "llama3.1 (the team's model 'team-llm')"

    model_server.reset()
    model_server.script([Text("Hello from the team's model.")])
    async with db.session(alpha.identity) as s:
        agent = (await apply_spec(s, alpha.team_id, SPEC)).agent
    runtime = Runtime(db)  # no client given: the team's model, not the install's default
    final = await runtime.run((await runtime.create(alpha.identity, alpha.team_id, agent)).id)
    assert final.status == "completed" and final.output["text"] == "Hello from the team's model."
    [request] = model_server.chat_requests
    assert request.body["model"] == "llama3.1"  # the source's model: the spec names none
    assert request.headers["authorization"] == "Bearer sk-team-key"  # the key from the vault

    # another team has connected nothing: it keeps the install's default (here the offline model)
    assert await team_model(db, bravo.team_id) is None
    assert "offline" in await model_label(db, bravo.team_id)
