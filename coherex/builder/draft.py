"""The draft spec of a builder conversation and what it still needs.

A draft is validated against the team's data. A reference to a data source of a kind the team has
not connected at all (or to a knowledge collection when the team has none) is not a mistake the
model can repair: it becomes a `Connection` the person is asked to make. Every other problem goes
back to the model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

from coherex.spec import AgentSpec, Problem, ValidationReport, placeholders, to_yaml, validate
from coherex.spec.catalogue import event_types, get_tool


@dataclass(frozen=True)
class Connection:
    """Something the team must connect before the agent can be saved."""

    kind: Literal["data_source", "collection"]
    name: str
    type: str  # the data source type (slack, gmail, ...) or "knowledge"

    def instructions(self, team: str | None = None, *, cli: bool = False) -> str:
        """What to do, in Markdown; with a sign-in link when the type connects through OAuth here,
        else the connect form's link (`team`: the slug the link connects it in). `cli`: also the
        command, for someone at a terminal (`coherex pull`); a person in the chat gets links only."""
        if self.kind == "collection":
            return (
                f"Create the knowledge collection **{self.name}**: drop documents into this chat, or run "
                f"`coherex kb add {self.name} FILE`."
            )
        from coherex.integrations.oauth import connect_url
        from coherex.tools.registry import source_type

        what = f"Connect a **{self.type}** data source named **{self.name}**: "
        command = f" (or `coherex sources add {self.type} {self.name}`)" if cli else ""
        form = f"[open the connect form]({connect_form_url(self.type, self.name, team)})"
        oauth_only = source_type(self.type).connect == "oauth"
        if link := connect_url(self.type, self.name, team):
            # a type that also takes a pasted token (a Slack bot token) keeps the form beside the sign-in
            return (
                what
                + f"[sign in to {self.type}]({link})"
                + ("" if oauth_only else f" or {form}")
                + f"{command}."
            )
        if oauth_only:  # sign-in only, and this install has no OAuth client
            return what + (
                f"this install has no {self.type} sign-in set up; an admin can paste tokens with "
                f"`coherex sources add {self.type} {self.name}`, or configure the provider's OAuth client."
            )
        # a link a person can follow, not a command: the form checks the credentials with the service
        return what + f"{form}{command} — the credentials are checked with the service before they are saved."


def connect_form_url(type_name: str, name: str, team: str | None = None) -> str:
    """The platform's connect form, filled in (COHEREX_PUBLIC_URL in front when set)."""
    from urllib.parse import urlencode

    from coherex.settings import get_settings

    query = urlencode({"type": type_name, "name": name, **({"team": team} if team else {})})
    return f"{(get_settings().public_url or '').rstrip('/')}/connect?{query}"


@dataclass
class TeamRefs:
    data_sources: dict[str, str] = field(default_factory=dict)  # name → type
    collections: set[str] = field(default_factory=set)


@dataclass
class Draft:
    data: dict[str, Any]
    report: ValidationReport
    connections: list[Connection]

    @classmethod
    def check(cls, data: dict[str, Any], refs: TeamRefs) -> Draft:
        connections = missing_connections(data, refs)
        sources = dict(refs.data_sources) | {c.name: c.type for c in connections if c.kind == "data_source"}
        collections = refs.collections | {c.name for c in connections if c.kind == "collection"}
        report = validate(data, data_sources=sources, collections=collections)
        return cls(copy.deepcopy(data), report, connections)

    @property
    def valid(self) -> bool:
        return self.report.ok

    @property
    def ready(self) -> bool:
        """Valid, nothing left to connect and no placeholder value: it can be saved and run."""
        return self.valid and not self.connections and not self.placeholders

    @property
    def placeholders(self) -> list[Problem]:
        """Values that stand for facts nobody gave yet (`owner/repo`): the person must give them."""
        return placeholders(self.spec) if self.valid else []

    def not_ready(self, team: str | None = None) -> str:
        """Why the draft cannot be saved yet, in Markdown (empty when it is ready)."""
        lines = [f"- {c.instructions(team)}" for c in self.connections]
        lines += [f"- {p.path}: {p.message} ({p.hint})" for p in self.placeholders]
        return "\n".join(lines)

    @property
    def spec(self) -> AgentSpec:
        assert self.report.spec is not None
        return self.report.spec

    @property
    def name(self) -> str:
        return str((self.data.get("metadata") or {}).get("name", ""))

    @property
    def yaml(self) -> str:
        return to_yaml(self.spec)

    @property
    def problems(self) -> list[Problem]:
        return self.report.errors


def bind_sources(data: dict[str, Any], refs: TeamRefs) -> tuple[dict[str, Any], list[str]]:
    """`data` with the data sources and collections it names bound to the team's: a name the team
    does not have becomes the team's source of the needed type (the first by name when several,
    said in the notes), or its collection; names the team has stay. For templates, whose names
    (`github`, `handbook`) are examples. Returns the new data and what was changed."""
    data = copy.deepcopy(data)
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    renamed: dict[str, str] = {}
    notes: list[str] = []

    def bind(name: Any, needed: str | None) -> Any:
        if not isinstance(name, str) or not needed or name in refs.data_sources:
            return name
        if name not in renamed:
            same = sorted(n for n, t in refs.data_sources.items() if t == needed)
            if not same:
                return name  # nothing of that type: the person connects it (a Connection)
            renamed[name] = same[0]
            notes.append(
                f"{name!r} is the team's {needed} source {same[0]!r}"
                + (
                    f" (the team has several: {', '.join(same)}; ask the person which one if it is not "
                    "clear, and change dataSource)"
                    if same[1:]
                    else ""
                )
            )
        return renamed[name]

    for tool in spec.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        info = get_tool(str(tool.get("use", "")))
        if info is not None and info.needs_data_source and "dataSource" in tool:
            tool["dataSource"] = bind(tool["dataSource"], info.integration)
        if info is not None and info.uses_collection and isinstance(tool.get("collection"), str):
            name, existing = tool["collection"], sorted(refs.collections)
            if existing and name not in refs.collections:
                tool["collection"] = existing[0]
                note = f"collection {name!r} is the team's {existing[0]!r}" + (
                    f" (it has several: {', '.join(existing)})" if existing[1:] else ""
                )
                notes += [note] if note not in notes else []
    for trigger in spec.get("triggers") or []:
        event = trigger.get("event") if isinstance(trigger, dict) else None
        if isinstance(event, dict):
            event["source"] = bind(event.get("source"), event_types().get(str(event.get("type"))))
    return data, notes


def fill_from_sources(data: dict[str, Any], configs: dict[str, dict[str, Any]]) -> list[str]:
    """Give inputs without a real value the setting of the same name of a source the spec uses (a
    GitHub source's `repo` → the input `repo`); `configs`: source name → its settings. In place;
    returns what was filled."""
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    inputs = spec.get("inputs") if isinstance(spec.get("inputs"), dict) else {}
    used = [t.get("dataSource") for t in spec.get("tools") or [] if isinstance(t, dict)]
    notes = []
    for source in dict.fromkeys(u for u in used if isinstance(u, str)):
        for key, value in (configs.get(source) or {}).items():
            decl = inputs.get(key)
            if isinstance(decl, dict) and value not in (None, "") and decl.get("default") != value:
                decl["default"] = value
                notes.append(f"input {key} is {value!r}, the {key} of {source!r}")
    return notes


def missing_connections(data: dict[str, Any], refs: TeamRefs) -> list[Connection]:
    spec = data.get("spec") if isinstance(data.get("spec"), dict) else {}
    found: dict[str, Connection] = {}
    kinds = set(refs.data_sources.values())
    for tool in spec.get("tools") or []:
        if not isinstance(tool, dict):
            continue
        info = get_tool(str(tool.get("use", "")))
        source, collection = tool.get("dataSource"), tool.get("collection")
        if (
            info
            and info.needs_data_source
            and isinstance(source, str)
            and source not in refs.data_sources
            and info.integration not in kinds
        ):
            found[source] = Connection("data_source", source, info.integration)
        if info and info.uses_collection and isinstance(collection, str) and not refs.collections:
            found[collection] = Connection("collection", collection, "knowledge")
    for trigger in spec.get("triggers") or []:
        event = trigger.get("event") if isinstance(trigger, dict) else None
        if isinstance(event, dict) and isinstance(event.get("source"), str):
            needed = event_types().get(str(event.get("type")))
            if needed and event["source"] not in refs.data_sources and needed not in kinds:
                found.setdefault(event["source"], Connection("data_source", event["source"], needed))
    return list(found.values())


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, `null` deletes, anything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
