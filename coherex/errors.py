"""Error types shared by every part of Coherex.

Split by who must act (as in pydantic-ai): a user's bad input (`UserError`), a backend that is
down or misconfigured (`BackendError`), a run that failed (`ExecutionError`). Entry points (CLI,
API, chat) show `str(error)` to the person and never a traceback. Errors are told apart by type
and attributes (`status`, `retry_after`, `code`), never by matching their text.

The tree (defined here unless a module is named; each package's own errors subclass these)::

    CoherexError                     .code, .message, .hint
      UserError                      bad input: a file, a name, a reference        (API 422)
        NotFound, Conflict, PermissionDenied                                        (404/409/403)
        QuotaExceeded                                                                (402)
          ConcurrencyLimited         runtime/engine.py: the team is at its concurrent-run limit;
                                     the execution stays pending (a worker tries again later)
        LoginThrottled
        Unauthorized                 no valid API key or login                     (401)
        RateLimited                  an API key's request budget is used up, .retry_after (429)
        LLMModelNotFound, LLMBadRequest, SpecFormatError, ...
      BackendError                   a backend is down or misconfigured, retried by workers (503)
        DatabaseUnavailable
        RetryLater                   runtime/engine.py: a run could not start; its job is retried
        LLMError (llm/errors.py), SandboxError (sandbox/errors.py), IntegrationError, VaultError, ...
      ExecutionError                 a run failed for a reason of its own
        ToolFailed                   tools/port.py: one tool call failed; the message goes back
                                     to the model, which may try something else
      ServiceError                   integrations/base.py: what an external service answered,
                                     .status, .retry_after, .auth, .retryable; adapters raise it,
                                     `integrations.service` turns it into IntegrationError,
                                     UserError or a failed check before anyone sees it

Control signals beside the tree (never shown to a person, so not CoherexErrors): `Retryable` and
`RetriesExhausted` (coherex/retry.py: an attempt worth repeating, and the end of the attempts —
both carry the real error as `.cause`), `runtime.approvals.Paused` (a run waits for a decision),
and the private `_Stop`, `_ClaimLost` (runtime/engine.py) and `_Abort` (builder/session.py).
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


class Unauthorized(UserError):
    """The request carries no valid credentials (an unknown, revoked or expired API key; no login)."""

    code = "unauthorized"


class RateLimited(UserError):
    """An API key's request budget is used up for now; `retry_after` says for how long (s)."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: float):
        super().__init__(message, hint=f"Retry after {retry_after:.0f} s.")
        self.retry_after = retry_after


class BackendError(CoherexError):
    """A backend (database, sandbox, LLM, integration) is unreachable or misconfigured."""

    code = "backend_unavailable"


class DatabaseUnavailable(BackendError):
    """The platform's own database connection failed (a restart, a failover); retried, never an answer."""


class ExecutionError(CoherexError):
    """An agent run failed for a reason that belongs to the run, not to the platform."""

    code = "execution_failed"
