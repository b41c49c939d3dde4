"""The MCP provider's own error (kept apart from the client: importing it loads no SDK)."""

from __future__ import annotations

from coherex.errors import BackendError


class McpServerDown(BackendError):
    """The MCP server is unreachable, crashed or stopped answering: a run that depends on it is retried."""

    code = "mcp_server_down"
