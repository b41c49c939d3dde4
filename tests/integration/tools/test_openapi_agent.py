"""An agent (fake LLM) uses the operations of the real Swagger Petstore 3 document, served by a local
Petstore server that checks the key: listed at the source check, allow-listed, called with the
source's credentials; a write operation needs a write grant."""

from __future__ import annotations

import base64
import json
import os
import textwrap

import pytest

from coherex.integrations import add_source, check_source
from coherex.services.agents import apply_spec, validate_for_team
from coherex.settings import reset_settings_cache
from coherex.spec import SpecInvalid
from coherex.store.db import Identity
from coherex.testing.fake_openai import Text, ToolCall
from coherex.testing.fake_petstore import FakePetstore


@pytest.fixture
def store(monkeypatch):
    with FakePetstore() as server:
        monkeypatch.setenv("COHEREX_SECRET_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())
        monkeypatch.setenv("COHEREX_EGRESS_ALLOW", f"127.0.0.1:{server.port}")
        reset_settings_cache()
        yield server
    reset_settings_cache()


def spec(entry: str) -> str:
    return textwrap.dedent("""\
        apiVersion: coherex/v1
        kind: Agent
        metadata: {name: pet-clerk, description: Looks after the pet store}
        spec:
          model: {name: gpt-4o-mini}
          instructions: Keep the pet store up to date.
          tools:
        """) + textwrap.indent(textwrap.dedent(entry), "    ")


async def test_an_agent_reads_and_writes_through_the_petstore_document(
    db, runtime, make_agent, fake_llm, store
):
    t = make_agent.tenant
    await add_source(
        db,
        t.identity,
        t.team_id,
        "http_api",
        "pets",
        config={"base_url": store.base_url, "openapi": store.document_url, "auth_header": "api_key"},
        credentials={"auth_value": store.api_key},
    )
    source, check = await check_source(db, t.identity, t.team_id, "pets")
    assert check.ok and "It offers 19 tool(s): updatePet, addPet" in check.summary, check.summary
    assert len(source.tools) == 19 and source.tools_checked_at is not None

    entry = "- use: openapi\n  dataSource: pets\n  tools: [getPetById, addPet]\n  access: write\n"
    async with db.session(t.identity) as s:  # a write operation with a read grant is refused
        report = await validate_for_team(s, t.team_id, spec(entry.replace("write", "read")))
        assert "addPet of 'pets' changes data but the entry declares access: read" in str(report.errors)
        misspelt = await validate_for_team(s, t.team_id, spec(entry.replace("getPetById", "getPetByID")))
        assert "'pets' offers no tool 'getPetByID'" in str(misspelt.errors)
        with pytest.raises(SpecInvalid):
            await apply_spec(s, t.team_id, spec(entry.replace("write", "read")))

    rex = store.add_pet("Rex", status="available")
    agent = await make_agent(spec(entry))
    fake_llm.script(
        [
            ToolCall("pets_getPetById", {"petId": rex["id"]}),
            ToolCall("pets_addPet", {"body": {"name": "Tom", "photoUrls": [], "status": "pending"}}),
            ToolCall("pets_deletePet", {"petId": rex["id"]}),  # not allow-listed
            Text("Rex is available; Tom added."),
        ]
    )
    final = await runtime.run((await runtime.create(t.identity, t.team_id, agent)).id)
    assert final.status == "completed", final.error
    offered = {x["function"]["name"]: x["function"] for x in fake_llm.chat_requests[0].body["tools"]}
    assert sorted(offered) == ["pets_addPet", "pets_getPetById"]
    assert offered["pets_addPet"]["parameters"]["properties"]["body"]["required"] == ["name", "photoUrls"]

    # on the server: two calls, each with the source's key in the api_key header; Rex still there
    calls = [(r.method, r.path, r.auth, r.headers.get("api_key")) for r in store.requests]
    assert calls == [
        ("GET", "/", "header", store.api_key),  # the source check
        ("GET", f"/pet/{rex['id']}", "header", store.api_key),
        ("POST", "/pet", "header", store.api_key),
    ]
    assert [p["name"] for p in store.pets.values()] == ["Rex", "Tom"]
    async with db.session(Identity.system()) as s:
        events = await s.executions.events(final.id)
    results = [e.payload for e in events if e.type == "tool_result"]
    assert results[0]["ok"] and '"name": "Rex"' in results[0]["content"]
    assert results[1]["ok"] and '"name": "Tom"' in results[1]["content"]
    assert not results[2]["ok"] and "There is no tool 'pets_deletePet'" in results[2]["content"]
    async with db.session(t.identity) as s:
        [audited] = await s.audit.list(t.team_id, action="tool.addPet")
    assert audited.details["data_source"] == "pets" and audited.details["outcome"] == "ok"
    sent = json.dumps([r.body for r in fake_llm.chat_requests])
    assert store.api_key not in sent and store.api_key not in json.dumps([e.payload for e in events])
