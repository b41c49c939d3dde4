"""The builder with no capable model (settings.llm_offline): a guided flow that chooses by meaning.

A 135M model cannot be trusted to pick a template or write a spec, so it does neither here. Each
turn is decided by the platform, in milliseconds:
- a new request is matched against the template library and the tool catalogue with the
  knowledge base's embedding model (MiniLM, offline; template and tool vectors are cached per
  process). Cue words say which integrations the request names (mail, Slack, GitHub, a CSV…);
  each clause of the request picks its closest tool among those integrations. A template is
  taken when it covers those tools and does not write anywhere the request did not name;
  otherwise a spec is composed from the tools;
- the draft's slots are filled from the request (channels, repository, schedule phrases in the
  person's time zone, the question) and from the team (which connected source, which collection);
  what is still open becomes one short question per turn;
- later messages are edits applied the same way ("run it every morning at 8", "use #sales
  instead", "use support-mail", "call it sales-report", "no schedule"), or commands ("test it",
  "save").
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from coherex.builder.schedule_phrases import find_timezone
from coherex.builder.schedule_phrases import parse as parse_schedule
from coherex.builder.summary import describe_cron, summarize
from coherex.spec import parse
from coherex.spec.catalogue import get_tool
from coherex.spec.templates import Template, list_templates

if TYPE_CHECKING:
    from coherex.builder.session import BuilderSession

log = logging.getLogger(__name__)

#: what each tool is for, in the words people use (embedded with the catalogue's description)
TOOL_PHRASES = {
    "python": "compute or calculate numbers, analyse a data file, make a table or a chart with Python code",
    "csv.summarize": "summarise an uploaded CSV file: totals, averages, per category, what changed or is "
    "unusual",
    "knowledge.search": "answer questions from our documents: the handbook, FAQ, runbooks, policies, wiki",
    "gmail.search_messages": "find emails in the mailbox: unread mail, my inbox, messages from someone",
    "gmail.read_message": "read the text of an email",
    "gmail.send_message": "send an email, reply to the sender, acknowledge a message by mail",
    "gmail.add_label": "label emails, tag or file messages in the mailbox",
    "slack.read_channel": "read what was discussed in a Slack channel, the messages of a channel today",
    "slack.post_message": "post a message or digest to a Slack channel, alert or notify a channel",
    "slack.reply_in_thread": "reply in the thread of a Slack message, answer in the thread",
    "slack.list_channels": "list the Slack channels of the workspace",
    "github.list_issues": "list the issues of a GitHub repository: new or open issues, issues by label or "
    "state",
    "github.read_issue": "read one GitHub issue and its details",
    "github.create_issue": "open a new GitHub issue, file a bug report",
    "github.comment_issue": "comment on a GitHub issue, ask the reporter for missing details or "
    "reproduction steps",
    "github.add_labels": "label or tag GitHub issues as bug, feature or question",
    "github.list_pull_requests": "list the open pull requests of a repository awaiting review",
    "github.read_pull_request_diff": "read the diff of a pull request, review the code changes",
    "github.list_commits": "list the commits of a repository, a changelog of the recent changes",
    "http.get": "call an HTTP API endpoint, check a URL or a /health status",
    "http.request": "send a POST or PUT request to an HTTP API",
    "postgres.query": "query the database with SQL: count rows or orders, read a table",
    "postgres.execute": "change rows in the database: insert, update or delete",
}

#: cue words: which integrations a request names (the embedding then picks tools among them)
CUES = {
    "gmail": r"\b(e-?mails?|mail|inbox|mailbox|gmail|newsletters?|senders?)\b",
    "slack": r"\bslack\b|(?<![\w/])#[a-z][\w-]*|\bchannels?\b|\bthread\b|\bmentions? the bot\b",
    "github": r"\bgithub\b|\bissues?\b|\bpull requests?\b|\bprs\b|\bcommits?\b|\brepo(s|sitory|sitories)?\b"
    "",
    "postgres": r"\b(postgres(ql)?|database|sql|db)\b|\b(in|from) the \w+ table\b",
    "http_api": r"(?<![/\w])(api|endpoint|https?://\S+|url|status page)\b|/health\b",
    "csv": r"\b(csv|tsv|spreadsheet|excel|xlsx|data ?set|data file|file i( wi|')?ll upload|file i "
    r"upload|export)\b",
    "python": r"\b(compute|calculate|calculation|interest|formula|simulate|chart|plot)\b",
    "knowledge": r"\b(handbook|docs|documents?|documentation|knowledge|faq|runbooks?|polic(y|ies)|wiki|manual"
    r"|cite|citing)\b|\bwhat is our\b|\bhow do (i|we)\b",
}
#: the integration of a tool name's prefix
_INTEGRATION = {
    "python": "python",
    "csv": "csv",
    "knowledge": "knowledge",
    "gmail": "gmail",
    "slack": "slack",
    "github": "github",
    "postgres": "postgres",
    "http": "http_api",
}
#: the name a composed spec gives a data source of this type when the team has none yet
_DEFAULT_SOURCE = {
    "gmail": "work-mail",
    "slack": "team-slack",
    "github": "github",
    "postgres": "database",
    "http_api": "api",
}
#: tools that need another one first (you find a message before you read it)
_NEEDS = {
    "gmail.read_message": "gmail.search_messages",
    "gmail.add_label": "gmail.search_messages",
    "github.read_issue": "github.list_issues",
    "github.add_labels": "github.list_issues",
    "github.comment_issue": "github.list_issues",
    "github.read_pull_request_diff": "github.list_pull_requests",
}
_LABEL = {
    "csv": "the platform's CSV analysis",
    "gmail": "Gmail",
    "slack": "Slack",
    "github": "GitHub",
    "postgres": "Postgres",
    "http_api": "an HTTP API",
    "python": "Python in the sandbox",
    "knowledge": "the knowledge base",
}
#: a clause must be at least this close to a tool to choose it (cosine, MiniLM)
TOOL_MIN_SCORE = 0.2
#: … and closer when the clause names no integration ("label them 'newsletter'")
TOOL_LOOSE_SCORE = 0.3
#: a template must be at least this close to the request (cosine) when it covers the tools
TEMPLATE_MIN_SCORE = 0.3
_CHANNEL = re.compile(r"(?<![\w/&])#([a-z0-9][\w-]{0,79})", re.IGNORECASE)
_REPO = re.compile(r"\b([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)\b")
_SPLIT = re.compile(r"[,;.!?]\s+|\s+(?:and then|then|and|but|before|after)\s+", re.IGNORECASE)
_QUESTION = re.compile(
    r"^\s*(what|how|who|whom|which|where|why|when|is|are|can|do|does|did|should|may)\b.*\?\s*$"
)
_TRIGGER_WORDS = re.compile(r"\b(when|whenever|each time|every time|as soon as)\b", re.IGNORECASE)
_TRIGGER_CLAUSE = re.compile(r"^\s*(when|whenever|each time|every time|as soon as|if)\b", re.IGNORECASE)
_WRITE_VERBS = re.compile(
    r"\b(post|send|alert|notify|reply|answer|share|write|put|drop|tell|remind|page|ping|"
    r"announce|publish|report|message|let \w+ know|inform|deliver)\b",
    re.IGNORECASE,
)
_TEST = re.compile(
    r"^\s*(please\s+)?(test|try|run)(\s+(it|this|the agent|a test run))?(\s+(now|once))?\s*[.!]?\s*$"
    r"|\btest[- ]run\b",
    re.IGNORECASE,
)
_SAVE = re.compile(r"^\s*(please\s+)?save(\s+(it|this|the agent))?\s*[.!]?\s*$", re.IGNORECASE)
_NO_SCHEDULE = re.compile(
    r"\b(no schedule|not on a schedule|remove the schedule|don'?t schedule|unschedule|"
    r"only when i (run|start|ask)|on demand|manually)\b",
    re.IGNORECASE,
)
_RENAME = re.compile(
    r"\b(?:call|name|rename)\s+(?:it|the agent)?\s*(?:to\s+)?[\"'“]?([A-Za-z][\w -]{1,60}?)[\"'”]?\s*$",
    re.IGNORECASE,
)
_YES = re.compile(
    r"^\s*(yes|yep|ok|okay|fine|sure|correct|right|that'?s (fine|right|correct)|it is|good)\b", re.IGNORECASE
)
_INPUT_LIST = re.compile(
    r"\b(?:for|of|on|with)\s+(?:an?|any|the|some)?\s*([a-z][a-z ,]*?)\s+(?:that\s+)?"
    r"(?:i|we|you)\s+(?:give|name|provide|enter|pass|choose|pick|specify|type)\b",
    re.IGNORECASE,
)
_INPUT_ALIASES = {"repository": "repo", "repositories": "repo", "percentage": "rate", "year": "years"}
_NUMERIC_INPUTS = {
    "amount",
    "rate",
    "years",
    "months",
    "days",
    "count",
    "number",
    "price",
    "quantity",
    "total",
    "principal",
    "interest",
    "limit",
    "hours",
    "weeks",
    "percent",
}


# ---------------------------------------------------------------------- meaning
@lru_cache(maxsize=1)
def _embedder() -> Any:
    """The knowledge base's local model (MiniLM): offline even where the knowledge base uses OpenAI's."""
    from coherex.knowledge.embed import _local

    return _local()


_VECTORS: dict[str, list[float]] = {}  # text → unit vector (template, tool and request texts)


def embed(texts: list[str]) -> list[list[float]]:
    """Unit vectors for `texts`, cached: the library's vectors are computed once per process."""
    missing = [t for t in dict.fromkeys(texts) if t not in _VECTORS]
    if missing:
        for text, vector in zip(missing, _embedder().embed(missing), strict=True):
            _VECTORS[text] = vector
        while len(_VECTORS) > 5000:  # requests are cached too; keep the cache small
            _VECTORS.pop(next(iter(_VECTORS)))
    return [_VECTORS[t] for t in texts]


def _cos(a: list[float], b: list[float]) -> float:
    return float(sum(x * y for x, y in zip(a, b, strict=True)))


def warm_up() -> None:
    """Load the model and the library's vectors (a few seconds once per process); call it from a thread."""
    embed([_template_text(t) for t in _library()] + [_tool_text(n) for n in TOOL_PHRASES])


@dataclass(frozen=True)
class LibraryTemplate:
    template: Template
    data: dict[str, Any]

    @property
    def tools(self) -> set[str]:
        return {t["use"] for t in self.data["spec"].get("tools") or []}

    @property
    def integrations(self) -> set[str]:
        return {_integration(u) for u in self.tools}

    def writes_unasked(self, planned: list[str]) -> list[str]:
        """The template's tools that change data but were not asked for."""
        return sorted(
            u for u in self.tools if (info := get_tool(u)) and info.access == "write" and u not in planned
        )


def _first_tool(t: LibraryTemplate) -> str | None:
    """The template's first tool a request can ask for (knowledge.answer is the platform's own step)."""
    return next((u["use"] for u in t.data["spec"].get("tools") or [] if u["use"] in TOOL_PHRASES), None)


@lru_cache(maxsize=1)
def _library() -> tuple[LibraryTemplate, ...]:
    return tuple(LibraryTemplate(t, parse(t.text(), "yaml")) for t in list_templates())


def _template_text(t: LibraryTemplate) -> str:
    return f"{t.template.name.replace('-', ' ')}: {t.template.description}"


def _tool_text(name: str) -> str:
    info = get_tool(name)
    return f"{TOOL_PHRASES[name]}. {info.description if info else ''}"


def _integration(use: str) -> str:
    return _INTEGRATION.get(use.split(".", 1)[0], use.split(".", 1)[0])


def cues(text: str) -> set[str]:
    """The integrations `text` names; a bare question ("How many vacation days…?") is for the knowledge
    base."""
    low = text.lower()
    found = {name for name, pattern in CUES.items() if re.search(pattern, low)}
    if not found and _QUESTION.search(low):
        found = {"knowledge"}
    return found


@dataclass
class Choice:
    """What a request asks for: the tools it names and the templates ranked against it."""

    integrations: set[str]
    tools: list[str]
    #: (template, cosine, eligible, why not) best first
    ranked: list[tuple[LibraryTemplate, float, bool, str]]

    @property
    def template(self) -> LibraryTemplate | None:
        """The closest eligible template if close enough, or one with exactly the planned tools."""
        best = next((r for r in self.ranked if r[2]), None)
        if best is None:
            return None
        if best[1] >= TEMPLATE_MIN_SCORE:
            return best[0]
        # whatever its closeness, a template built around the request's first tool
        built_around = [r for r in self.ranked if r[2] and _first_tool(r[0]) in self.tools]
        return built_around[0][0] if built_around else None


def choose(request: str) -> Choice:
    """Rank the library and plan the tools for `request` (pure: no team data, a few ms once warm)."""
    asked = cues(request)
    tools = plan_tools(request, asked)
    library = _library()
    vectors = embed([request] + [_template_text(t) for t in library])
    ranked = []
    for t, vector in zip(library, vectors[1:], strict=True):
        score = _cos(vectors[0], vector)
        missing = [u for u in tools if u not in t.tools]
        unasked = t.writes_unasked(tools)
        why_not = (
            f"it does not {', '.join(TOOL_PHRASES[u].split(',')[0] for u in missing)}"
            if missing
            else f"it would also {', '.join(TOOL_PHRASES[u].split(',')[0] for u in unasked)}"
            if unasked
            else ""
        )
        if _is_starter(request) and request.strip().rstrip(".") == t.template.description.rstrip("."):
            score, why_not = 1.0, ""  # a chat starter: the template's own description
        ranked.append((t, round(score, 3), not why_not, why_not))
    ranked.sort(key=lambda r: (not r[2], -r[1]))
    return Choice(asked, tools, ranked)


def plan_tools(request: str, asked: set[str]) -> list[str]:
    """The tools the request's clauses ask for, among the integrations it names: in each clause, the
    closest tool of each integration the clause names (or, naming none, the closest of all)."""
    candidates = [n for n in TOOL_PHRASES if _integration(n) in asked and get_tool(n)]
    if not candidates:
        return []
    clauses = [
        c
        for c in (_strip_schedule(c).strip() for c in _SPLIT.split(request))
        if len(c) > 3 and not _TRIGGER_CLAUSE.match(c)
    ]  # "when someone asks in #help" is the trigger
    vectors = embed(clauses + [request] + [_tool_text(n) for n in candidates])
    tool_vectors = dict(zip(candidates, vectors[len(clauses) + 1 :], strict=True))
    chosen: list[str] = []
    for clause, vector in zip(clauses, vectors, strict=False):
        named = cues(clause) & asked
        groups = (
            [[n for n in candidates if _integration(n) == i] for i in sorted(named)]
            if named
            else [candidates]
        )
        for group in groups:
            group = _by_verb(clause, group)
            best = max(group, key=lambda n: _cos(vector, tool_vectors[n]))
            if (
                _cos(vector, tool_vectors[best]) >= (TOOL_MIN_SCORE if named else TOOL_LOOSE_SCORE)
                and best not in chosen
            ):
                chosen.append(best)
    whole = vectors[len(clauses)]
    # an integration named only where the trigger is described needs no tool of its own
    named_outside_trigger = set().union(*(cues(c) for c in clauses)) & asked if clauses else asked
    for integration in sorted(named_outside_trigger - {_integration(n) for n in chosen}):
        own = _by_verb(request, [n for n in candidates if _integration(n) == integration])
        chosen.append(max(own, key=lambda n: _cos(whole, tool_vectors[n])))
    # a channel read from ("a digest of #support") needs the tool that reads it
    if (
        any(role == "read" for _, role in channels(request))
        and "slack.read_channel" not in chosen
        and not _TRIGGER_WORDS.search(request)
    ):
        chosen.append("slack.read_channel")
    for tool in list(chosen):
        need = _NEEDS.get(tool)
        if need and need not in chosen:
            chosen.insert(chosen.index(tool), need)
    return chosen


def _by_verb(clause: str, group: list[str]) -> list[str]:
    """Narrow a clause's candidates by its verb: labelling ("label them", "tag them") takes a label
    tool; in Slack, posting (post, send, alert…) or reading."""
    if re.search(r"\b(label|tag)\b", clause, re.IGNORECASE) and (
        labels := [n for n in group if "label" in n]
    ):
        return labels
    if not group or _integration(group[0]) != "slack":
        return group
    writes = _WRITE_VERBS.search(clause)
    kept = [n for n in group if (get_tool(n).access == "write") == bool(writes)]
    if writes:  # replying in a thread is a thread's business, posting everything else
        thread = bool(re.search(r"\b(thread|reply|replies)\b", clause, re.IGNORECASE))
        kept = [n for n in kept if (n == "slack.reply_in_thread") == thread]
    return kept or group


def _strip_schedule(text: str) -> str:
    return re.sub(
        r"\b(every|each)\s+(\d+\s+)?(weekday|day|morning|evening|night|hour|minute|week|month|monday|"
        r"tuesday|wednesday|thursday|friday|saturday|sunday)s?\b(\s+at\s+[\d:]+\s*(am|pm)?)?|\bat\s+\d{1,2}"
        r"([:.]\d{2})?\s*(am|pm)?\b|\b(daily|hourly|weekly|monthly)\b|\bin the (morning|afternoon|evening)\b"
        r"|\b(on )?(week)?days\b|\b(today|tonight)\b",
        " ",
        text,
        flags=re.IGNORECASE,
    )


def channels(text: str) -> list[tuple[str, str]]:
    """Slack channels named in `text` and whether each is read from or written to."""
    out = []
    for m in _CHANNEL.finditer(text):
        before = text[max(0, m.start() - 40) : m.start()].lower()
        word = (re.findall(r"[a-z']+", before) or [""])[-1]
        if word in ("to", "into"):
            role = "write"
        elif word in ("of", "from", "watch", "monitor", "read", "summarise", "summarize"):
            role = "read"
        else:  # "in #help": what happens there decides
            clause = _SPLIT.split(before)[-1]
            role = "write" if _WRITE_VERBS.search(clause) else "read"
        out.append(("#" + m.group(1).lower(), role))
    return out


# ---------------------------------------------------------------------- the conversation
@dataclass
class _Question:
    kind: str  # "source" | "channel" | "timezone" | "collection" | "repo"
    about: str = ""  # the data source type, or the tool
    options: list[str] = field(default_factory=list)
    asked: int = 0


class OfflineGuide:
    """The guided builder of one `BuilderSession` (it drafts through the session's own methods)."""

    def __init__(self, session: BuilderSession):
        self.session = session
        self.pending: list[_Question] = []
        self.asked: set[str] = set()
        self.template: str | None = None

    async def turn(self, text: str) -> None:
        s = self.session
        await asyncio.to_thread(warm_up)
        if s.draft is not None and _SAVE.search(text) and not s.headless:
            saved = await s.save("saved from the chat")
            return s._say(f"Saved **{saved.agent.name}** (version {saved.version.version}).")
        if s.draft is not None and _TEST.search(text) and not parse_schedule(text) and not s.headless:
            run = await s.test_run(ui=s._ui)
            answer = run.output.get("text") if isinstance(run.output, dict) else run.output
            return s._say(
                f"The test run {run.status}."
                + (f"\n\n{answer}" if answer else "")
                + (f"\n\n{run.error}" if run.error else "")
            )
        if s._work is not None:
            changed = await self._edit(text)
            if changed:
                return await self._finish(f"Done: {'; '.join(changed)}.")
            choice = await asyncio.to_thread(choose, text)
            if not (choice.template or choice.tools):
                return s._say(
                    'I did not find a change to make in that. I can change when it runs ("every '
                    'weekday at 9"), the Slack channel ("use #sales instead"), which connected source '
                    'or collection it uses (name it), its name ("call it sales-report"), or start over '
                    "with a new description."
                )
        else:
            choice = await asyncio.to_thread(choose, text)
        await self._start(text, choice)

    # ------------------------------------------------------------------ a new draft
    async def _start(self, request: str, choice: Choice) -> None:
        s = self.session
        refs = await s._refs()
        self.pending, self.asked = [], set()
        template = choice.template
        if template is not None:
            data = copy.deepcopy(template.data)
            data.setdefault("metadata", {}).setdefault("labels", {})["template"] = template.template.name
            self.template = template.template.name
            intro = (
                f"I started from the **{template.template.name}** template "
                f"({template.template.description[0].lower()}"
                f"{template.template.description[1:]}): {self._why(choice, template)}."
            )
        elif choice.tools:
            data = compose(request, choice.tools)
            self.template = None
            intro = (
                f"No template fits this, so I put together an agent that uses "
                f"{', '.join(f'`{t}`' for t in choice.tools)}."
            )
        else:
            names = ", ".join(
                f"**{t.template.name}** ({t.template.description})" for t, *_ in choice.ranked[:3]
            )
            return s._say(
                "I could not tell what the agent should use. Does it read mail, Slack, GitHub, a "
                f"database, an API, an uploaded CSV or your documents? The closest templates: {names}."
            )
        self._fill(data, request, refs, fresh=True)
        others = [
            r for r in choice.ranked[1:3] if r[2] and r[1] >= TEMPLATE_MIN_SCORE and r[0] is not template
        ]
        if others:
            intro += (
                " Also close: "
                + ", ".join(
                    f"**{t.template.name}** ({t.template.description[0].lower()}{t.template.description[1:]})"
                    for t, *_ in others[:1]
                )
                + " — say its name to use it instead."
            )
        draft = await s.set_draft(data)
        if not draft.valid:  # should not happen: the flow only writes what validation accepts
            log.warning("offline builder produced an invalid draft: %s", draft.problems)
            s._turn.problems = draft.problems
            return s._say("I could not build a valid agent from that; could you describe it in other words?")
        await self._finish(intro)

    def _why(self, choice: Choice, template: LibraryTemplate) -> str:
        uses = sorted({_LABEL[_integration(u)] for u in template.tools})
        if choice.tools:
            return (
                f"it uses {', '.join(uses)} as your request does (closeness "
                f"{template_score(choice, template):.2f})"
            )
        return f"its purpose is closest to your request (closeness {template_score(choice, template):.2f})"

    def _fill(self, data: dict[str, Any], request: str, refs: Any, *, fresh: bool) -> None:
        """Fill the draft's slots from the request and the team's data; queue questions for the rest."""
        spec = data["spec"]
        named = channels(request)
        writes = [c for c, role in named if role == "write"]
        reads = [c for c, role in named if role == "read"]
        for tool in spec.get("tools") or []:
            info = get_tool(tool["use"])
            if info is None:
                continue
            if info.needs_data_source:
                self._pick_source(tool, info.integration, request, refs)
            if info.uses_collection:
                self._pick_collection(tool, request, refs)
            if tool["use"] in ("slack.post_message", "slack.read_channel"):
                wanted = writes if tool["use"] == "slack.post_message" else reads
                if wanted:
                    tool.setdefault("with", {})["channel"] = wanted[0]
                elif (
                    tool["use"] == "slack.post_message"
                    and "channel" not in (tool.get("with") or {})
                    or tool["use"] == "slack.post_message"
                    and not named
                ):
                    self._ask(_Question("channel", tool["use"]))
        for trigger in spec.get("triggers") or []:
            event = trigger.get("event")
            if event and event.get("type") == "slack.message" and (reads or writes):
                event["filter"] = {"channel": (reads or writes)[0]}
            if event and event["source"] not in refs.data_sources:
                kind = {"slack": "slack", "github": "github", "gmail": "gmail"}.get(
                    event["type"].split(".")[0]
                )
                same = [n for n, t in refs.data_sources.items() if t == kind]
                if len(same) == 1:
                    event["source"] = same[0]
        inputs = spec.get("inputs") or {}
        if "repo" in inputs and (repo := _repo(request)):
            inputs["repo"]["default"] = repo
        if "question" in inputs and fresh:
            question = _strip_schedule(request).strip(" ,.") if not _is_starter(request) else ""
            if question:
                inputs["question"]["default"] = question
        self._triggers(data, request, fresh=fresh)
        if "repo" in inputs and inputs["repo"].get("default") is None and spec.get("triggers"):
            # triggered runs need a value: a marker that keeps the draft from ready until the person
            # names the repository (never a guess)
            inputs["repo"]["default"] = "owner/repo"
            self._ask(_Question("repo"))
            self.pending.sort(key=lambda q: q.kind != "repo")  # asked first: saving waits for it

    def _triggers(self, data: dict[str, Any], text: str, *, fresh: bool) -> list[str]:
        spec = data["spec"]
        triggers = [t for t in spec.get("triggers") or []]
        changed = []
        phrase = parse_schedule(text)
        zone = find_timezone(text)
        old = next((t["schedule"] for t in triggers if "schedule" in t), None)
        if phrase is not None:
            cron = phrase.cron(old["cron"] if old and not fresh else None)
            timezone = zone or (old["timezone"] if old and not fresh else self.session.timezone)
            triggers = [t for t in triggers if "schedule" not in t] + [
                {"schedule": {"cron": cron, "timezone": timezone}}
            ]
            changed.append(f"it runs {describe_cron(cron)} ({timezone})")
            if zone or self.session.timezone_known:  # the person's own zone needs no question
                self._answered("timezone")
            else:
                self._ask(_Question("timezone"))
        elif zone and old is not None:
            old["timezone"] = zone
            changed.append(f"its schedule is in {zone}")
            self._answered("timezone")
        elif _NO_SCHEDULE.search(text) and old is not None:
            triggers = [t for t in triggers if "schedule" not in t]
            changed.append("it runs only when you start it")
        if fresh and phrase is None and zone is None and old is not None and self.session.timezone_known:
            old["timezone"] = self.session.timezone  # a template's schedule, in the person's zone
        if re.search(r"\bwebhook\b", text, re.IGNORECASE) and not any("webhook" in t for t in triggers):
            triggers.append({"webhook": {}})
            changed.append("it runs when its webhook is called")
        if (
            fresh
            and phrase is None
            and not re.search(r"\b(when|whenever|each time|as soon as|every|each)\b", text, re.IGNORECASE)
        ):
            # a template's own schedule stays only when the request asks for something recurring
            kept = [t for t in triggers if "schedule" not in t]
            if kept != triggers and self.template is not None and not kept:
                triggers = kept
        if fresh and self.template is None:
            triggers += _event_trigger(text, self.session)
        spec["triggers"] = triggers
        if not triggers:
            spec.pop("triggers", None)
        return changed

    def _pick_source(self, tool: dict[str, Any], kind: str, text: str, refs: Any) -> None:
        same = sorted(n for n, t in refs.data_sources.items() if t == kind)
        named = [n for n in same if re.search(rf"\b{re.escape(n.lower())}\b", text.lower())]
        if named:
            tool["dataSource"] = named[0]
        elif len(same) == 1:
            tool["dataSource"] = same[0]
        elif len(same) > 1:
            if tool.get("dataSource") not in same:
                tool["dataSource"] = same[0]
            self._ask(_Question("source", kind, same))
        else:
            tool.setdefault("dataSource", _DEFAULT_SOURCE.get(kind, kind))

    def _pick_collection(self, tool: dict[str, Any], text: str, refs: Any) -> None:
        names = sorted(refs.collections)
        named = [n for n in names if re.search(rf"\b{re.escape(n.lower())}\b", text.lower())]
        if named:
            tool["collection"] = named[0]
        elif len(names) == 1:
            tool["collection"] = names[0]
        elif len(names) > 1 and tool.get("collection") not in names:
            tool["collection"] = names[0]
            self._ask(_Question("collection", "", names))

    def _ask(self, question: _Question) -> None:
        """Queue a question, unless it was asked already (or is queued)."""
        key = f"{question.kind}:{question.about}"
        if key not in self.asked and all(f"{q.kind}:{q.about}" != key for q in self.pending):
            self.pending.append(question)

    def _answered(self, kind: str, about: str | None = None) -> None:
        self.pending = [
            q for q in self.pending if not (q.kind == kind and (about is None or q.about == about))
        ]

    async def _finish(self, said: str) -> None:
        """Show what the draft does now, and ask the next open question (one per turn)."""
        s = self.session
        assert s.draft is not None
        lines = [said, "", summarize(s.draft.spec)]
        if s.draft.connections:
            lines += ["", "Before it can run: " + " ".join(c.instructions() for c in s.draft.connections)]
        if s.draft.placeholders:  # asked below; said here so a save attempt is no surprise
            lines += [
                "",
                "Not ready to save yet: " + "; ".join(p.message for p in s.draft.placeholders) + ".",
            ]
        question = self._next_question()
        lines += [
            "",
            question or 'Test-run it, or tell me what to change (for example "run it every weekday at 9").',
        ]
        s._say("\n".join(lines))

    def _next_question(self) -> str | None:
        s = self.session
        while self.pending:
            q = self.pending[0]
            q.asked += 1
            if q.asked > 2:  # asked twice and not answered: the draft keeps what it has
                self.pending.pop(0)
                continue
            self.asked.add(f"{q.kind}:{q.about}")
            if q.kind == "source":
                return f"Which {_LABEL.get(q.about, q.about)} source should it use: {', '.join(q.options)}?"
            if q.kind == "collection":
                return f"Which knowledge collection should it search: {', '.join(q.options)}?"
            if q.kind == "repo":
                return "Which GitHub repository should it work on (owner/name)?"
            if q.kind == "channel":
                current = next(
                    (
                        t.get("with", {}).get("channel")
                        for t in s._work["spec"].get("tools") or []
                        if t["use"] == q.about
                    ),
                    None,
                )
                return (
                    "Which Slack channel should it post to" + (f" (now {current})" if current else "") + "?"
                )
            if q.kind == "timezone":
                zone = next(
                    (
                        t["schedule"]["timezone"]
                        for t in s._work["spec"].get("triggers") or []
                        if "schedule" in t
                    ),
                    s.timezone,
                )
                return f"Is {zone} your time zone, or should the schedule use another one?"
        return None

    # ------------------------------------------------------------------ edits
    async def _edit(self, text: str) -> list[str]:
        """Apply the changes `text` asks for to the draft; what changed, in words (empty: none)."""
        s = self.session
        data = copy.deepcopy(s._work)
        spec = data.setdefault("spec", {})
        tools = spec.setdefault("tools", [])
        refs = await s._refs()
        changed: list[str] = []
        if (
            self.pending
            and self.pending[0].kind == "timezone"
            and _YES.search(text)
            and not find_timezone(text)
        ):
            self._answered("timezone")
            changed.append("the schedule keeps its time zone")
        changed += self._triggers(data, text, fresh=False)
        # channels
        named = channels(text)
        if named:
            posting = [t for t in tools if t["use"] in ("slack.post_message",)]
            reading = [t for t in tools if t["use"] == "slack.read_channel"]
            for channel, role in named:
                targets = (reading if role == "read" and reading else posting) or reading
                if not targets:
                    new = {"use": "slack.post_message", "access": "write", "with": {"channel": channel}}
                    self._pick_source(new, "slack", text, refs)
                    tools.append(new)
                    changed.append(f"it posts to {channel}")
                    continue
                for tool in targets:
                    tool.setdefault("with", {})["channel"] = channel
                changed.append(f"it {'reads' if targets is reading else 'posts to'} {channel}")
                self._answered("channel")
            for trigger in spec.get("triggers") or []:
                if (trigger.get("event") or {}).get("type") == "slack.message":
                    trigger["event"]["filter"] = {"channel": named[0][0]}
        # data sources and collections named by their name
        for name, kind in refs.data_sources.items():
            if re.search(rf"\b{re.escape(name.lower())}\b", text.lower()):
                for tool in tools:
                    info = get_tool(tool.get("use", ""))
                    if info and info.integration == kind and tool.get("dataSource") != name:
                        tool["dataSource"] = name
                        changed.append(
                            f"it uses **{name}**"
                        ) if f"it uses **{name}**" not in changed else None
                self._answered("source", kind)
        for name in refs.collections:
            if re.search(rf"\b{re.escape(name.lower())}\b", text.lower()):
                for tool in tools:
                    if tool.get("use") == "knowledge.search" and tool.get("collection") != name:
                        tool["collection"] = name
                        changed.append(f"it searches the collection **{name}**")
                self._answered("collection")
        # a repository
        inputs = spec.get("inputs") or {}
        if (repo := _repo(text)) and "repo" in inputs and inputs["repo"].get("default") != repo:
            inputs["repo"]["default"] = repo
            changed.append(f"it works on {repo}")
            self._answered("repo")
        # a new name
        if m := _RENAME.search(text):
            name = _slug(m.group(1))
            if name and name != data.get("metadata", {}).get("name"):
                data.setdefault("metadata", {})["name"] = name
                changed.append(f"it is called {name}")
        # tools of an integration the draft does not use yet ("also post it to Slack")
        present = {_integration(t.get("use", "")) for t in tools}
        new_kinds = cues(text) - present - {"python", "csv", "knowledge"}
        if new_kinds and not named:
            for use in plan_tools(text, new_kinds):
                info = get_tool(use)
                tool = {"use": use, **({"access": info.access} if info and info.needs_data_source else {})}
                if info and info.needs_data_source:
                    self._pick_source(tool, info.integration, text, refs)
                tools.append(tool)
                changed.append(f"it also uses `{use}`")
        if not changed:
            return []
        draft = await s.set_draft(data)
        if not draft.valid:
            return [
                f"that change is not possible ({'; '.join(str(p) for p in draft.problems)}), so the draft "
                "stays as it was"
            ]
        return [c for c in changed if c]


def template_score(choice: Choice, template: LibraryTemplate) -> float:
    return next(r[1] for r in choice.ranked if r[0] is template)


def compose(request: str, tools: list[str]) -> dict[str, Any]:
    """A spec built from the planned tools, with instructions the platform writes (no model)."""
    refs = []
    steps = []
    for number, use in enumerate(tools, 1):
        info = get_tool(use)
        ref: dict[str, Any] = {"use": use}
        if info and info.needs_data_source:
            ref["access"] = info.access
        refs.append(ref)
        steps.append(f"{number}. `{use}`: {TOOL_PHRASES[use].split(',')[0]}.")
    inputs: dict[str, Any] = {}
    if any(_integration(u) == "github" for u in tools):
        repo = _repo(request)
        inputs["repo"] = {
            "type": "string",
            "description": "the repository, owner/name",
            **({"default": repo} if repo else {}),
        }
    for name in _asked_inputs(request):
        inputs.setdefault(
            name,
            {"type": "number" if name in _NUMERIC_INPUTS else "string", "description": f"the {name} to use"},
        )
    task = _strip_schedule(request).strip(" ,.") or request
    lines = [f"Your task: {task}.", ""]
    if inputs:
        lines += ["Inputs: " + ", ".join(f"{n} = {{{{{n}}}}}" for n in inputs) + ".", ""]
    lines += [
        "Use the tools in this order:",
        *steps,
        "",
        "Do only what the task asks; change nothing else. Finish with a short report of what you did.",
    ]
    data: dict[str, Any] = {
        "apiVersion": "coherex/v1",
        "kind": "Agent",
        "metadata": {"name": _slug(" ".join(_name_words(task))) or "my-agent", "description": request[:200]},
        "spec": {
            "instructions": "\n".join(lines) + "\n",
            "tools": refs,
            "limits": {"maxSteps": 20, "timeoutSeconds": 300, "maxCostUsd": 0.5},
        },
    }
    if inputs:
        data["spec"]["inputs"] = inputs
    return data


def _event_trigger(text: str, session: BuilderSession) -> list[dict[str, Any]]:
    """An event trigger when the request says "when …" about Slack, GitHub or mail."""
    low = text.lower()
    if not re.search(r"\b(when|whenever|each time|every time|as soon as)\b", low):
        return []
    if re.search(r"\bmention", low) and "slack" in cues(text):
        kind, etype = "slack", "slack.app_mention"
    elif "slack" in cues(text):
        kind, etype = "slack", "slack.message"
    elif "github" in cues(text) and re.search(r"\b(opened|new issue|files? an issue|is created)\b", low):
        kind, etype = "github", "github.issue_opened"
    elif "gmail" in cues(text) and re.search(r"\b(arrives?|receive[sd]?|comes? in)\b", low):
        kind, etype = "gmail", "gmail.message_received"
    else:
        return []
    event: dict[str, Any] = {"source": _DEFAULT_SOURCE[kind], "type": etype}
    named = channels(text)
    if etype == "slack.message" and named:
        event["filter"] = {"channel": named[0][0]}
    return [{"event": event}]


def _repo(text: str) -> str | None:
    for m in _REPO.finditer(text):
        if (
            not find_timezone(m.group(1))
            and not m.group(1).lower().startswith(("and/", "or/"))
            and "." not in m.group(1).split("/")[0][-1:]
        ):
            return m.group(1)
    return None


def _asked_inputs(text: str) -> list[str]:
    m = _INPUT_LIST.search(text)
    if not m:
        return []
    words = re.split(r"\s*,\s*|\s+and\s+|\s+or\s+", m.group(1).lower())
    out = []
    for phrase in words:
        word = (phrase.split() or [""])[-1]
        word = _INPUT_ALIASES.get(word, word)
        if re.fullmatch(r"[a-z][a-z0-9_]{0,39}", word) and word not in out:
            out.append(word)
    return out


_NAME_STOP = {
    "a",
    "an",
    "the",
    "my",
    "our",
    "of",
    "in",
    "on",
    "to",
    "for",
    "and",
    "it",
    "them",
    "i",
    "we",
    "me",
    "that",
    "this",
    "every",
    "each",
    "with",
    "from",
    "at",
    "by",
    "is",
    "are",
    "what",
    "when",
    "someone",
    "tell",
    "please",
    "new",
    "all",
    "any",
    "which",
    "who",
    "how",
    "do",
    "does",
    "be",
    "s",
    "into",
}


def _name_words(text: str) -> list[str]:
    words = [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _NAME_STOP and not w.isdigit()]
    return words[:3]


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:50].strip("-")
    return slug if re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", slug or "") else ""


def _is_starter(text: str) -> bool:
    """The chat's starters send a template's description: that is no question to answer."""
    return any(text.strip().rstrip(".") == t.template.description.rstrip(".") for t in _library())


__all__ = ["CUES", "TOOL_PHRASES", "Choice", "OfflineGuide", "choose", "compose", "plan_tools", "warm_up"]
