"""The builder without a person: a description or a whole transcript in, the draft out (used by
`POST /api/agents/create`). The same `BuilderSession` as the chat, with saving and running left
to the caller."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal
from uuid import UUID

from coherex.builder.draft import Draft
from coherex.builder.session import BuilderSession
from coherex.builder.summary import summarize
from coherex.errors import BackendError, UserError
from coherex.llm import LLMClient
from coherex.settings import Settings
from coherex.spec import Problem
from coherex.store.db import Database, Identity

#: the most transcript messages (and characters in all) one request may carry
MAX_TRANSCRIPT_MESSAGES = 100
MAX_TRANSCRIPT_CHARS = 100_000


@dataclass
class Said:
    role: Literal["user", "assistant"]
    content: str


@dataclass
class BuildResult:
    valid: bool = False
    name: str | None = None
    yaml: str | None = None
    spec: dict[str, Any] | None = None
    summary: str | None = None
    problems: list[Problem] = field(default_factory=list)
    to_connect: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    message: str = ""
    saved: dict[str, Any] | None = None
    llm_calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0


def questions_in(text: str) -> list[str]:
    """The questions in the builder's answer (what it would still ask a person)."""
    out = []
    for line in text.splitlines():
        line = line.strip().lstrip("-*•0123456789.) ").strip()
        out += [q.strip() for q in re.findall(r"[^.!?]*\?", line) if len(q.strip()) > 2]
    return out


async def build(
    db: Database,
    identity: Identity,
    team_id: UUID,
    transcript: list[Said],
    *,
    save: bool = False,
    llm: LLMClient | None = None,
    settings: Settings | None = None,
    team_name: str = "",
) -> BuildResult:
    """Run the builder over `transcript` (earlier messages as the conversation so far, the last user
    message as this turn) and report the draft; save it when `save` and it is ready."""
    said = [m for m in transcript if m.content.strip()]
    if not said or said[-1].role != "user":
        raise UserError("The transcript must end with a message of the user (role `user`).")
    if len(said) > MAX_TRANSCRIPT_MESSAGES or sum(len(m.content) for m in said) > MAX_TRANSCRIPT_CHARS:
        raise UserError(
            f"The transcript is too long (at most {MAX_TRANSCRIPT_MESSAGES} messages and "
            f"{MAX_TRANSCRIPT_CHARS} characters)."
        )
    session = BuilderSession(
        db, identity, team_id, llm=llm, settings=settings, team_name=team_name, headless=True
    )
    first_user = next(m.content for m in said if m.role == "user")
    session.messages = [
        {"role": "system", "content": await session._system_prompt(first_user)},
        *({"role": m.role, "content": m.content} for m in said[:-1]),
    ]
    turn = await session.send(said[-1].content)
    if turn.error:
        raise BackendError(turn.error)
    result = BuildResult(
        message=turn.text,
        questions=questions_in(turn.text),
        llm_calls=turn.llm_calls,
        tokens=turn.tokens_in + turn.tokens_out,
        cost_usd=turn.cost_usd,
    )
    draft = session.draft
    if draft is None:
        if session._work:  # the model drafted, but nothing valid came of it
            result.problems = Draft.check(session._work, await session._refs()).problems
        else:
            result.problems = list(turn.problems)
        return result
    result.valid, result.name, result.yaml, result.spec = True, draft.name, draft.yaml, draft.data
    result.summary = summarize(draft.spec)
    result.problems = list(draft.report.warnings)
    result.to_connect = [c.instructions() for c in draft.connections]
    if save and draft.ready:
        saved = await session.save("created through the API")
        result.saved = {
            "agent_id": str(saved.agent.id),
            "name": saved.agent.name,
            "version": saved.version.version,
        }
        result.name = saved.agent.name
    return result
