"""The tools the builder's LLM is offered, each declared once: its schema (an OpenAI function
definition) and its handler together, registered with `@builder_tool`. A handler gets the
`BuilderSession` and the call's arguments and returns what the model reads (JSON-able).
Also: matching a request to the template library.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from coherex.builder.draft import Draft, bind_sources, fill_from_sources, merge_patch
from coherex.spec import Problem, SpecFormatError, ValidationReport, parse
from coherex.spec.catalogue import tools as catalogue_tools
from coherex.spec.documents import dump_yaml
from coherex.spec.templates import Template, get_template, list_templates
from coherex.spec.validation import cut_by_comment

if TYPE_CHECKING:
    from coherex.builder.session import BuilderSession
    from coherex.store.models import Execution

_WORD = re.compile(r"[a-z0-9]+")
_STOP = {
    "a",
    "an",
    "and",
    "the",
    "to",
    "of",
    "in",
    "on",
    "for",
    "my",
    "our",
    "me",
    "it",
    "every",
    "each",
    "that",
    "with",
    "from",
    "i",
    "we",
    "want",
    "agent",
    "please",
    "can",
    "you",
    "when",
    "is",
    "be",
    "as",
}
# words people use for what a template's text calls otherwise
_SYNONYMS = {
    "email": "mail",
    "emails": "mail",
    "inbox": "mail",
    "gmail": "mail",
    "spreadsheet": "csv",
    "excel": "csv",
    "data": "csv",
    "chart": "csv",
    "issues": "issue",
    "bug": "issue",
    "bugs": "issue",
    "docs": "knowledge",
    "documentation": "knowledge",
    "handbook": "knowledge",
    "faq": "knowledge",
    "questions": "question",
    "alert": "incident",
    "alerts": "incident",
    "outage": "incident",
    "summarise": "summarise",
    "summarize": "summarise",
    "summary": "summarise",
    "digest": "summarise",
}


def _words(text: str) -> set[str]:
    words = {w for w in _WORD.findall(text.lower()) if w not in _STOP}
    return words | {_SYNONYMS[w] for w in words if w in _SYNONYMS}


def match_templates(request: str, limit: int = 3) -> list[tuple[Template, float]]:
    """Templates ranked by shared words with the request (name, description and labels)."""
    asked = _words(request)
    ranked = []
    for template in list_templates():
        known = _words(f"{template.name} {template.description}")
        score = len(asked & known) / (len(asked) ** 0.5 or 1)
        if score > 0:
            ranked.append((template, round(score, 2)))
    ranked.sort(key=lambda pair: -pair[1])
    return ranked[:limit]


# ---------------------------------------------------------------------- the registry
Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class BuilderTool:
    name: str
    description: str
    handler: Handler
    #: JSON-Schema properties of the arguments (a function: computed when offered, e.g. an enum)
    properties: dict[str, Any] | Callable[[], dict[str, Any]]
    required: tuple[str, ...] = ()
    #: offered to a headless session (the API): saving and running are the caller's decision there
    headless: bool = True

    def definition(self) -> dict[str, Any]:
        props = self.properties() if callable(self.properties) else self.properties
        params: dict[str, Any] = {"type": "object", "properties": props}
        if self.required:
            params["required"] = list(self.required)
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": params},
        }


#: every builder tool by name, in the order they are offered
TOOLS: dict[str, BuilderTool] = {}


def builder_tool(
    description: str,
    properties: dict[str, Any] | Callable[[], dict[str, Any]] | None = None,
    required: tuple[str, ...] = (),
    *,
    headless: bool = True,
) -> Callable[[Handler], Handler]:
    """Register the decorated `async def NAME(session, **arguments)` as the builder tool NAME."""

    def register(handler: Handler) -> Handler:
        TOOLS[handler.__name__] = BuilderTool(
            handler.__name__, description, handler, properties or {}, required, headless
        )
        return handler

    return register


def definitions(only: tuple[str, ...] | None = None, *, headless: bool = False) -> list[dict[str, Any]]:
    """The function definitions offered to the model (`headless`: without saving and running)."""
    return [
        t.definition()
        for t in TOOLS.values()
        if (only is None or t.name in only) and (t.headless or not headless)
    ]


# ---------------------------------------------------------------------- drafting
@builder_tool(
    "Start the draft from a template of the library (it is validated and shown).",
    lambda: {
        "name": {"type": "string", "enum": [t.name for t in list_templates()], "description": "template name"}
    },
    ("name",),
)
async def use_template(s: BuilderSession, name: str) -> dict[str, Any]:
    from coherex.integrations.service import list_sources

    # the template's example names (`github`, `handbook`) become the team's own before it is shown,
    # and its example values the sources' own settings (a GitHub source's repository)
    data, bound = bind_sources(parse(get_template(name).text(), "yaml"), await s._refs())
    configs = {d.name: d.config for d in await list_sources(s.db, s.identity, s.team_id)}
    bound += fill_from_sources(data, configs)
    zone = await s.person_timezone()  # a template's example zone becomes the person's
    for trigger in (data.get("spec") or {}).get("triggers") or []:
        if isinstance(trigger, dict) and isinstance(trigger.get("schedule"), dict):
            trigger["schedule"]["timezone"] = zone
    draft = await s.set_draft(data)
    answer = {"template": name, "yaml": dump_yaml(data), **(await s._after_draft(draft))}
    if bound:
        answer["bound_to_team"] = bound
    return answer


@builder_tool(
    "Find templates that fit a description.",
    {"query": {"type": "string", "description": "what the agent should do"}},
    ("query",),
)
async def search_templates(s: BuilderSession, query: str) -> list[dict[str, Any]]:
    return [{"name": t.name, "description": t.description, "score": n} for t, n in match_templates(query, 6)]


@builder_tool(
    "Replace the draft with a complete spec (YAML text); it is validated.",
    {"yaml": {"type": "string", "description": "the whole spec, apiVersion coherex/v1"}},
    ("yaml",),
)
async def draft_spec(s: BuilderSession, yaml: str) -> dict[str, Any]:
    try:
        data = parse(yaml, "yaml")
    except SpecFormatError as exc:
        return await s._after_draft(_unparsable(exc))
    if not isinstance(data, dict):
        return await s._after_draft(_unparsable(SpecFormatError("the spec must be a YAML mapping")))
    answer = await s._after_draft(await s.set_draft(data))
    # the draft keeps parsed data only: a value YAML cut at `#word` is told now or never
    if cuts := cut_by_comment(yaml, "yaml"):
        answer["warnings"] = [str(p) for p in cuts] + list(answer.get("warnings") or [])
    return answer


@builder_tool(
    "Change part of the draft with a JSON merge patch (objects merge, null deletes, "
    'lists are replaced whole), e.g. {"metadata": {"name": "x"}}; it is validated.',
    {"changes": {"type": "object", "description": "the merge patch"}},
    ("changes",),
)
async def update_spec(s: BuilderSession, changes: dict[str, Any]) -> dict[str, Any]:
    if s._work is None:
        return {"valid": False, "problems": "There is no draft yet: use use_template or draft_spec first."}
    return await s._after_draft(await s.set_draft(merge_patch(s._work, changes)))


@builder_tool(
    "Make the agent run on a schedule (replaces any existing schedule).",
    {
        "cron": {"type": "string", "description": "five-field cron, e.g. '0 8 * * 1-5'"},
        "timezone": {
            "type": "string",
            "description": "IANA time zone, e.g. Europe/Berlin (default: the person's, named in the prompt)",
        },
    },
    ("cron",),
)
async def schedule(s: BuilderSession, cron: str, timezone: str | None = None) -> dict[str, Any]:
    return await s.schedule(cron, timezone)


@builder_tool("Validate the current draft against the team's data sources and collections.")
async def validate_spec(s: BuilderSession) -> dict[str, Any]:
    if s._work is None:
        return {"valid": False, "problems": "There is no draft yet."}
    return await s._after_draft(Draft.check(s._work, await s._refs()))


# ---------------------------------------------------------------------- the team's data
@builder_tool(
    "The team's connected data sources: name, type, status, and what each knows (its settings, e.g. a "
    "GitHub source's repository: use it instead of asking)."
)
async def list_data_sources(s: BuilderSession) -> list[dict[str, Any]]:
    from coherex.integrations.service import list_sources

    return [
        {
            "name": d.name,
            "type": d.type,
            "status": d.status,
            # settings only: credentials live encrypted elsewhere and never reach the model
            **({"knows": {k: v for k, v in d.config.items() if v not in (None, "")}} if d.config else {}),
            **({"last_error": d.last_error} if d.last_error else {}),
        }
        for d in await list_sources(s.db, s.identity, s.team_id)
    ]


@builder_tool("The team's knowledge collections.")
async def list_collections(s: BuilderSession) -> list[str]:
    return sorted((await s._refs()).collections)


@builder_tool(
    "The tools a spec may use, with their parameters and the access they need: the catalogue, and the "
    "tools the team's MCP and OpenAPI sources offer (each with the `add` entry that puts it in a draft).",
    {
        "integration": {"type": "string", "description": "only this integration (slack, gmail, mcp, ...)"},
        "data_source": {"type": "string", "description": "only the tools this data source offers"},
    },
)
async def list_tools(
    s: BuilderSession, integration: str | None = None, data_source: str | None = None
) -> list[dict[str, Any]]:
    from coherex.integrations.service import discovered_tools, list_sources
    from coherex.spec.catalogue import discovering

    out: list[dict[str, Any]] = []
    if not data_source:
        out = [
            {
                "use": t.name,
                "integration": t.integration,
                "access": t.access,
                "needs": "dataSource" if t.needs_data_source else "collection" if t.uses_collection else None,
                "description": t.description,
                "parameters": t.parameters.get("properties", {}),
            }
            for t in catalogue_tools()
            if integration in (None, "", t.integration) and t.name not in discovering()
        ]
    for source in await list_sources(s.db, s.identity, s.team_id):
        uses = [use for use, kind in discovering().items() if kind == source.type]
        if not uses or data_source not in (None, "", source.name) or integration not in (None, "", uses[0]):
            continue
        found = await discovered_tools(s.db, s.team_id, source.name)
        if found is None:
            if source.type != "http_api":  # an http_api source without a document offers none
                out.append({"use": uses[0], "dataSource": source.name, "note": "its tools were not read yet"})
            continue
        out += [
            {
                "use": uses[0],
                "dataSource": source.name,
                "tool": t.name,
                "access": t.access,
                "description": t.description,
                "parameters": t.parameters.get("properties", {}),
                "add": {
                    "use": uses[0],
                    "dataSource": source.name,
                    "tools": [t.name],
                    **({"access": "write"} if t.access == "write" else {}),
                },
            }
            for t in found
        ]
    return out


# ---------------------------------------------------------------------- saving and running
@builder_tool(
    "Save the draft as a new agent or a new version of the open one.",
    {"message": {"type": "string", "description": "what changed"}},
    headless=False,
)
async def save_spec(s: BuilderSession, message: str = "saved from the chat") -> dict[str, Any]:
    if s.draft is None:
        return {"saved": False, "not_saved_because": "there is no valid draft yet; fix its problems first"}
    if not s.draft.ready:
        # not an error the model should retry: the person must act (connect, or give a fact)
        return {"saved": False, "not_saved_because": s.draft.not_ready()}
    saved = await s.save(message)
    return {
        "saved": True,
        "agent": saved.agent.name,
        "version": saved.version.version,
        "live": await live_triggers(s, saved.agent, s.draft.spec if s.draft else None),
    }


async def live_triggers(s: BuilderSession, agent: Any, spec: Any) -> list[str]:
    """What each trigger of the saved version means now, in plain words: a schedule's next run in
    its time zone, a webhook's address, the events it waits for (and where the source sends them)."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from coherex.builder.summary import describe_cron
    from coherex.integrations.service import list_sources
    from coherex.services.triggers import next_fire

    base = (s.settings.public_url or "").rstrip("/")
    where = "" if base else " (on this platform's address; COHEREX_PUBLIC_URL makes it a full URL)"
    sources = {d.name: d for d in await list_sources(s.db, s.identity, s.team_id)}
    out = []
    for trigger in (spec.spec.triggers if spec is not None else None) or []:
        if (sched := trigger.schedule) is not None:
            at = next_fire(sched.cron, sched.timezone, datetime.now(UTC)).astimezone(ZoneInfo(sched.timezone))
            out.append(
                f"schedule: runs {describe_cron(sched.cron)} ({sched.timezone}); next run "
                f"{at:%A %Y-%m-%d %H:%M} {sched.timezone}"
            )
        elif trigger.webhook is not None:
            out.append(
                f"webhook: POST {base}/api/hooks/{agent.id}{where}, signed with the agent's webhook secret "
                f"(an admin gets it, and turns the webhook on, with GET /api/agents/{agent.id}/webhook)"
            )
        elif (event := trigger.event) is not None:
            source = sources.get(event.source)
            receiver = (
                f"; {event.source} sends its events to {base}/api/events/{source.id}{where}" if source else ""
            )
            only = (
                f" when {', '.join(f'{k} is {v!r}' for k, v in event.filter.items())}" if event.filter else ""
            )
            out.append(f"event: runs on every {event.type} from {event.source}{only}{receiver}")
    return out or ["no trigger: it runs when someone starts it (chat, CLI, API)"]


@builder_tool(
    "Save the draft and run it once now; the person watches every step.",
    {"inputs": {"type": "object", "description": "values for the agent's inputs"}},
    headless=False,
)
async def test_run(s: BuilderSession, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    return run_answer(await s.test_run(inputs))


# ---------------------------------------------------------------------- existing agents
@builder_tool("The team's saved agents with their last run.")
async def list_agents(s: BuilderSession) -> list[dict[str, Any]]:
    from coherex.services.agents import agents_with_last_run

    return [
        {
            "name": a.name,
            "description": a.description,
            "version": a.current_version,
            "status": a.status,
            "last_run": run_answer(last) if last else None,
        }
        for a, last in await agents_with_last_run(s.db, s.identity, s.team_id)
    ]


@builder_tool("Load a saved agent as the draft, to change it.", {"name": {"type": "string"}}, ("name",))
async def open_agent(s: BuilderSession, name: str) -> dict[str, Any]:
    agent = await s.open_agent(name)
    assert s.draft is not None
    return {"agent": agent.name, "version": agent.current_version, "yaml": s.draft.yaml}


@builder_tool(
    "Run a saved agent now; the person watches every step.",
    {"name": {"type": "string"}, "inputs": {"type": "object"}},
    ("name",),
    headless=False,
)
async def run_agent(s: BuilderSession, name: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    from coherex.services.agents import agent_by_name

    return run_answer(await s.run_agent(await agent_by_name(s.db, s.identity, s.team_id, name), inputs))


@builder_tool(
    "What a saved agent did recently: its last runs with status, result and steps.",
    {"name": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 20}},
    ("name",),
)
async def recent_runs(s: BuilderSession, name: str, limit: int = 5) -> list[dict[str, Any]]:
    from coherex.services.agents import agent_by_name
    from coherex.services.runs import recent_runs as runs_of

    agent = await agent_by_name(s.db, s.identity, s.team_id, name)
    return [
        {**run_answer(run), "started": run.started_at, "trigger": run.trigger, "tools_called": calls}
        for run, calls in await runs_of(s.db, s.identity, agent.id, max(1, min(limit, 20)))
    ]


# ---------------------------------------------------------------------- helpers
def _unparsable(exc: SpecFormatError) -> Draft:
    return Draft({}, ValidationReport([Problem(exc.location or "", exc.problem, exc.hint)]), [])


def run_answer(run: Execution) -> dict[str, Any]:
    """A run as the model reads it."""
    output = run.output.get("text") if isinstance(run.output, dict) else run.output
    return {
        "execution": str(run.id),
        "status": run.status,
        "output": output,
        "error": run.error,
        "duration_ms": run.duration_ms,
        "tokens": run.tokens_in + run.tokens_out,
        "cost_usd": float(run.cost_usd),
    }


__all__ = ["TOOLS", "BuilderTool", "builder_tool", "definitions", "match_templates"]
