"""The sandbox layer's own errors; E2B SDK exceptions are mapped to these in `e2b_client`."""

from __future__ import annotations

from coherex.errors import BackendError, ExecutionError, NotFound, UserError


class SandboxError(BackendError):
    """The sandbox service failed or is misconfigured."""

    code = "sandbox_error"


class SandboxUnavailable(SandboxError):
    """No sandbox service answers, or it cannot start sandboxes (bwrap missing, bad key...)."""

    code = "sandbox_unavailable"


class SandboxAuthError(SandboxError):
    code = "sandbox_auth"


class SandboxNotFound(NotFound):
    """The sandbox is gone: killed, timed out, or stopped by a limit."""

    code = "sandbox_not_found"


class SandboxTimeout(ExecutionError):
    """A command or request took longer than its limit."""

    code = "sandbox_timeout"


class SandboxInvalidInput(UserError):
    """Bad arguments for the sandbox (a path that does not exist, a bad timeout...)."""

    code = "sandbox_invalid_input"


class CommandFailed(ExecutionError):
    """`commands.run(..., check=True)` ended with a non-zero exit code."""

    code = "command_failed"

    def __init__(self, message: str, *, exit_code: int, stdout: str, stderr: str):
        super().__init__(message)
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr
