"""The draft as the chat shows it: its summary, what to connect before saving, its YAML, and the
buttons that fit (Test run, Save and Schedule once it is ready; Edit and Discard always); the
buttons under an install preview."""

from __future__ import annotations

from typing import Any

import chainlit as cl

from coherex.builder import BuilderSession, summarize
from coherex.builder.install import InstallPreview
from coherex.chat.teams import current_slug
from coherex.errors import CoherexError
from coherex.spec import parse


async def show_draft(builder: BuilderSession) -> None:
    draft = builder.draft
    assert draft is not None
    from coherex.llm.team import model_label

    requested = draft.spec.spec.model.name if draft.spec.spec.model else None
    text = summarize(draft.spec, model=await model_label(builder.db, builder.team_id, requested))
    if draft.connections:
        slug = current_slug(builder)
        text += "\n\n**Connect before saving:**\n" + "\n".join(
            f"- {c.instructions(slug)}" for c in draft.connections
        )
        text += "\n\nThen send any message here (e.g. “done”): the draft is checked again."
    if draft.placeholders:  # a fact only the person knows: they give it, nothing is invented
        text += "\n\n**Still needed before saving:**\n" + "\n".join(
            f"- {p.path}: {p.message} ({p.hint})" for p in draft.placeholders
        )
    await cl.Message(
        content=text,
        author="Coherex",
        actions=draft_actions(builder),
        elements=[cl.Text(name=f"{draft.name}.yaml", content=draft.yaml, language="yaml", display="inline")],
    ).send()


def draft_actions(builder: BuilderSession) -> list[cl.Action]:
    actions = [
        cl.Action(name="edit", payload={}, label="Edit", icon="pencil"),
        cl.Action(name="discard", payload={}, label="Discard", icon="trash-2"),
    ]
    if builder.draft is not None and builder.draft.ready:
        actions = [
            cl.Action(name="test_run", payload={}, label="Test run", icon="play"),
            cl.Action(name="save", payload={}, label="Save", icon="save"),
            cl.Action(name="schedule", payload={}, label="Schedule", icon="clock"),
            *actions,
        ]
    return actions


def install_actions(preview: InstallPreview) -> list[cl.Action]:
    """Under an install preview: Install saves exactly the digest shown."""
    return [
        cl.Action(
            name="install", payload={"ref": preview.ref}, label=f"Install {preview.name}", icon="download"
        ),
        cl.Action(name="cancel_install", payload={}, label="Cancel", icon="x"),
    ]


def as_spec(text: str) -> dict[str, Any] | None:
    """The text as spec data when it looks like a whole spec, else None (a change request)."""
    if "apiVersion" not in text:
        return None
    try:
        data = parse(text.strip().removeprefix("```yaml").removesuffix("```"), "yaml")
    except CoherexError:
        return None
    return data if isinstance(data, dict) else None
