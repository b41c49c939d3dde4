"""The conversational builder: a person describes an agent, the builder LLM drafts, validates,
repairs, saves, schedules and test-runs its spec. UI-independent: the chat (`chat_app.py`), the
tests and `coherex eval builder` all drive `BuilderSession`."""

from coherex.builder.draft import Connection, Draft
from coherex.builder.session import MAX_REPAIRS, BuilderSession, BuilderUI, TurnResult, plain_error
from coherex.builder.summary import describe_cron, summarize

__all__ = [
    "MAX_REPAIRS",
    "BuilderSession",
    "BuilderUI",
    "Connection",
    "Draft",
    "TurnResult",
    "describe_cron",
    "plain_error",
    "summarize",
]
