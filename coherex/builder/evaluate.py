"""Builder evaluation: run plain-language requests through the real builder and check the result.

A case (one JSON line):

    {"id": "mail-digest",
     "request": "Every weekday at 8 summarise my unread mail into #ops",
     "answers": ["work-mail", "Europe/Berlin"],            # what the simulated person replies
     "data_sources": {"work-mail": "gmail", "team-slack": "slack"},   # the team's connections
     "collections": ["handbook"],
     "expect": {"tools": ["gmail.search_messages", "slack.post_message"],
                "access": {"slack.post_message": "write"},
                "trigger": "schedule", "cron": "0 8 * * 1-5", "timezone": "Europe/Berlin",
                "inputs": ["since"], "collections": ["handbook"]}}

Optional: "person_timezone" — the time zone stored for the person (as their browser or the chat
settings would; without it they have none, and the install's COHEREX_TIMEZONE applies): an
expected schedule is then checked to be in it, unless "expect" names another "timezone";
"edits" — messages sent after the request and its answers, whatever the builder said
(plain change requests: "run it every morning at 8"); in "expect", "template" (the template the
draft started from: its `labels.template`, or its name), "with" ({tool: {argument: value}}),
"data_sources" ({tool: data source}) and "name".

Every case also checks that no placeholder value (`owner/repo`, `you@example.com`, `TODO`: a fact
the builder invented instead of asking) was saved or left in a draft shown as ready to save.

A case is a *hit* when the draft uses every expected tool and, if one is expected, started from
the expected template: whether the builder chose the right template or tools.

Each case runs in a throwaway team holding its data sources, deleted afterwards, and the builder
talks to the eval's own person (`EVAL_PERSON`: a login without a password, whose time zone is the
case's), so that the operator's own time zone never changes a result.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from coherex.builder.session import BuilderSession
from coherex.errors import UserError
from coherex.llm import LLMClient
from coherex.services.users import canonical_timezone
from coherex.spec import AgentSpec, load_spec, placeholders
from coherex.store.db import Database, Identity

#: the person the builder talks to in every case (no password: nobody signs in as it)
EVAL_PERSON = "builder-eval@coherex.invalid"


@dataclass
class CaseResult:
    id: str
    valid: bool
    matched: int
    checks: int
    failed: list[str] = field(default_factory=list)
    turns: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    error: str | None = None
    #: the right template or tools were chosen
    hit: bool = False
    #: wall time of each builder turn (ms)
    turn_ms: list[float] = field(default_factory=list)


def load_cases(path: Path) -> list[dict[str, Any]]:
    cases = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not JSON ({exc.msg}).") from None
        if not isinstance(case, dict) or not isinstance(case.get("request"), str):
            raise UserError(f'{path}:{number}: a case needs at least a "request" string.')
        if case.get("person_timezone") is not None:
            try:
                canonical_timezone(str(case["person_timezone"]))
            except UserError as exc:
                raise UserError(f"{path}:{number}: person_timezone: {exc.message}") from None
        case.setdefault("id", f"case-{number}")
        cases.append(case)
    return cases


def check(
    spec: AgentSpec | None, expect: dict[str, Any], *, ready: bool = False, saved: AgentSpec | None = None
) -> tuple[int, list[str]]:
    """(checks passed, descriptions of the failed ones) for the expected properties; `ready`: the
    draft was offered as ready to save, `saved`: the version saved in the case (if any)."""
    if spec is None:
        return 0, ["no valid spec"]
    tools = {t.use: t for t in spec.spec.tools or []}
    triggers = spec.spec.triggers or []
    schedule = next((t.schedule for t in triggers if t.schedule), None)
    kinds = {k for t in triggers for k in ("schedule", "webhook", "event") if getattr(t, k)} or {"none"}
    results: list[tuple[bool, str]] = []
    for use in expect.get("tools", []):
        results.append((use in tools, f"uses {use}"))
    for use, access in expect.get("access", {}).items():
        got = tools[use].access if use in tools else None
        results.append((got == access, f"{use} has {access} access (got {got})"))
    if "trigger" in expect:
        results.append((expect["trigger"] in kinds, f"trigger {expect['trigger']} (got {sorted(kinds)})"))
    if "cron" in expect:
        got = schedule.cron if schedule else None
        results.append((got == expect["cron"], f"cron {expect['cron']} (got {got})"))
    if "timezone" in expect:
        got = schedule.timezone if schedule else None
        results.append((got == expect["timezone"], f"time zone {expect['timezone']} (got {got})"))
    for name in expect.get("inputs", []):
        results.append((name in (spec.spec.inputs or {}), f"input {name}"))
    for name in expect.get("collections", []):
        results.append((any(t.collection == name for t in tools.values()), f"collection {name}"))
    if "template" in expect:
        got = template_of(spec)
        results.append((got == expect["template"], f"template {expect['template']} (got {got})"))
    for use, args in expect.get("with", {}).items():
        for key, value in args.items():
            got = (tools[use].with_ or {}).get(key) if use in tools else None
            results.append((got == value, f"{use} with {key}={value} (got {got})"))
    for use, source in expect.get("data_sources", {}).items():
        got = tools[use].dataSource if use in tools else None
        results.append((got == source, f"{use} on {source} (got {got})"))
    if "name" in expect:
        results.append(
            (spec.metadata.name == expect["name"], f"name {expect['name']} (got {spec.metadata.name})")
        )
    leaked = (placeholders(spec) if ready else []) + (placeholders(saved) if saved is not None else [])
    results.append(
        (
            not leaked,
            "no placeholder saved as ready"
            + (f" (got {'; '.join(f'{p.path}: {p.message}' for p in leaked)})" if leaked else ""),
        )
    )
    return sum(ok for ok, _ in results), [what for ok, what in results if not ok]


def template_of(spec: AgentSpec) -> str:
    """The template a draft started from (the offline builder labels it), else its name."""
    return (spec.metadata.labels or {}).get("template") or spec.metadata.name


def hit(spec: AgentSpec | None, expect: dict[str, Any]) -> bool:
    """The right template or tools: every expected tool used, and the expected template if any."""
    if spec is None:
        return False
    used = {t.use for t in spec.spec.tools or []}
    return set(expect.get("tools", [])) <= used and expect.get("template", template_of(spec)) == template_of(
        spec
    )


def _checks(expect: dict[str, Any]) -> int:
    return (
        len(expect.get("tools", []))
        + len(expect.get("access", {}))
        + len(expect.get("inputs", []))
        + len(expect.get("collections", []))
        + sum(k in expect for k in ("trigger", "cron", "timezone"))
        + sum(len(a) for a in expect.get("with", {}).values())
        + len(expect.get("data_sources", {}))
        + sum(k in expect for k in ("template", "name"))
        + 1  # no placeholder saved as ready
    )


async def run_case(
    db: Database, owner: UUID, case: dict[str, Any], llm: LLMClient | None = None
) -> CaseResult:
    expect = case.get("expect", {})
    if case.get("person_timezone") and ("cron" in expect or expect.get("trigger") == "schedule"):
        expect = {
            "timezone": canonical_timezone(case["person_timezone"]),
            **expect,
        }  # unless it names another
    started = time.perf_counter()
    async with db.session(Identity.user(owner)) as s:
        team = await s.teams.create(f"eval-{secrets.token_hex(4)}", f"eval {case['id']}")
        for name, kind in (case.get("data_sources") or {}).items():
            await s.sources.create(team.id, name, kind, {})
        for name in case.get("collections") or []:
            await s.knowledge.get_or_create_collection(team.id, name, "eval", 384)
    result = CaseResult(case["id"], False, 0, max(_checks(expect), 1))
    try:
        person = await _eval_person(db, team.id, case.get("person_timezone"))
        session = BuilderSession(db, Identity.user(person), team.id, llm=llm, team_name="eval")
        answers = list(case.get("answers") or [])
        message: str | None = case["request"]
        edits = list(case.get("edits") or [])
        while message is not None:
            turn = await session.send(message)
            result.turns += 1
            result.turn_ms.append(round(turn.duration_ms, 1))
            result.tokens += turn.tokens_in + turn.tokens_out
            result.cost_usd += turn.cost_usd
            if turn.error:
                result.error = turn.error
                break
            done = session.draft is not None and session.draft.valid and not turn.text.rstrip().endswith("?")
            message = answers.pop(0) if answers and not done else edits.pop(0) if edits else None
        spec = session.draft.spec if session.draft is not None and session.draft.valid else None
        result.valid = spec is not None
        saved = None
        if session.agent is not None:
            async with db.session(Identity.user(owner)) as s:
                saved = load_spec((await s.agents.require_version(session.agent)).spec)
        ready = session.draft is not None and session.draft.ready
        result.matched, result.failed = check(spec, expect, ready=ready, saved=saved)
        result.hit = hit(spec, expect)
    finally:
        async with db.session(Identity.system()) as s:
            await s.teams.delete(team.id)
    result.seconds = round(time.perf_counter() - started, 3)
    return result


async def _eval_person(db: Database, team_id: UUID, zone: str | None) -> UUID:
    """The eval's person, with the case's time zone (or none), made an owner of the case's team."""
    zone = canonical_timezone(zone) if zone else None
    async with db.session(Identity.system()) as s:
        person = await s.users.get_by_email(EVAL_PERSON) or await s.users.create(
            EVAL_PERSON, display_name="builder eval"
        )
        await s.users.set_timezone(person.id, zone)
        await s.members.add(team_id, person.id, "owner")
    return person.id


def totals(results: list[CaseResult]) -> dict[str, Any]:
    n = len(results) or 1
    turns = sorted(ms for r in results for ms in r.turn_ms)

    def pct(q: float) -> float | None:
        return turns[min(len(turns) - 1, int(q * len(turns)))] if turns else None

    return {
        "cases": len(results),
        "valid": sum(r.valid for r in results),
        "hits": sum(r.hit for r in results),
        "hit_rate": round(sum(r.hit for r in results) / n, 3),
        "turn_ms_p50": pct(0.5),
        "turn_ms_p95": pct(0.95),
        "turn_ms_max": turns[-1] if turns else None,
        "properties_matched": sum(r.matched for r in results),
        "properties": sum(r.checks for r in results),
        "turns": sum(r.turns for r in results),
        "tokens": sum(r.tokens for r in results),
        "cost_usd": round(sum(r.cost_usd for r in results), 6),
        "seconds": round(sum(r.seconds for r in results), 3),
        "mean_turns": round(sum(r.turns for r in results) / n, 2),
    }
