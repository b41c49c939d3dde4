"""`coherex mcp serve --stdio`: the team's agents as MCP tools for desktop clients (Claude Desktop,
Cursor, an IDE), over stdin/stdout.

It talks to the database directly, as every other command does (DATABASE_URL / the embedded
server), under the identity of the API key in COHEREX_API_KEY: the same tools, quotas, rate limit
and audit as `/mcp` on `coherex web`. Calls are queued like any run, so a worker must be running
(`coherex up`, or `coherex worker`). Nothing but the protocol is written to stdout.
"""

from __future__ import annotations

import typer

from coherex.cli._common import run_async
from coherex.errors import UserError

app = typer.Typer(no_args_is_help=True)


@app.command()
def serve(
    stdio: bool = typer.Option(False, "--stdio", help="Speak MCP over stdin/stdout (for desktop clients)."),
    key: str = typer.Option(
        "",
        envvar="COHEREX_API_KEY",
        show_default=False,
        help="The API key whose team's agents are served (default: $COHEREX_API_KEY).",
    ),
) -> None:
    """Serve every agent of the API key's team as an MCP tool."""
    if not stdio:
        raise UserError(
            "Only --stdio is served by this command; over HTTP, `coherex web` serves /mcp.",
            hint="Run `coherex mcp serve --stdio`, or point the client at http(s)://<host>/mcp.",
        )
    if not key.strip():
        raise UserError(
            "No API key: set COHEREX_API_KEY (or pass --key).",
            hint="Create one with `coherex keys create desktop`.",
        )
    from coherex.api.mcp import serve_stdio

    run_async(serve_stdio(key.strip()))
