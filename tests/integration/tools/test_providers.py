"""The tool-provider port end to end: a provider added by one module and one registry line, and a
provider whose tools are discovered per data source (allow-list, cache, validation, access)."""

from __future__ import annotations

import base64
import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from coherex.integrations import add_source, check_source
from coherex.integrations.service import refresh_discovered_tools
from coherex.services.agents import apply_spec, validate_for_team
from coherex.spec import SpecInvalid, validate
from coherex.store.db import Identity
from coherex.testing.fake_openai import Text, ToolCall
from coherex.tools import registry
from tests.integration.tools import notes_provider, weather_provider


def spec(tools: str) -> str:
    return textwrap.dedent("""\
        apiVersion: coherex/v1
        kind: Agent
        metadata: {name: helper, description: A test agent}
        spec:
          model: {name: gpt-4o-mini}
          instructions: Help.
          tools:
        """) + textwrap.indent(textwrap.dedent(tools), "    ")


async def _results(db, execution_id):
    async with db.session(Identity.system()) as s:
        return [e.payload for e in await s.executions.events(execution_id) if e.type == "tool_result"]


async def test_a_provider_added_by_one_module_and_one_registry_line_runs_end_to_end(
    db, runtime, make_agent, fake_llm
):
    text = spec("- use: weather.forecast\n")
    assert "unknown tool 'weather.forecast'" in str(validate(text).problems)
    with registry.use([*registry.BUILTIN, weather_provider.PROVIDER]):
        agent = await make_agent(text)
        fake_llm.script(
            [
                ToolCall("weather_forecast", {"city": "Atlantis"}),
                ToolCall("weather_forecast", {"city": "Oslo"}),
                Text("Snow in Oslo."),
            ]
        )
        t = make_agent.tenant
        final = await runtime.run((await runtime.create(t.identity, t.team_id, agent)).id)
    assert final.status == "completed" and final.output == {"text": "Snow in Oslo."}
    failed, ok = await _results(db, final.id)
    assert failed["ok"] is False and "No forecast for 'Atlantis'" in failed["content"]
    png = weather_provider.MAP_PNG
    # the model reads the text and a note of the image; the step keeps the image for the chat
    assert (
        ok["ok"] is True
        and ok["content"] == f"Oslo tomorrow: snow, -3 °C\n[image: image/png, {len(png)} bytes]"
    )
    assert ok["images"] == [{"mime": "image/png", "bytes": len(png), "data": base64.b64encode(png).decode()}]
    # the model was offered the provider's schema, under the name the spec gives it
    offered = fake_llm.chat_requests[0].body["tools"]
    assert [t["function"]["name"] for t in offered] == ["weather_forecast"]
    assert offered[0]["function"]["parameters"]["required"] == ["city"]


@pytest.fixture
def notes(sources_env):
    with registry.use([*registry.BUILTIN, notes_provider.PROVIDER]):
        yield


async def _add_notes_source(db, tenant, server, name="kb"):
    await add_source(
        db,
        tenant.identity,
        tenant.team_id,
        "notes",
        name,
        config={"url": server.url},
        credentials={"token": server.token},
    )


async def _validate(db, tenant, text):
    async with db.session(tenant.identity) as s:
        return await validate_for_team(s, tenant.team_id, text)


async def test_discovered_tools_are_cached_checked_by_name_and_expanded_per_tool(
    db, runtime, make_agent, fake_llm, notes, notes_server
):
    t = make_agent.tenant
    await _add_notes_source(db, t, notes_server)
    entry = "- use: notes\n  dataSource: kb\n  tools: [serch, add_note]\n  access: write\n"

    # before the first check: not checked, said as a warning (the CLI, without a team, says why too)
    before = await _validate(db, t, spec(entry))
    assert before.ok and "have not been read yet" in str(before.warnings)
    assert "only when the team is known" in str(validate(spec(entry)).warnings)

    source, check = await check_source(db, t.identity, t.team_id, "kb")
    assert check.ok and "It offers 3 tool(s): search, add_note, delete_all." in check.summary
    assert [x["name"] for x in source.tools] == ["search", "add_note", "delete_all"]

    # now a misspelt allow-list name is refused with the closest names; a write tool needs write
    report = await _validate(db, t, spec(entry))
    assert not report.ok
    [problem] = report.errors
    assert (problem.path, problem.message, problem.hint) == (
        "spec.tools[0].tools[0]",
        "'kb' offers no tool 'serch'",
        "did you mean search?",
    )
    read_only = await _validate(db, t, spec(entry.replace("serch", "search").replace("write", "read")))
    assert "add_note of 'kb' changes data but the entry declares access: read" in str(read_only.errors)
    with pytest.raises(SpecInvalid):
        async with db.session(t.identity) as s:
            await apply_spec(s, t.team_id, spec(entry))

    # the runtime offers one tool per allowed tool, `<source>_<tool>`; delete_all stays hidden
    agent = await make_agent(spec(entry.replace("serch", "search")))
    fake_llm.script(
        [
            ToolCall("kb_search", {"q": "invoice"}),
            ToolCall("kb_delete_all", {}),
            ToolCall("kb_add_note", {"text": "Ship on Friday"}),
            Text("Done."),
        ]
    )
    final = await runtime.run((await runtime.create(t.identity, t.team_id, agent)).id)
    assert final.status == "completed"
    offered = {x["function"]["name"]: x["function"] for x in fake_llm.chat_requests[0].body["tools"]}
    assert sorted(offered) == ["kb_add_note", "kb_search"]
    assert offered["kb_search"]["parameters"]["properties"]["q"]["description"] == "words"
    searched, deleted, added = await _results(db, final.id)
    assert searched["ok"] and searched["content"] == "Invoice 42 is paid"
    assert not deleted["ok"] and "There is no tool 'kb_delete_all'" in deleted["content"]
    assert added["ok"] and added["content"] == "added note 3"
    assert notes_server.calls == [("search", {"q": "invoice"}), ("add_note", {"text": "Ship on Friday"})]
    async with db.session(t.identity) as s:  # a write through a discovered tool is audited like any
        [audited] = await s.audit.list(t.team_id, action="tool.add_note")
    assert audited.details["data_source"] == "kb" and audited.details["outcome"] == "ok"


async def test_a_read_only_entry_gets_only_the_read_tools_even_when_the_server_changes_them(
    db, runtime, make_agent, fake_llm, notes, notes_server
):
    t = make_agent.tenant
    await _add_notes_source(db, t, notes_server)
    await check_source(db, t.identity, t.team_id, "kb")
    agent = await make_agent(spec("- use: notes\n  dataSource: kb\n  access: read\n"))

    # the server now says `search` changes data: the next refresh (maintenance) takes that in
    notes_server.tools[0]["readOnly"] = False
    assert await refresh_discovered_tools(db, datetime.now(UTC)) == []  # not due yet
    later = datetime.now(UTC) + timedelta(hours=2)
    assert await refresh_discovered_tools(db, later) == [("kb", None)]

    fake_llm.script([ToolCall("kb_search", {"q": "invoice"}), Text("Nothing.")])
    final = await runtime.run((await runtime.create(t.identity, t.team_id, agent)).id)
    assert "tools" not in fake_llm.chat_requests[0].body  # a read-only agent: no tool changes data
    [refused] = await _results(db, final.id)
    assert not refused["ok"] and "There is no tool 'kb_search'" in refused["content"]
    assert notes_server.calls == []


async def test_the_builder_lists_a_sources_discovered_tools_with_parameters(
    db, notes, notes_server, two_teams
):
    from coherex.builder import BuilderSession
    from coherex.builder.tools import TOOLS

    alpha, _ = two_teams
    await _add_notes_source(db, alpha, notes_server)
    builder = BuilderSession(db, alpha.identity, alpha.team_id)
    listed = await TOOLS["list_tools"].handler(builder, data_source="kb")
    assert listed == [{"use": "notes", "dataSource": "kb", "note": "its tools were not read yet"}]

    await check_source(db, alpha.identity, alpha.team_id, "kb")
    listed = {t["tool"]: t for t in await TOOLS["list_tools"].handler(builder, data_source="kb")}
    assert sorted(listed) == ["add_note", "delete_all", "search"]
    assert listed["search"]["parameters"]["q"]["description"] == "words"
    assert listed["add_note"]["add"] == {
        "use": "notes",
        "dataSource": "kb",
        "tools": ["add_note"],
        "access": "write",
    }
    # the whole catalogue carries parameters too, and the source's tools come after it
    everything = await TOOLS["list_tools"].handler(builder)
    slack = next(t for t in everything if t.get("use") == "slack.post_message")
    assert "channel" in slack["parameters"]
    assert [t["tool"] for t in everything if t.get("dataSource") == "kb"] == [
        "search",
        "add_note",
        "delete_all",
    ]
