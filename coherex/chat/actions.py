"""What the chat's buttons do: save, test-run (asking for inputs without a default), stop,
discard, edit (a change request or a whole pasted spec), schedule (a preset or in words), and
install an agent previewed from a registry."""

from __future__ import annotations

from typing import Any

import chainlit as cl

from coherex.builder.install import install as install_agent
from coherex.chat.context import current_builder, remember
from coherex.chat.conversation import take_turn
from coherex.chat.draft_card import as_spec, show_draft
from coherex.chat.run_view import ChatUI

SCHEDULE_PRESETS = {
    "Weekdays at 08:00": "0 8 * * 1-5",
    "Every day at 09:00": "0 9 * * *",
    "Mondays at 09:00": "0 9 * * 1",
    "Every hour": "0 * * * *",
}


async def save(action: cl.Action) -> None:
    from coherex.builder.tools import live_triggers

    builder = current_builder()
    saved = await builder.save()
    live = await live_triggers(builder, saved.agent, builder.draft.spec if builder.draft else None)
    await cl.Message(
        content=f"Saved **{saved.agent.name}** (version {saved.version.version}).\n"
        + "\n".join(f"- {line}" for line in live),
        author="Coherex",
        actions=[cl.Action(name="test_run", payload={}, label="Test run", icon="play")],
    ).send()


async def test_run(action: cl.Action) -> None:
    builder = current_builder()
    inputs: dict[str, Any] = {}
    draft = builder.draft
    for name, decl in (draft.spec.spec.inputs or {}).items() if draft and draft.valid else []:
        if decl.default is None:
            reply = await cl.AskUserMessage(
                content=f"Value for **{name}**"
                + (f" ({decl.description})" if decl.description else "")
                + "?",
                timeout=600,
            ).send()
            if reply is None:
                return
            inputs[name] = reply["output"]
    # the draft is saved before the run starts: keep that now (a reload during a long run finds the agent)
    await builder.test_run(inputs, ChatUI(None, on_run_started=lambda: remember(builder)))


async def stop(action: cl.Action) -> None:
    if not await current_builder().stop():
        await cl.Message(content="Nothing is running.", author="Coherex").send()


async def discard(action: cl.Action) -> None:
    current_builder().discard()
    await cl.Message(
        content="Draft discarded. Describe another agent whenever you like.", author="Coherex"
    ).send()


async def edit(action: cl.Action) -> None:
    reply = await cl.AskUserMessage(
        content="What should change? (Or paste a whole spec in YAML.)", timeout=600
    ).send()
    if reply is None:
        return
    builder, text = current_builder(), reply["output"]
    data = as_spec(text)
    if data is None:
        await take_turn(builder, text)
        return
    draft = await builder.set_draft(data)
    if draft.valid:
        await show_draft(builder)
    else:
        await cl.Message(
            content="That spec is not valid:\n" + "\n".join(f"- {p}" for p in draft.problems),
            author="Coherex",
        ).send()


async def schedule(action: cl.Action) -> None:
    choices = [
        cl.Action(name="when", payload={"cron": cron}, label=label)
        for label, cron in SCHEDULE_PRESETS.items()
    ]
    choices.append(cl.Action(name="when", payload={"cron": ""}, label="Something else"))
    picked = await cl.AskActionMessage(content="When should it run?", actions=choices, timeout=600).send()
    if picked is None:
        return
    builder = current_builder()
    timezone = await builder.person_timezone()
    cron = picked["payload"]["cron"]
    if not cron:
        reply = await cl.AskUserMessage(
            content="Describe when (e.g. “every Friday at 17:30”).", timeout=600
        ).send()
        if reply is not None:
            await take_turn(builder, f"Schedule it: {reply['output']} (time zone {timezone}).")
        return
    answer = await builder.schedule(cron, timezone)
    if not answer.get("valid"):
        await cl.Message(content=str(answer.get("problems")), author="Coherex").send()
        return
    saved = f" Saved as version {answer['saved_version']}." if "saved_version" in answer else ""
    await cl.Message(
        content=f"Scheduled: {picked['label'].lower()} ({timezone}).{saved}", author="Coherex"
    ).send()
    await show_draft(builder)


async def install(action: cl.Action) -> None:
    """Save the previewed artifact (its exact digest) and show it as the conversation's draft."""
    builder = current_builder()
    result = await install_agent(builder, str(action.payload.get("ref") or ""))
    if result.already:
        text = f"**{result.agent}** (version {result.version}) is this artifact already; nothing changed."
    else:
        text = f"Installed **{result.agent}** (version {result.version}) from `{result.ref}`."
    await action.remove()
    await cl.Message(content=text, author="Coherex").send()
    if builder.draft is not None:
        await show_draft(builder)


async def cancel_install(action: cl.Action) -> None:
    await action.remove()
    await cl.Message(content="Not installed; nothing was saved.", author="Coherex").send()
