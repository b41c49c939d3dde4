"""Where a file attached in the chat goes: a data file for a draft that runs Python goes into the
sandbox of its test runs (one sent before there is a draft is held for the draft its request
makes); anything else goes to the knowledge collection the draft searches (or `chat-uploads`).
A resumed thread brings its earlier attachments back for the test runs."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import chainlit as cl

from coherex.builder import BuilderSession
from coherex.builder.session import DATA_SUFFIXES
from coherex.chat.draft_card import show_draft
from coherex.errors import UserError
from coherex.runtime.tools import FILE_INPUT

#: the collection uploads go to when the draft searches none
DEFAULT_COLLECTION = "chat-uploads"


def _read_upload(element: Any) -> bytes:
    data = Path(element.path).read_bytes()
    if not data:
        raise UserError(
            f"{element.name} is empty: there is nothing in it to use. Attach the file with its content."
        )
    return data


async def attach_held_file(builder: BuilderSession) -> None:
    """A data file held from before the draft existed: the new draft's `file` input names it."""
    if not builder.files or builder.draft is None:
        return
    name = next(reversed(builder.files))  # the latest upload
    declared = (builder.draft.spec.spec.inputs or {}).get(FILE_INPUT)
    if declared is not None and declared.default != name and builder.takes_file(name):
        await builder.add_file(name, builder.files[name])
        await cl.Message(
            content=f"**{name}** will be in the working directory of the test runs.", author="Coherex"
        ).send()


async def route_uploads(builder: BuilderSession, files: list[Any]) -> None:
    """Each attached file to the sandbox's working directory or the knowledge base (see above)."""
    from coherex.knowledge import ingest_file

    collection = DEFAULT_COLLECTION
    if builder.draft is not None and builder.draft.valid:
        collection = next(
            (t.collection for t in builder.draft.spec.spec.tools or [] if t.collection), collection
        )
    for element in files:
        if builder.draft is None and Path(element.name).suffix.lower() in DATA_SUFFIXES:
            # a data file sent with the first request: held for the draft that request makes
            builder.files[Path(element.name).name] = _read_upload(element)
            await cl.Message(
                content=f"**{element.name}** is kept for the test runs of the agent you describe.",
                author="Coherex",
            ).send()
            continue
        if builder.takes_file(element.name):
            name = await builder.add_file(element.name, _read_upload(element))
            await cl.Message(
                content=f"**{name}** will be in the working directory of the next test runs.",
                author="Coherex",
            ).send()
            if builder.unsaved:  # the spec's `file` input now names it
                await show_draft(builder)
            continue
        result = await ingest_file(
            builder.db, builder.identity, builder.team_id, collection, Path(element.path), element.name
        )
        chunks = getattr(result, "chunks", None) or getattr(result, "chunk_count", "")
        await cl.Message(
            content=f"Added **{element.name}** to the knowledge collection **{collection}**"
            + (f" ({chunks} passages)." if chunks else "."),
            author="Coherex",
        ).send()


def restore_files(builder: BuilderSession, names: list[str], elements: list[dict[str, Any]]) -> list[str]:
    """Files attached earlier in the thread go into the next test runs again: the thread keeps each
    attachment (up to 5 MB) as an element. Returns the names it no longer has."""
    wanted = {str(n) for n in names}
    for element in reversed(elements):  # the latest upload of a name wins
        name, url = element.get("name"), str(element.get("url") or "")
        if name in wanted and name not in builder.files and url.startswith("data:") and ";base64," in url:
            builder.files[name] = base64.b64decode(url.partition(",")[2])
    return sorted(wanted - set(builder.files))
