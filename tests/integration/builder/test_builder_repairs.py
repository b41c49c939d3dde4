"""The builder's repair loop on the in-process ScriptedLLM (no HTTP): an invalid draft goes back to
the model with its problems, the corrected one is shown and saved; the repairs are bounded."""

from __future__ import annotations

import pytest

from coherex.builder import MAX_REPAIRS, BuilderSession
from coherex.spec import load_spec
from coherex.testing.fake_openai import Text, ToolCall
from tests.integration.builder.test_builder_session import ANALYST, BROKEN


@pytest.fixture
def session(db, two_teams, scripted_llm):
    alpha, _ = two_teams
    return BuilderSession(db, alpha.identity, alpha.team_id, llm=scripted_llm, team_name="Alpha")


async def test_problems_go_back_to_the_model_and_the_corrected_spec_is_saved(
    db, session, scripted_llm, two_teams, ui
):
    scripted_llm.script(
        [
            ToolCall("draft_spec", {"yaml": BROKEN}),
            ToolCall("draft_spec", {"yaml": ANALYST}),
            ToolCall("save_spec", {"message": "first version"}),
            Text("Saved sales-analyst."),
        ]
    )
    turn = await session.send("An agent that answers questions about sales numbers", ui)
    assert turn.error is None and turn.problems == [] and turn.text == "Saved sales-analyst."
    assert turn.llm_calls == 4 and [name for name, _ in ui.tools] == ["draft_spec"] * 2 + ["save_spec"]
    # the first draft's problems were the tool's answer: numbered attempt, each problem with its path
    fed_back = scripted_llm.chat_requests[1].body["messages"][-1]
    assert fed_back["role"] == "tool" and '"valid": false' in fed_back["content"]
    assert f"1 of {MAX_REPAIRS + 1} attempts" in fed_back["content"]
    for path in ("metadata.name", "spec.tools[0].use", "spec.triggers[0].schedule.cron"):
        assert path in fed_back["content"]
    # the saved version is the corrected draft
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        agent = await s.agents.get_by_name(alpha.team_id, "sales-analyst")
        version = await s.agents.require_version(agent)
    assert version.message == "first version"
    assert [t.use for t in load_spec(version.spec).spec.tools] == ["python"]


async def test_repairs_stop_after_max_rounds_and_nothing_is_saved(db, session, scripted_llm, two_teams, ui):
    scripted_llm.always(ToolCall("draft_spec", {"yaml": BROKEN}))
    turn = await session.send("Something with sales", ui)
    assert len(scripted_llm.chat_requests) == MAX_REPAIRS + 1 == turn.llm_calls
    last = scripted_llm.chat_requests[-1].body["messages"][-1]["content"]
    assert f"{MAX_REPAIRS} of {MAX_REPAIRS + 1} attempts" in last
    assert session.draft is None and not turn.draft_changed
    assert {p.path for p in turn.problems} >= {"metadata.name", "spec.tools[0].use"}
    assert turn.text.startswith("I could not produce a valid agent spec from this yet.")
    assert "spec.tools[0].use" in turn.text  # the person sees what is still wrong
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        assert await s.agents.list(alpha.team_id) == []
    # the conversation goes on: the next turn starts with a fresh repair budget
    scripted_llm.reset()
    scripted_llm.script([ToolCall("draft_spec", {"yaml": ANALYST}), Text("Here it is.")])
    again = await session.send("It reads sales.csv with python", ui)
    assert again.problems == [] and session.draft.name == "sales-analyst"
