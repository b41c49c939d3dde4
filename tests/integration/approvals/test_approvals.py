"""A write tool that needs approval: the run pauses durably, and each decision (approve, edit,
reject, timeout) resumes it where it stopped, with the call made at most once. Real Postgres, the
real runtime and Slack client against the fake Slack, a fake LLM over HTTP."""

from __future__ import annotations

import asyncio
import json

import pytest

from coherex.errors import Conflict, PermissionDenied, UserError
from coherex.runtime.approvals import decide, expire_overdue
from coherex.store.db import Identity
from coherex.testing.fake_openai import Text, ToolCall

from .conftest import spec

POST = ToolCall("slack_post_message", {"channel": "#ops", "text": "Deploy is done."}, id="call_post")


async def paused_run(world, text: str | None = None, trigger: str = "manual"):
    """An execution of an agent with `text` as spec, run until it waits: (runtime, execution, approval)."""
    agent = await world.agent(text or spec())
    world.llm.script([POST, Text("Posted.")])
    runtime = world.runtime()
    ex = await runtime.create(world.owner, world.team_id, agent, trigger=trigger)
    paused = await runtime.run(ex.id)
    assert paused.status == "waiting_approval"
    (approval,) = await world.pending(ex.id)
    return runtime, paused, approval


async def test_approval_always_pauses_the_run_without_acting_and_approve_posts_once(world):
    runtime, paused, approval = await paused_run(world)
    assert world.posted() == []  # nothing happened yet
    assert paused.worker_id is None and paused.sandbox_id is None and paused.finished_at is None
    assert (approval.tool_name, approval.tool_use, approval.arguments) == (
        "slack_post_message",
        "slack.post_message",
        {"channel": "#ops", "text": "Deploy is done."},
    )
    types = [e.type for e in await world.events(paused.id)]
    assert types == ["llm_call", "approval_requested", "status"]

    done = await decide(world.db, world.owner, approval.id, "approve")
    assert done.resumed and done.approval.status == "approved" and done.approval.decided_by == world.user_id
    assert (await world.execution(paused.id)).status == "pending"  # queued again, with its job
    final = await runtime.run(paused.id)
    assert final.status == "completed", final.error
    assert final.output == {"text": "Posted."}
    assert world.posted() == ["Deploy is done."]
    # the first LLM step was not asked again: two LLM calls in all, the second with the tool's result
    assert len(world.llm.chat_requests) == 2
    last = world.llm.chat_requests[-1].body["messages"]
    assert (
        last[-1]["role"] == "tool"
        and last[-1]["tool_call_id"] == "call_post"
        and '"ts"' in last[-1]["content"]
    )
    assert final.tokens_in == sum(e.tokens_in for e in await world.events(paused.id))
    async with world.db.session(world.owner) as s:
        audit = await s.audit.list(world.team_id, action="approval.approve")
    assert audit and audit[0].actor_id == world.user_id and audit[0].details["tool"] == "slack.post_message"
    # a second decision of the same call is refused, and changes nothing
    with pytest.raises(Conflict, match="already approved"):
        await decide(world.db, world.owner, approval.id, "reject", message="too late")


async def test_an_edit_runs_the_call_with_the_edited_arguments_and_bad_edits_are_refused(world):
    runtime, paused, approval = await paused_run(world)
    with pytest.raises(UserError, match="text"):
        await decide(world.db, world.owner, approval.id, "edit", arguments={"channel": "#ops", "txt": "typo"})
    with pytest.raises(UserError, match="channel"):
        await decide(world.db, world.owner, approval.id, "edit", arguments={"channel": 5, "text": "x"})
    assert await world.pending(paused.id)  # still waiting after refused edits
    await decide(
        world.db,
        world.owner,
        approval.id,
        "edit",
        arguments={"channel": "#ops", "text": "Deploy is done (v2.1)."},
    )
    final = await runtime.run(paused.id)
    assert final.status == "completed", final.error
    assert world.posted() == ["Deploy is done (v2.1)."]
    async with world.db.session(world.owner) as s:
        (entry,) = await s.audit.list(world.team_id, action="approval.edit")
    assert entry.details["arguments"]["text"] == "Deploy is done."
    assert entry.details["edited_arguments"]["text"] == "Deploy is done (v2.1)."


async def test_a_rejection_tells_the_model_why_and_the_run_goes_on(world):
    agent = await world.agent(spec())
    world.llm.script([POST, Text("Understood, I did not post.")])
    runtime = world.runtime()
    ex = await runtime.create(world.owner, world.team_id, agent)
    await runtime.run(ex.id)
    (approval,) = await world.pending(ex.id)
    await decide(world.db, world.owner, approval.id, "reject", message="Not in #ops, ask Ann first.")
    final = await runtime.run(ex.id)
    assert final.status == "completed" and final.output == {"text": "Understood, I did not post."}
    assert world.posted() == []
    told = world.llm.chat_requests[-1].body["messages"][-1]
    assert told["role"] == "tool" and "rejected" in told["content"] and "ask Ann first" in told["content"]


@pytest.mark.parametrize("on_timeout", ["reject", "fail"])
async def test_nobody_deciding_in_time_rejects_the_call_or_fails_the_run(world, on_timeout):
    runtime, paused, approval = await paused_run(
        world, spec(limits=f"{{approvalTimeoutSeconds: 1, onApprovalTimeout: {on_timeout}}}")
    )
    assert await expire_overdue(world.db) == []  # not overdue yet
    await asyncio.sleep(1.2)
    assert await expire_overdue(world.db) == [paused.id]
    row = await world.execution(paused.id)
    if on_timeout == "fail":
        assert row.status == "failed" and "limits.approvalTimeoutSeconds" in row.error
    else:
        assert row.status == "pending"
        final = await runtime.run(paused.id)
        assert final.status == "completed"
        assert "Nobody approved" in world.llm.chat_requests[-1].body["messages"][-1]["content"]
    assert world.posted() == []
    with pytest.raises(Conflict, match="already expired"):
        await decide(world.db, world.owner, approval.id, "approve")


async def test_a_viewer_cannot_decide_neither_through_the_code_nor_in_the_database(world):
    _, paused, approval = await paused_run(world)
    async with world.db.session(Identity.system()) as s:
        viewer = await s.users.create("vic@example.com", password="correct horse")
        await s.members.add(world.team_id, viewer.id, "viewer")
    as_viewer = Identity.user(viewer.id)
    with pytest.raises(PermissionDenied, match="member role"):
        await decide(world.db, as_viewer, approval.id, "approve")
    # the policy itself: a viewer's own UPDATE changes no row, and nobody may forge a result
    async with world.db.session(as_viewer) as s:
        assert (await s.approvals.get(approval.id)).status == "pending"  # a viewer sees it
        assert await s.approvals.decide(approval.id, "approved") is None
    async with world.db.session(world.owner) as s:
        with pytest.raises(Exception, match="permission denied"):
            await s.approvals.save_result(approval.id, "forged", True)
    assert (await world.pending(paused.id))[0].status == "pending"
    assert (await world.execution(paused.id)).status == "waiting_approval"


async def test_two_people_approving_at_once_make_one_call(world):
    runtime, paused, approval = await paused_run(world)
    async with world.db.session(Identity.system()) as s:
        other = await s.users.create("bea@example.com", password="correct horse")
        await s.members.add(world.team_id, other.id, "member")
    outcomes = await asyncio.gather(
        decide(world.db, world.owner, approval.id, "approve"),
        decide(world.db, Identity.user(other.id), approval.id, "approve"),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "Decided"]
    # two workers picking the resumed run at once: one runs it
    finals = await asyncio.gather(runtime.run(paused.id), world.runtime(worker="other:1").run(paused.id))
    assert {f.status for f in finals} <= {"completed", "running"}
    final = await world.wait_for(paused.id, lambda r: r.finished)
    assert final.status == "completed"
    assert world.posted() == ["Deploy is done."]
    decided = [e for e in await world.events(paused.id) if e.type == "approval_decided"]
    assert len(decided) == 1


async def test_waiting_does_not_count_against_timeout_seconds(world):
    runtime, paused, approval = await paused_run(world, spec(limits="{timeoutSeconds: 2}"))
    await asyncio.sleep(2.5)  # longer than the whole run may take
    await decide(world.db, world.owner, approval.id, "approve")
    final = await runtime.run(paused.id)
    assert final.status == "completed", final.error
    assert world.posted() == ["Deploy is done."]


async def test_a_read_tool_never_asks_and_a_team_default_of_writes_makes_write_tools_ask(world):
    agent = await world.agent(spec(approval=""))
    world.llm.script([POST, Text("Posted.")])
    runtime = world.runtime()
    ex = await runtime.create(world.owner, world.team_id, agent)
    assert (await runtime.run(ex.id)).status == "completed"  # no approval: default never
    assert world.posted() == ["Deploy is done."]
    async with world.db.session(Identity.system()) as s:
        await s.approvals.set_team_default(world.team_id, "writes")
    world.llm.script([POST, Text("Posted.")])
    ex = await runtime.create(world.owner, world.team_id, agent)
    assert (await runtime.run(ex.id)).status == "waiting_approval"
    assert world.posted() == ["Deploy is done."]  # still one


async def test_argument_rules_deny_before_ask_before_allow(world):
    rules = (
        '{deny: {text: "*password*"}, when: {channel: "#general"}, allow: {channel: "#ops"}, '
        "otherwise: always}"
    )
    agent = await world.agent(spec(approval=rules))
    runtime = world.runtime()
    general = world.saas.slack.add_channel("general")
    world.llm.script(
        [
            ToolCall("slack_post_message", {"channel": "#ops", "text": "the PASSWORD is hunter2"}, id="c1"),
            ToolCall("slack_post_message", {"channel": "#ops", "text": "all good"}, id="c2"),
            ToolCall("slack_post_message", {"channel": "#general", "text": "hello all"}, id="c3"),
            Text("done"),
        ]
    )
    ex = await runtime.create(world.owner, world.team_id, agent)
    paused = await runtime.run(ex.id)
    # c1 was refused (deny wins over the allow on #ops), c2 allowed, c3 waits
    assert paused.status == "waiting_approval"
    assert world.posted() == ["all good"]
    first_result = json.dumps(world.llm.chat_requests[1].body["messages"][-1])
    assert "approval rules" in first_result
    (approval,) = await world.pending(ex.id)
    assert approval.arguments["channel"] == "#general"
    await decide(world.db, world.owner, approval.id, "approve")
    assert (await runtime.run(ex.id)).status == "completed"
    assert [m["text"] for m in world.saas.slack.messages[general]] == ["hello all"]


async def test_always_allow_saves_a_version_without_the_rule(world):
    runtime, paused, approval = await paused_run(world)
    done = await decide(world.db, world.owner, approval.id, "approve", always_allow=True)
    assert done.new_version == 2
    assert (await runtime.run(paused.id)).status == "completed"
    async with world.db.session(world.owner) as s:
        agent = await s.agents.get(paused.agent_id)
        version = await s.agents.get_version(agent.id, agent.current_version)
    assert version.spec["spec"]["tools"][0]["approval"] == "never"
    world.llm.script([POST, Text("Posted again.")])
    ex = await runtime.create(world.owner, world.team_id, agent)
    assert (await runtime.run(ex.id)).status == "completed"  # asked nobody
    assert world.posted() == ["Deploy is done.", "Deploy is done."]


async def test_stopping_a_waiting_run_cancels_it_at_once(world):
    runtime, paused, approval = await paused_run(world)
    stopped = await runtime.stop(world.owner, paused.id)
    assert stopped.status == "cancelled"
    assert await world.pending(paused.id) == []
    with pytest.raises(Conflict):
        await decide(world.db, world.owner, approval.id, "approve")
    assert world.posted() == []


async def test_a_step_with_two_waiting_calls_goes_on_once_both_are_decided(world):
    from coherex.testing.fake_openai import Reply

    agent = await world.agent(spec())
    world.llm.script(
        [
            Reply(
                content="Posting both.",
                tool_calls=[
                    ToolCall("slack_post_message", {"channel": "#ops", "text": "one"}, id="c1"),
                    ToolCall("slack_post_message", {"channel": "#ops", "text": "two"}, id="c2"),
                ],
            ),
            Text("One posted, one refused."),
        ]
    )
    runtime = world.runtime()
    ex = await runtime.create(world.owner, world.team_id, agent)
    assert (await runtime.run(ex.id)).status == "waiting_approval"
    first, second = await world.pending(ex.id)
    assert {first.reason, second.reason} == {"Posting both."}  # what the model said with its calls
    assert not (await decide(world.db, world.owner, first.id, "approve")).resumed  # the other still waits
    assert (await world.execution(ex.id)).status == "waiting_approval"
    assert (await decide(world.db, world.owner, second.id, "reject", message="one is enough")).resumed
    final = await runtime.run(ex.id)
    assert final.status == "completed"
    approved = first.arguments["text"]
    assert world.posted() == [approved]
    tool_messages = [m for m in world.llm.chat_requests[-1].body["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["c1", "c2"]  # both answered, in the model's order
    assert "one is enough" in next(
        m["content"] for m in tool_messages if m["tool_call_id"] == second.tool_call_id
    )
