"""The tool catalogue: every `use` name a spec may list, in one place.

Validation checks specs against it; the runtime exposes `parameters` (minus the arguments a spec
fixes with `with:`) to the LLM as tool schemas. Integrations may add or override entries with
`register_tool`, but the built-in list below is complete on its own.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

Access = Literal["read", "write"]


@dataclass(frozen=True)
class ToolInfo:
    name: str
    #: the integration the tool belongs to; for tools that need a data source this is also the
    #: data source type they need (gmail, slack, github, http_api, postgres)
    integration: str
    description: str
    #: the access the tool needs on its data source: a `write` tool changes something outside
    access: Access = "read"
    needs_data_source: bool = False
    #: the tool reads a knowledge collection (`collection:` in the spec)
    uses_collection: bool = False
    #: JSON Schema of the arguments (an object schema)
    parameters: dict[str, Any] = field(default_factory=lambda: _obj({}))

    def llm_parameters(self, fixed: dict[str, Any] | None = None) -> dict[str, Any]:
        """The argument schema the LLM sees: arguments fixed by the spec's `with:` removed."""
        fixed = fixed or {}
        props = {k: v for k, v in self.parameters.get("properties", {}).items() if k not in fixed}
        required = [r for r in self.parameters.get("required", []) if r not in fixed]
        return _obj(props, required)


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema


def _s(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _i(description: str, minimum: int = 1, maximum: int = 100, **extra: Any) -> dict[str, Any]:
    return {"type": "integer", "description": description, "minimum": minimum, "maximum": maximum, **extra}


def _strings(description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "description": description}


_BUILTIN: list[ToolInfo] = [
    # --- sandbox and knowledge: no data source
    ToolInfo(
        "python",
        "python",
        "Run Python code in the agent's isolated sandbox and return stdout, stderr and the value "
        "of the last expression. Files uploaded for the run are in the working directory.",
        parameters=_obj({"code": _s("Python source to execute")}, ["code"]),
    ),
    ToolInfo(
        "csv.summarize",
        "python",
        "Summarise an uploaded CSV file with the platform's fixed analysis (run in the sandbox): rows and "
        "columns, totals, averages and ranges, totals per category, changes between the first and last "
        "period, missing values, duplicates and outliers. Returns a short report with the real figures.",
        parameters=_obj(
            {"file": _s("the uploaded file's name; by default the run's `file` input or its only upload")}
        ),
    ),
    ToolInfo(
        "knowledge.search",
        "knowledge",
        "Semantic search over the team's knowledge base; returns the best matching passages "
        "with their document titles.",
        uses_collection=True,
        parameters=_obj(
            {"query": _s("what to look for, in plain words"), "top_k": _i("number of passages", 1, 50)},
            ["query"],
        ),
    ),
    ToolInfo(
        "knowledge.answer",
        "knowledge",
        "Answer a question from the team's knowledge base: searches it and returns the sentences of the "
        "best passages that answer it, with [n] citations and their documents (extractive: the documents' "
        "own words).",
        uses_collection=True,
        parameters=_obj({"question": _s("the question; by default the run's `question` input")}),
    ),
    # --- another agent of the team, called as a tool (a run of its own, nested under the step)
    ToolInfo(
        "agent",
        "agent",
        "Run another agent of the team and return its answer. Its parameters are the callee's inputs.",
        parameters=_obj({}),
    ),
    # --- gmail
    ToolInfo(
        "gmail.search_messages",
        "gmail",
        "Search the mailbox with Gmail query syntax (e.g. 'is:unread newer_than:1d'); returns "
        "message ids, senders, subjects and snippets.",
        needs_data_source=True,
        parameters=_obj(
            {"query": _s("Gmail search query"), "max_results": _i("maximum messages", 1, 500)}, ["query"]
        ),
    ),
    ToolInfo(
        "gmail.read_message",
        "gmail",
        "Read one message: headers and plain-text body.",
        needs_data_source=True,
        parameters=_obj({"message_id": _s("id from gmail.search_messages")}, ["message_id"]),
    ),
    ToolInfo(
        "gmail.send_message",
        "gmail",
        "Send an email from the connected mailbox.",
        access="write",
        needs_data_source=True,
        parameters=_obj(
            {
                "to": _strings("recipient addresses"),
                "subject": _s("subject line"),
                "body": _s("plain-text body"),
                "cc": _strings("cc addresses"),
                "thread_id": _s("reply inside this thread"),
            },
            ["to", "subject", "body"],
        ),
    ),
    ToolInfo(
        "gmail.add_label",
        "gmail",
        "Add a label to a message (creating the label if needed).",
        access="write",
        needs_data_source=True,
        parameters=_obj({"message_id": _s("message id"), "label": _s("label name")}, ["message_id", "label"]),
    ),
    # --- slack
    ToolInfo(
        "slack.read_channel",
        "slack",
        "Read recent messages of a channel, newest first.",
        needs_data_source=True,
        parameters=_obj(
            {
                "channel": _s("channel name (#general) or id"),
                "limit": _i("maximum messages", 1, 1000),
                "oldest": _s("only messages after this Slack timestamp"),
            },
            ["channel"],
        ),
    ),
    ToolInfo(
        "slack.post_message",
        "slack",
        "Post a message to a channel.",
        access="write",
        needs_data_source=True,
        parameters=_obj(
            {"channel": _s("channel name or id"), "text": _s("message, Slack mrkdwn")}, ["channel", "text"]
        ),
    ),
    ToolInfo(
        "slack.reply_in_thread",
        "slack",
        "Reply in the thread of a message.",
        access="write",
        needs_data_source=True,
        parameters=_obj(
            {
                "channel": _s("channel name or id"),
                "thread_ts": _s("timestamp of the parent message"),
                "text": _s("reply, Slack mrkdwn"),
            },
            ["channel", "thread_ts", "text"],
        ),
    ),
    ToolInfo(
        "slack.list_channels",
        "slack",
        "List the channels the connected workspace can see.",
        needs_data_source=True,
        parameters=_obj({"limit": _i("maximum channels", 1, 1000)}),
    ),
    # --- github
    ToolInfo(
        "github.list_issues",
        "github",
        "List issues of a repository.",
        needs_data_source=True,
        parameters=_obj(
            {
                "repo": _s("owner/name"),
                "state": _s("issue state", enum=["open", "closed", "all"]),
                "labels": _strings("only issues with all of these labels"),
                "since": _s("only issues updated after this ISO 8601 time"),
                "limit": _i("maximum issues", 1, 500),
            },
            ["repo"],
        ),
    ),
    ToolInfo(
        "github.read_issue",
        "github",
        "Read one issue with its comments.",
        needs_data_source=True,
        parameters=_obj(
            {"repo": _s("owner/name"), "number": _i("issue number", 1, 10**9)}, ["repo", "number"]
        ),
    ),
    ToolInfo(
        "github.create_issue",
        "github",
        "Open a new issue.",
        access="write",
        needs_data_source=True,
        parameters=_obj(
            {
                "repo": _s("owner/name"),
                "title": _s("issue title"),
                "body": _s("markdown body"),
                "labels": _strings("labels to set"),
            },
            ["repo", "title"],
        ),
    ),
    ToolInfo(
        "github.comment_issue",
        "github",
        "Comment on an issue or pull request.",
        access="write",
        needs_data_source=True,
        parameters=_obj(
            {
                "repo": _s("owner/name"),
                "number": _i("issue number", 1, 10**9),
                "body": _s("markdown comment"),
            },
            ["repo", "number", "body"],
        ),
    ),
    ToolInfo(
        "github.add_labels",
        "github",
        "Add labels to an issue or pull request.",
        access="write",
        needs_data_source=True,
        parameters=_obj(
            {"repo": _s("owner/name"), "number": _i("issue number", 1, 10**9), "labels": _strings("labels")},
            ["repo", "number", "labels"],
        ),
    ),
    ToolInfo(
        "github.list_pull_requests",
        "github",
        "List pull requests of a repository.",
        needs_data_source=True,
        parameters=_obj(
            {
                "repo": _s("owner/name"),
                "state": _s("state", enum=["open", "closed", "all"]),
                "limit": _i("maximum pull requests", 1, 500),
            },
            ["repo"],
        ),
    ),
    ToolInfo(
        "github.read_pull_request_diff",
        "github",
        "Read the unified diff of a pull request.",
        needs_data_source=True,
        parameters=_obj(
            {"repo": _s("owner/name"), "number": _i("pull request number", 1, 10**9)}, ["repo", "number"]
        ),
    ),
    ToolInfo(
        "github.list_commits",
        "github",
        "List recent commits of a branch.",
        needs_data_source=True,
        parameters=_obj(
            {
                "repo": _s("owner/name"),
                "branch": _s("branch name (default branch if omitted)"),
                "since": _s("only commits after this ISO 8601 time"),
                "limit": _i("maximum commits", 1, 500),
            },
            ["repo"],
        ),
    ),
    # --- generic HTTP API (base URL and credentials live in the data source)
    ToolInfo(
        "http.get",
        "http_api",
        "GET a path of the data source's API; returns status, headers and body.",
        needs_data_source=True,
        parameters=_obj(
            {
                "path": _s("path below the base URL, e.g. /v1/items"),
                "query": {"type": "object", "description": "query parameters"},
            },
            ["path"],
        ),
    ),
    ToolInfo(
        "http.request",
        "http_api",
        "Send any HTTP request (GET, POST, PUT, PATCH, DELETE) to the data source's API.",
        access="write",
        needs_data_source=True,
        parameters=_obj(
            {
                "method": _s("HTTP method", enum=["GET", "POST", "PUT", "PATCH", "DELETE"]),
                "path": _s("path below the base URL"),
                "query": {"type": "object", "description": "query parameters"},
                "json": {"description": "JSON request body"},
            },
            ["method", "path"],
        ),
    ),
    # --- postgres
    ToolInfo(
        "postgres.query",
        "postgres",
        "Run a read-only SQL query; returns at most `limit` rows.",
        needs_data_source=True,
        parameters=_obj({"sql": _s("one SELECT statement"), "limit": _i("maximum rows", 1, 10000)}, ["sql"]),
    ),
    ToolInfo(
        "postgres.execute",
        "postgres",
        "Run a data-changing SQL statement (INSERT, UPDATE, DELETE).",
        access="write",
        needs_data_source=True,
        parameters=_obj({"sql": _s("one SQL statement")}, ["sql"]),
    ),
]

_TOOLS: dict[str, ToolInfo] = {t.name: t for t in _BUILTIN}

#: event types a trigger may wait for, and the data source type that emits them
_EVENTS: dict[str, str] = {
    "slack.message": "slack",
    "slack.app_mention": "slack",
    "github.issue_opened": "github",
    "github.issue_comment": "github",
    "github.pull_request_opened": "github",
    "gmail.message_received": "gmail",
}


def register_tool(info: ToolInfo) -> None:
    """Add a tool, or replace the entry of the same name (integrations use this)."""
    _TOOLS[info.name] = info


def register_event_type(event_type: str, data_source_type: str) -> None:
    _EVENTS[event_type] = data_source_type


def get_tool(name: str) -> ToolInfo | None:
    return _TOOLS.get(name)


def tools() -> list[ToolInfo]:
    return sorted(_TOOLS.values(), key=lambda t: t.name)


def event_types() -> dict[str, str]:
    return dict(_EVENTS)


def data_source_types() -> set[str]:
    return {t.integration for t in _TOOLS.values() if t.needs_data_source}


def closest(name: str, candidates: list[str] | set[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(name, sorted(candidates), n=n, cutoff=0.5)
