"""The tools the builder's LLM is offered (OpenAI function definitions) and template matching."""

from __future__ import annotations

import re
from typing import Any

from coherex.spec.templates import Template, list_templates

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


def _fn(
    name: str, description: str, properties: dict[str, Any] | None = None, required: list[str] | None = None
) -> dict[str, Any]:
    params: dict[str, Any] = {"type": "object", "properties": properties or {}}
    if required:
        params["required"] = required
    return {"type": "function", "function": {"name": name, "description": description, "parameters": params}}


def definitions(only: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    return [d for d in _all() if only is None or d["function"]["name"] in only]


def _all() -> list[dict[str, Any]]:
    names = [t.name for t in list_templates()]
    return [
        _fn(
            "use_template",
            "Start the draft from a template of the library (it is validated and shown).",
            {"name": {"type": "string", "enum": names, "description": "template name"}},
            ["name"],
        ),
        _fn(
            "search_templates",
            "Find templates that fit a description.",
            {"query": {"type": "string", "description": "what the agent should do"}},
            ["query"],
        ),
        _fn(
            "draft_spec",
            "Replace the draft with a complete spec (YAML text); it is validated.",
            {"yaml": {"type": "string", "description": "the whole spec, apiVersion coherex/v1"}},
            ["yaml"],
        ),
        _fn(
            "update_spec",
            "Change part of the draft with a JSON merge patch (objects merge, null deletes, "
            'lists are replaced whole), e.g. {"metadata": {"name": "x"}}; it is validated.',
            {"changes": {"type": "object", "description": "the merge patch"}},
            ["changes"],
        ),
        _fn(
            "schedule",
            "Make the agent run on a schedule (replaces any existing schedule).",
            {
                "cron": {"type": "string", "description": "five-field cron, e.g. '0 8 * * 1-5'"},
                "timezone": {"type": "string", "description": "IANA time zone, e.g. Europe/Berlin"},
            },
            ["cron"],
        ),
        _fn("validate_spec", "Validate the current draft against the team's data sources and collections."),
        _fn("list_data_sources", "The team's connected data sources (name, type, status)."),
        _fn("list_collections", "The team's knowledge collections."),
        _fn(
            "list_tools",
            "The tool catalogue: every tool a spec may use, with the access it needs.",
            {"integration": {"type": "string", "description": "only this integration (slack, gmail, ...)"}},
        ),
        _fn(
            "save_spec",
            "Save the draft as a new agent or a new version of the open one.",
            {"message": {"type": "string", "description": "what changed"}},
        ),
        _fn(
            "test_run",
            "Save the draft and run it once now; the person watches every step.",
            {"inputs": {"type": "object", "description": "values for the agent's inputs"}},
        ),
        _fn("list_agents", "The team's saved agents with their last run."),
        _fn(
            "open_agent",
            "Load a saved agent as the draft, to change it.",
            {"name": {"type": "string"}},
            ["name"],
        ),
        _fn(
            "run_agent",
            "Run a saved agent now; the person watches every step.",
            {"name": {"type": "string"}, "inputs": {"type": "object"}},
            ["name"],
        ),
        _fn(
            "recent_runs",
            "What a saved agent did recently: its last runs with status, result and steps.",
            {"name": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 20}},
            ["name"],
        ),
    ]
