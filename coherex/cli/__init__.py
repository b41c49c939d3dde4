"""The `coherex` command: docker-like, one sub-command group per module in this package.

Every command reports errors as one readable message (exit 1 for bad input, 2 for a backend
problem) and never a traceback; set COHEREX_DEBUG=1 to see the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from pydantic import ValidationError

from coherex.cli._common import err_console
from coherex.errors import BackendError, CoherexError

app = typer.Typer(
    name="coherex",
    help="Coherex: Docker for AI agents. Describe, version, run and watch agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    # Each group lives in its own module; importing lazily keeps `coherex --help` fast.
    from coherex.cli import db

    app.add_typer(db.app, name="db", help="Manage the database: embedded server and migrations.")

    from coherex.cli import sandbox

    app.add_typer(sandbox.app, name="sandbox", help="Sandboxes: serve the local server, exec code, health.")

    from coherex.cli import agents

    app.add_typer(agents.app, name="agents", help="Apply, list, show, version, diff and export agents.")

    from coherex.cli import runs

    runs.register(app)  # run, ps, logs, stop

    from coherex.cli import distribution

    distribution.register(app)  # push, pull, inspect, registry

    from coherex.cli import server

    server.register(app)  # worker, web, up, openapi

    from coherex.cli import keys

    app.add_typer(keys.app, name="keys", help="API keys for the HTTP API.")

    from coherex.cli import users

    app.add_typer(users.app, name="users", help="Add chat logins and put them in teams.")

    from coherex.cli import eval as eval_cli

    app.add_typer(eval_cli.app, name="eval", help="Evaluate the conversational builder on a set of cases.")

    from coherex.cli import spec as spec_cli

    spec_cli.register(app)  # validate, schema, templates, import

    from coherex.cli import sources

    app.add_typer(
        sources.app, name="sources", help="Data sources: add, connect, list, test, remove, rotate-key."
    )

    from coherex.cli import kb

    app.add_typer(kb.app, name="kb", help="Knowledge base: add files, search, list, remove, reindex.")

    from coherex.cli import demo

    app.add_typer(demo.app, name="demo", help="Demo data: `coherex demo seed` fills the dashboard.")
    from coherex.cli import approvals

    app.add_typer(
        approvals.app, name="approvals", help="Tool calls waiting for approval: list, approve, reject."
    )  # noqa: E702,E501
    from coherex.cli import teams

    app.add_typer(teams.app, name="teams", help="Teams: members, roles, invitations, quotas, usage.")  # noqa: E702,E501
    from coherex.cli import mcp

    app.add_typer(mcp.app, name="mcp", help="Serve the team's agents to MCP clients (stdio).")  # noqa: E702,E501


_register()


def main(argv: list[str] | None = None) -> int:
    try:
        # standalone_mode=False: click hands back `typer.Exit` codes instead of calling sys.exit
        code = app(args=argv, standalone_mode=False)
    except CoherexError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        return 2 if isinstance(exc, BackendError) else 1
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        return 130
    except typer.TyperException as exc:  # usage errors: a missing argument, an unknown option, ...
        show = getattr(exc, "show", None)
        if show is None:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        else:
            show()
        return getattr(exc, "exit_code", 2)
    except Exception as exc:  # anything unexpected
        if isinstance(exc, ValidationError) and exc.title == "Settings":
            # a setting from the environment or .env is wrong: its validator's message names it
            wrong = "; ".join(_setting_problem(e) for e in exc.errors())
            err_console.print(
                f"[bold red]error:[/] {wrong}\n  hint: change it in the environment or .env", highlight=False
            )
            return 1
        if os.environ.get("COHEREX_DEBUG"):
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc}\n"
            "  This is a bug in Coherex. Run again with COHEREX_DEBUG=1 for details.",
            highlight=False,
        )
        return 3
    return code if isinstance(code, int) else 0


def _setting_problem(error: Any) -> str:
    """One wrong setting in words: its name, then what is wrong (once, if the message names it)."""
    name = ".".join(str(part) for part in error.get("loc") or ())
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    return message if not name or message.startswith(name) else f"{name}: {message}"


def run() -> None:  # pragma: no cover - console script shim
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
