"""Validation of a spec: every problem at once, each with its path, what was wrong and what is valid.

Two passes: pydantic checks structure and single fields (collecting all errors); then semantic
checks run on every part that is well formed on its own (tools, inputs, triggers), so one broken
tool does not hide a problem in another.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from coherex.errors import UserError
from coherex.spec import catalogue
from coherex.spec.documents import Format, SpecFormatError, comment_cuts, decode, guess_format, parse
from coherex.spec.models import (
    API_VERSION,
    KIND,
    NAME_PATTERN,
    AgentSpec,
    ApprovalRules,
    InputSpec,
    ToolRef,
    Trigger,
)

Severity = Literal["error", "warning"]

#: `{{ name }}` in instructions is replaced by the input `name` (see `render_instructions`)
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    hint: str | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{text} ({self.hint})" if self.hint else text


@dataclass
class ValidationReport:
    problems: list[Problem] = field(default_factory=list)
    spec: AgentSpec | None = None
    #: the callee version of each sub-agent tool, when validated against a team (pinned at save)
    sub_agents: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.ok, "problems": [asdict(p) for p in self.problems]}

    def raise_for_errors(self) -> AgentSpec:
        if not self.ok or self.spec is None:
            raise SpecInvalid(self)
        return self.spec


class SpecInvalid(UserError):
    code = "invalid_spec"

    def __init__(self, report: ValidationReport):
        lines = "\n".join(f"  {p}" for p in report.errors)
        super().__init__(f"the spec is not valid ({len(report.errors)} problem(s)):\n{lines}")
        self.report = report


def validate(
    source: str | bytes | Mapping[str, Any],
    *,
    fmt: Format | None = None,
    filename: str | None = None,
    data_sources: Mapping[str, str] | None = None,
    collections: set[str] | None = None,
    discovered: Mapping[str, list[catalogue.ToolInfo] | None] | None = None,
) -> ValidationReport:
    """Check a spec document (text, bytes or parsed data).

    `data_sources` (name -> type) and `collections` are the team's; when given, references to
    ones that do not exist, or of the wrong type, are problems too. `discovered` (source name ->
    the tools it offered at its last check, None if never checked) lets a `tools:` allow-list be
    checked against what the source offers.
    """
    if isinstance(source, Mapping):
        raw: Any = dict(source)
    else:
        try:
            raw = parse(source, fmt, filename)
        except SpecFormatError as exc:
            return ValidationReport([Problem(exc.location, exc.problem, exc.hint)])
    report = ValidationReport()
    try:
        report.spec = AgentSpec.model_validate(raw)
    except ValidationError as exc:
        report.problems.extend(_from_pydantic(exc))
    _Checker(report, raw, data_sources, collections, discovered).run()
    if not isinstance(source, Mapping):
        report.problems.extend(cut_by_comment(decode(source), fmt, filename))
    return report


def cut_by_comment(text: str, fmt: Format | None = None, filename: str | None = None) -> list[Problem]:
    """Warnings for unquoted strings that YAML cut at a `#word` (`description: Post to #sales`)."""
    if (fmt or guess_format(filename, text)) != "yaml":
        return []
    return [
        Problem(
            _path(where),
            f"line {line}: the text from '#' on is read as a YAML comment, so the value is only "
            f"{_short(value)}",
            "put the whole value in quotes, e.g. description: 'Post to #sales daily'",
            "warning",
        )
        for line, where, value in comment_cuts(text)
    ]


#: values that stand for a fact nobody gave yet: `owner/repo`, `you@example.com`, `your-channel`,
#: `TODO`, `<repository>`; a run would use them as if they were real
_PLACEHOLDER = re.compile(
    r"^(owner|org|organi[sz]ation|user|username|your[-_]?\w*)/(repo|repository|name|project|your[-_]?\w*)$"
    r"|\bexample\.(com|org|net)\b|\byour[-_][a-z]|\b(TODO|FIXME|CHANGEME|changeme)\b|<[^<>\n]{1,40}>",
    re.IGNORECASE,
)


def placeholders(spec: AgentSpec) -> list[Problem]:
    """Inputs' defaults and tools' fixed arguments that are placeholders, not facts: such a spec is
    not ready to run (the builder asks the person for the real value)."""
    found = []
    for name, decl in (spec.spec.inputs or {}).items():
        for value in decl.default if isinstance(decl.default, list) else [decl.default]:
            if isinstance(value, str) and _PLACEHOLDER.search(value):
                what = decl.description or f"the {name}"
                found.append(
                    Problem(
                        _child("spec.inputs", name) + ".default",
                        f"{value!r} is a placeholder, not a real value: a run without {name} would use it",
                        f"ask the person for {what} and put it here",
                        "warning",
                    )
                )
    for i, tool in enumerate(spec.spec.tools or []):
        for key, value in (tool.with_ or {}).items():
            if isinstance(value, str) and _PLACEHOLDER.search(value):
                found.append(
                    Problem(
                        _child(f"spec.tools[{i}].with", key),
                        f"{value!r} is a placeholder, not a real value",
                        f"ask the person for the real {key} and put it here",
                        "warning",
                    )
                )
    return found


def load_spec(source: str | bytes | Mapping[str, Any], **kwargs: Any) -> AgentSpec:
    """The spec, or SpecInvalid listing every problem."""
    return validate(source, **kwargs).raise_for_errors()


def render_instructions(spec: AgentSpec, inputs: Mapping[str, Any]) -> str:
    """Instructions with `{{name}}` replaced by the input values (defaults where not given)."""
    declared = spec.spec.inputs or {}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in inputs:
            return str(inputs[name])
        if name in declared and declared[name].default is not None:
            return str(declared[name].default)
        return match.group(0)

    return PLACEHOLDER.sub(value, spec.spec.instructions)


# --- structural problems, from pydantic


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out = _child(out, part)
    return out


def _child(path: str, part: int | str) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", part):
        return f"{path}.{part}" if path else part
    return f"{path}[{part!r}]"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class at `loc` of a spec, if that place holds one."""
    current: Any = AgentSpec
    for part in loc:
        current = _unwrap(current)
        if _is_model(current) and isinstance(part, str):
            info = _field(current, part)
            if info is None:
                return None
            current = info.annotation
        else:  # a list index or a mapping key: the item type
            args = typing.get_args(current)
            current = args[-1] if args else Any
    current = _unwrap(current)
    return current if _is_model(current) else None


def _field(model: type[BaseModel], name: str) -> FieldInfo | None:
    return next((f for n, f in model.model_fields.items() if (f.alias or n) == name), None)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unwrap(annotation: Any) -> Any:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        return rest[0] if len(rest) == 1 else annotation
    return annotation


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(value: Any) -> str:
    kinds = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "nothing (null)",
    }
    kind = kinds.get(type(value), type(value).__name__)
    return kind if isinstance(value, (dict, list, type(None))) else f"{kind} {_short(value)}"


def _from_pydantic(exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc, kind, value = tuple(error["loc"]), error["type"], error.get("input")
        if loc and loc[-1] == "[key]":  # a mapping key, e.g. an input name
            problems.append(
                Problem(
                    _path(loc[:-1]),
                    f"{_short(value)} is not a valid name here",
                    "letters, digits and '_', starting with a letter or '_'; instructions use it as {{name}}",
                )
            )
            continue
        path = _path(loc)
        holder = _model_at(loc[:-1]) if loc else None
        info = _field(holder, loc[-1]) if holder and isinstance(loc[-1], str) else None
        hint = info.description if info is not None else None
        if kind == "missing":
            message = "required field is missing"
        elif kind == "extra_forbidden":
            valid = [f.alias or n for n, f in holder.model_fields.items()] if holder else []
            close = catalogue.closest(str(loc[-1]), valid, 1)
            message = f"unknown field {str(loc[-1])!r}" + (f"; did you mean {close[0]!r}?" if close else "")
            hint = f"valid fields here: {', '.join(valid)}" if valid else None
        elif loc == ("apiVersion",) or loc == ("kind",):
            expected = API_VERSION if loc == ("apiVersion",) else KIND
            message = f"must be {expected!r}, found {_describe(value)}"
            hint = f"this version of Coherex reads {KIND} specs of apiVersion {API_VERSION}"
        elif kind == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == NAME_PATTERN:
            message = f"{_short(value)} is not a valid name"
            hint = (
                "use lowercase letters, digits and '-', starting and ending with a letter or digit, at "
                "most 63"
            )
        elif kind in ("model_type", "dict_type"):
            message = f"should be a mapping, found {_describe(value)}"
        elif kind.endswith("_type") or kind in ("literal_error", "enum"):
            message = f"{error['msg'].removeprefix('Input ')}, found {_describe(value)}"
        elif error["msg"].startswith("Input should"):
            message = f"{error['msg'].removeprefix('Input ')}, found {_short(value)}"
        else:  # our own messages (cron, timezone, package) and value errors
            message = error["msg"].removeprefix("Value error, ")
        problems.append(Problem(path, message, hint))
    return problems


# --- semantic problems


class _Checker:
    def __init__(
        self,
        report: ValidationReport,
        raw: Any,
        data_sources: Mapping[str, str] | None,
        collections: set[str] | None,
        discovered: Mapping[str, list[catalogue.ToolInfo] | None] | None = None,
    ):
        self.report = report
        self.data_sources = data_sources
        self.collections = collections
        self.discovered = discovered
        body = raw.get("spec") if isinstance(raw, dict) else None
        self.body: dict[str, Any] = body if isinstance(body, dict) else {}

    def add(self, path: str, message: str, hint: str | None = None, severity: Severity = "error") -> None:
        self.report.problems.append(Problem(path, message, hint, severity))

    def _parts(self, key: str, model: type[BaseModel]) -> list[tuple[str, Any, Any]]:
        """The well-formed entries of a list or mapping under `spec`: (path, index or key, model)."""
        value = self.body.get(key)
        if isinstance(value, list):
            items: Iterable[tuple[Any, Any]] = enumerate(value)
        elif isinstance(value, dict):
            items = ((k, v) for k, v in value.items() if isinstance(k, str))
        else:
            return []
        parts = []
        for index, item in items:
            try:
                parts.append((_child(f"spec.{key}", index), index, model.model_validate(item)))
            except ValidationError:
                pass  # already reported by the structural pass
        return parts

    def run(self) -> None:
        inputs: dict[str, InputSpec] = {}
        for path, name, spec in self._parts("inputs", InputSpec):
            inputs[name] = spec
            self.check_input(path, spec)
        instructions = self.body.get("instructions")
        if isinstance(instructions, str):
            for name in dict.fromkeys(PLACEHOLDER.findall(instructions)):
                if name not in inputs:
                    self.add(
                        "spec.instructions",
                        f"refers to input {{{{{name}}}}} which is not declared",
                        f"declare it under spec.inputs, e.g. {name}: {{type: string}}",
                    )
        tools = self._parts("tools", ToolRef)
        for path, _, tool in tools:
            self.check_tool(path, tool)
        seen: dict[str, str] = {}
        discovering = catalogue.discovering()
        for path, _, tool in tools:
            # one discovering entry per source (it stands for all the source's tools)
            key = (
                f"{tool.use}:{tool.dataSource}"
                if tool.use in discovering and not tool.name
                else tool.tool_name
            )
            if key in seen:
                self.add(
                    path,
                    f"duplicate tool {tool.name or tool.use!r}: already listed at {seen[tool.tool_name]}",
                    "remove one, or give one a distinct `name:`",
                )
            else:
                seen[key] = path
        for path, _, trigger in self._parts("triggers", Trigger):
            self.check_trigger(path, trigger, inputs)
        if self.report.spec is not None:
            self.report.problems.extend(placeholders(self.report.spec))

    def check_input(self, path: str, spec: InputSpec) -> None:
        if spec.default is not None and not _is_type(spec.default, spec.type):
            self.add(
                f"{path}.default",
                f"default {_short(spec.default)} is not of type {spec.type}",
                f"give a default of type {spec.type}, or change type",
            )
        for i, item in enumerate(spec.enum or []):
            if not _is_type(item, spec.type):
                self.add(f"{path}.enum[{i}]", f"{_short(item)} is not of type {spec.type}")
        if spec.enum and spec.default is not None and spec.default not in spec.enum:
            self.add(
                f"{path}.default",
                f"default {_short(spec.default)} is not one of enum",
                f"valid: {', '.join(map(repr, spec.enum))}",
            )

    def check_tool(self, path: str, tool: ToolRef) -> None:
        if tool.use == "agent" and not tool.agent:
            self.add(
                f"{path}.agent",
                "use: agent needs agent: the name of the agent it calls",
                "add agent: <name of an agent of the team>",
            )
        elif tool.use != "agent" and (tool.agent is not None or tool.version is not None):
            self.add(
                f"{path}.agent" if tool.agent is not None else f"{path}.version",
                f"{tool.use} does not call an agent",
                "agent and version apply to use: agent; remove them",
            )
        info = catalogue.get_tool(tool.use)
        source_type = catalogue.discovering().get(tool.use)
        if info is None and source_type is not None:
            self.check_discovered(path, tool, source_type)
            return
        if info is None:
            names = [t.name for t in catalogue.tools()] + sorted(catalogue.discovering())
            close = catalogue.closest(tool.use, names)
            hint = f"did you mean {', '.join(close)}?" if close else f"known tools: {', '.join(names)}"
            self.add(f"{path}.use", f"unknown tool {tool.use!r}", hint)
            return
        if tool.tools is not None:
            takers = ", ".join(f"use: {n}" for n in sorted(catalogue.discovering()))
            self.add(
                f"{path}.tools",
                f"{info.name} is one tool; an allow-list applies to tools discovered from a data source",
                "remove tools" + (f" (an allow-list goes with {takers})" if takers else ""),
            )
        if info.needs_data_source:
            if tool.dataSource is None:
                self.add(
                    f"{path}.dataSource",
                    f"{info.name} needs a data source (a {info.integration} connection)",
                    self._existing_hint(info.integration)
                    or f"add dataSource: <name of a {info.integration} data source>",
                )
            else:
                self.check_data_source(f"{path}.dataSource", tool.dataSource, info.integration, info.name)
        elif tool.dataSource is not None:
            self.add(f"{path}.dataSource", f"{info.name} does not use a data source", "remove dataSource")
        if info.uses_collection and tool.collection is None:
            existing = ", ".join(sorted(self.collections)) if self.collections else ""
            self.add(
                f"{path}.collection",
                f"{info.name} needs a collection: the knowledge collection it searches",
                f"existing collections: {existing}"
                if existing
                else "add collection: <name>; documents go in with `coherex kb add NAME FILE` or by dropping "
                "them into the chat",
            )
        if tool.collection is not None:
            if not info.uses_collection:
                self.add(
                    f"{path}.collection",
                    f"{info.name} does not read a knowledge collection",
                    "collection applies to knowledge.search",
                )
            elif self.collections is not None and tool.collection not in self.collections:
                existing = ", ".join(sorted(self.collections)) or "none yet"
                self.add(
                    f"{path}.collection",
                    f"no knowledge collection named {tool.collection!r}",
                    f"existing collections: {existing}",
                )
        if info.needs_data_source and info.access == "write" and tool.access != "write":
            found = "access: read" if tool.access == "read" else "no access"
            self.add(
                f"{path}.access",
                f"{info.name} changes data in {info.integration} but declares {found}",
                "declare access: write, or use a read tool",
            )
        elif tool.access == "write" and info.access == "read":
            self.add(
                f"{path}.access",
                f"{info.name} only reads; access: write grants more than it needs",
                "declare access: read",
                "warning",
            )
        elif tool.access is not None and not info.needs_data_source:
            self.add(
                f"{path}.access",
                f"{info.name} uses no data source; access has no effect",
                "remove access",
                "warning",
            )
        properties = info.parameters.get("properties", {})
        # a sub-agent's arguments are its callee's inputs: checked when saved, against the callee
        for key, value in (tool.with_ or {}).items() if info.name != "agent" else ():
            if key not in properties:
                close = catalogue.closest(key, list(properties), 1)
                self.add(
                    _child(f"{path}.with", key),
                    f"{info.name} has no argument {key!r}"
                    + (f"; did you mean {close[0]!r}?" if close else ""),
                    f"arguments: {', '.join(properties) or 'none'}",
                )
            elif "type" in properties[key] and not _is_type(value, properties[key]["type"]):
                self.add(
                    _child(f"{path}.with", key),
                    f"should be of type {properties[key]['type']}, found {_describe(value)}",
                )

        if not isinstance(tool.approval, ApprovalRules):
            return
        for rule in ("deny", "when", "allow"):
            mappings = tool.approval.rules(rule)
            for i, mapping in enumerate(mappings):
                where = f"{path}.approval.{rule}" + (
                    f"[{i}]" if isinstance(getattr(tool.approval, rule), list) else ""
                )
                if not mapping:
                    self.add(
                        where,
                        "an empty rule matches every call",
                        'name at least one argument, e.g. {channel: "#general"}',
                    )
                for key in mapping:
                    if key not in properties:
                        close = catalogue.closest(key, list(properties), 1)
                        self.add(
                            _child(where, key),
                            f"{info.name} has no argument {key!r}"
                            + (f"; did you mean {close[0]!r}?" if close else ""),
                            f"arguments: {', '.join(properties) or 'none'}",
                        )

    def check_discovered(self, path: str, tool: ToolRef, source_type: str) -> None:
        """`use: mcp` (a provider that discovers its tools) + dataSource + an optional allow-list."""
        if tool.dataSource is None:
            self.add(
                f"{path}.dataSource",
                f"{tool.use} tools come from a data source (a {source_type} connection)",
                self._existing_hint(source_type) or f"add dataSource: <name of a {source_type} data source>",
            )
            return
        self.check_data_source(f"{path}.dataSource", tool.dataSource, source_type, tool.use)
        for key in ("collection", "with_"):
            if getattr(tool, key) is not None:
                name = key.rstrip("_")
                self.add(
                    f"{path}.{name}", f"{name} applies to one tool, not to a source's tools", f"remove {name}"
                )
        if self.data_sources is not None and self.data_sources.get(tool.dataSource) != source_type:
            return  # reported above
        if self.discovered is None:
            if tool.tools:
                self.add(
                    f"{path}.tools",
                    f"the tool names are checked against {tool.dataSource!r} only when the team is known",
                    "saving the agent (coherex apply, the API) checks them",
                    "warning",
                )
            return
        offered = self.discovered.get(tool.dataSource)
        if offered is None:
            self.add(
                f"{path}.tools",
                f"the tools of {tool.dataSource!r} have not been read yet, so they are not checked",
                f"run `coherex sources check {tool.dataSource}`",
                "warning",
            )
            return
        by_name = {t.name: t for t in offered}
        for i, name in enumerate(tool.tools or []):
            if name not in by_name:
                close = catalogue.closest(name, list(by_name))
                self.add(
                    f"{path}.tools[{i}]",
                    f"{tool.dataSource!r} offers no tool {name!r}",
                    f"did you mean {', '.join(close)}?"
                    if close
                    else f"it offers: {', '.join(sorted(by_name)) or 'no tools'}",
                )
            elif by_name[name].access == "write" and tool.access != "write":
                found = "access: read" if tool.access == "read" else "no access"
                self.add(
                    f"{path}.access",
                    f"{name} of {tool.dataSource!r} changes data but the entry declares {found}",
                    "declare access: write, or leave the tool out of tools",
                )

    def check_data_source(self, path: str, name: str, needed_type: str, user: str) -> None:
        if self.data_sources is None:
            return
        if name not in self.data_sources:
            self.add(
                path,
                f"no data source named {name!r}",
                self._existing_hint(needed_type) or f"create a {needed_type} data source first",
            )
        elif self.data_sources[name] != needed_type:
            self.add(
                path,
                f"data source {name!r} is a {self.data_sources[name]} connection; "
                f"{user} needs a {needed_type} one",
                self._existing_hint(needed_type),
            )

    def _existing_hint(self, needed_type: str) -> str | None:
        if self.data_sources is None:
            return None
        names = sorted(n for n, t in self.data_sources.items() if t == needed_type)
        return (
            f"{needed_type} data sources: {', '.join(names)}"
            if names
            else f"the team has no {needed_type} data source yet"
        )

    def check_trigger(self, path: str, trigger: Trigger, inputs: Mapping[str, InputSpec]) -> None:
        kinds = [k for k in ("schedule", "webhook", "event") if getattr(trigger, k) is not None]
        if len(kinds) != 1:
            found = " and ".join(kinds) if kinds else "none"
            self.add(
                path,
                f"a trigger has exactly one of schedule, webhook, event; found {found}",
                "write one list entry per trigger",
            )
            return
        if trigger.schedule is not None:
            missing = [n for n, s in inputs.items() if s.default is None]
            if missing:
                self.add(
                    path,
                    f"scheduled runs get no inputs, but {', '.join(missing)} has no default",
                    "give those inputs a default",
                )
        if trigger.webhook is not None and trigger.webhook.input and trigger.webhook.input not in inputs:
            self.add(
                f"{path}.webhook.input",
                f"no input named {trigger.webhook.input!r}",
                f"declared inputs: {', '.join(inputs) or 'none'}",
            )
        if trigger.event is not None:
            known = catalogue.event_types()
            event = trigger.event
            if event.type not in known:
                close = catalogue.closest(event.type, list(known))
                self.add(
                    f"{path}.event.type",
                    f"unknown event type {event.type!r}",
                    f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(known))}",
                )
            else:
                self.check_data_source(f"{path}.event.source", event.source, known[event.type], event.type)
                self.check_event_inputs(path, event.type, inputs)

    def check_event_inputs(self, path: str, event_type: str, inputs: Mapping[str, InputSpec]) -> None:
        """An event run gets `event` (the whole payload) when the spec declares it, else the payload's
        fields that have an input's name (as route_event fills them); any other input needs a default."""
        fields = catalogue.event_fields(event_type)
        supplied = {"event"} if "event" in inputs else set(fields)
        missing = [n for n, s in inputs.items() if s.default is None and n not in supplied]
        # an error where a spec is saved (checked against a team); a warning where a stored version is
        # loaded to run, so a version saved before this check keeps running its other triggers
        severity: Severity = "error" if self.data_sources is not None else "warning"
        if missing:
            names = ", ".join(missing)
            self.add(
                path,
                f"runs started by the event {event_type} get no {names}: "
                f"{'it has' if len(missing) == 1 else 'they have'} no default and the event does not "
                "supply " + ("it" if len(missing) == 1 else "them"),
                f"give {names} a default, or declare an input named event (type: object) that receives "
                "the whole event"
                + (
                    f"; the event's fields {', '.join(fields)} fill inputs of the same name" if fields else ""
                ),
                severity,
            )


def _is_type(value: Any, json_type: str | list[str]) -> bool:
    if isinstance(json_type, list):
        return any(_is_type(value, t) for t in json_type)
    checks: dict[str, Callable[[Any], bool]] = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
        "null": lambda v: v is None,
    }
    return checks.get(json_type, lambda v: True)(value)
