"""Error types shared by every part of Coherex.

Split by who must act (as in pydantic-ai): a user's bad input (`UserError`), a backend that is
down or misconfigured (`BackendError`), a run that failed (`ExecutionError`). Entry points (CLI,
API, chat) show `str(error)` to the person and never a traceback.
"""

from __future__ import annotations


class CoherexError(Exception):
    """Base class. The message is written for the person who must act on it."""

    #: short machine-readable code, used by the API and `--json` output
    code: str = "error"

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UserError(CoherexError):
    """The input was wrong: a bad file, a bad name, an unknown reference."""

    code = "invalid_input"


class NotFound(UserError):
    code = "not_found"


class Conflict(UserError):
    code = "conflict"


class PermissionDenied(UserError):
    code = "permission_denied"


class QuotaExceeded(UserError):
    """A team's or an API key's quota (executions, cost, concurrent runs) is used up."""

    code = "quota_exceeded"


class LoginThrottled(UserError):
    """Too many failed password sign-ins for one account: no more tries for a while."""

    code = "login_throttled"


class BackendError(CoherexError):
    """A backend (database, sandbox, LLM, integration) is unreachable or misconfigured."""

    code = "backend_unavailable"


class DatabaseUnavailable(BackendError):
    """The platform's own database connection failed (a restart, a failover); retried, never an answer."""


class ExecutionError(CoherexError):
    """An agent run failed for a reason that belongs to the run, not to the platform."""

    code = "execution_failed"
