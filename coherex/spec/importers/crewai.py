"""CrewAI project config (`agents.yaml` + `tasks.yaml`) -> one spec per agent.

An agent's role, goal and backstory and its tasks (in file order) become the instructions;
CrewAI's `{name}` run-time placeholders become inputs, written `{{name}}`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from coherex.errors import UserError
from coherex.spec.documents import SpecFormatError, parse
from coherex.spec.importers import ImportResult, build_spec, one_line, read_text, slug

_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")

#: CrewAI tool class -> catalogue tool (None: no equivalent); tools not listed are reported too
_TOOLS: dict[str, str | None] = {
    "CodeInterpreterTool": "python",
    "FileReadTool": "python",
    "DirectoryReadTool": "python",
    "CSVSearchTool": "python",
    "PDFSearchTool": "knowledge.search",
    "TXTSearchTool": "knowledge.search",
    "DOCXSearchTool": "knowledge.search",
    "MDXSearchTool": "knowledge.search",
    "RagTool": "knowledge.search",
    "GithubSearchTool": "github.list_issues",
    "PGSearchTool": "postgres.query",
}
_DATA_SOURCE = {"github.list_issues": "github", "postgres.query": "postgres"}
_AGENT_KEYS = {"role", "goal", "backstory", "tools", "llm", "max_iter"}
_TASK_KEYS = {"description", "expected_output", "agent", "context", "output_file"}


def _find(directory: Path, filename: str) -> Path:
    for candidate in (directory / filename, directory / "config" / filename):
        if candidate.is_file():
            return candidate
    found = sorted(directory.rglob(filename)) if directory.is_dir() else []
    if not found:
        raise UserError(
            f"{directory}: no {filename} found (looked in it, its config/ and below)",
            hint="give the directory of a CrewAI project or its config/ directory",
        )
    return found[0]


def _mapping(path: Path) -> dict[str, Any]:
    try:
        data = parse(read_text(path), "yaml", path)
    except SpecFormatError as exc:
        raise SpecFormatError(f"{path}: {exc.message}", hint=exc.hint) from None
    bad = [k for k, v in data.items() if not isinstance(v, dict)]
    if bad:
        raise UserError(f"{path}: entry {bad[0]!r} should be a mapping of fields (role, goal, ... )")
    return data


def _text(value: Any) -> str:
    return str(value or "").strip()


def import_crewai(directory: str | Path) -> ImportResult:
    directory = Path(directory)
    agents = _mapping(_find(directory, "agents.yaml"))
    tasks_path = _find(directory, "tasks.yaml")
    tasks = _mapping(tasks_path)
    result = ImportResult()
    task_owner = {key: task.get("agent") for key, task in tasks.items()}
    for key, task in tasks.items():
        if task.get("agent") not in agents:
            result.warnings.append(
                f"task {key}: its agent {task.get('agent')!r} is not in agents.yaml; skipped"
            )
    if len(agents) > 1:
        result.warnings.append(
            "CrewAI runs the agents as one crew; here each agent becomes its own spec. "
            "Pass one agent's result to the next as an input (or merge them into one spec)."
        )
    any_tools = False
    for key, agent in agents.items():
        name = slug(key)
        sections = [f"You are the {_text(agent.get('role'))}.", f"Goal: {_text(agent.get('goal'))}"]
        if agent.get("backstory"):
            sections.append(f"Background: {_text(agent.get('backstory'))}")
        own = [(k, t) for k, t in tasks.items() if t.get("agent") == key]
        if own:
            sections.append("Do these tasks in order:")
        for task_key, task in own:
            section = f"## {task_key}\n{_text(task.get('description'))}"
            if task.get("expected_output"):
                section += f"\n\nExpected output: {_text(task.get('expected_output'))}"
            sections.append(section)
            for other in task.get("context") or []:
                if task_owner.get(other) != key:
                    result.warnings.append(
                        f"{name}: task {task_key} uses the result of {other} (agent "
                        f"{task_owner.get(other)}), which is another spec: give it to this agent as an input"
                    )
            if task.get("output_file"):
                result.warnings.append(
                    f"{name}: task {task_key} writes {task['output_file']}; here the result is stored with "
                    "the run"
                )
            for extra in sorted(set(task) - _TASK_KEYS):
                result.warnings.append(f"{name}: task {task_key}: field {extra!r} has no equivalent; ignored")
        instructions = "\n\n".join(sections) + "\n"
        placeholders = list(dict.fromkeys(_PLACEHOLDER.findall(instructions)))
        instructions = _PLACEHOLDER.sub(r"{{\1}}", instructions)
        body: dict[str, Any] = {"instructions": instructions}
        if agent.get("llm"):
            body["model"] = {"name": str(agent["llm"])}
        if placeholders:
            body["inputs"] = {
                p: {"type": "string", "description": f"CrewAI input {{{p}}}"} for p in placeholders
            }
        tools = []
        for tool in agent.get("tools") or []:
            any_tools = True
            use = _TOOLS.get(str(tool))
            if use is None:
                result.warnings.append(f"{name}: CrewAI tool {tool!r} has no equivalent here; not imported")
                continue
            entry: dict[str, Any] = {"use": use}
            if use in _DATA_SOURCE:
                entry |= {"dataSource": _DATA_SOURCE[use], "access": "read"}
                result.warnings.append(
                    f"{name}: {tool} became {use} on data source {_DATA_SOURCE[use]!r}; create it or change "
                    "the name"
                )
            if entry not in tools:
                tools.append(entry)
        if tools:
            body["tools"] = tools
        if isinstance(agent.get("max_iter"), int) and 1 <= agent["max_iter"] <= 500:
            body["limits"] = {"maxSteps": agent["max_iter"]}
        for extra in sorted(set(agent) - _AGENT_KEYS):
            result.warnings.append(f"{name}: agent field {extra!r} has no equivalent; ignored")
        description = one_line(_PLACEHOLDER.sub(r"<\1>", _text(agent.get("goal"))))
        result.specs.append(build_spec(name, body, description, {"imported-from": "crewai"}))
    if not any_tools:
        result.warnings.append(
            "no tools in agents.yaml: CrewAI projects attach tools in crew.py, which is not read; "
            "add the tools the agents need to spec.tools"
        )
    return result
