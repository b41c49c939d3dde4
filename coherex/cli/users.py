"""`coherex users add`: create a chat login (hashed password) and put it in a team; `passwd` and
`set-timezone` change a login's password and time zone.

An operator command: like `psql`, it acts with the database's own rights (the system identity),
since it is how the first people of a team get an account.
"""

from __future__ import annotations

import sys

import typer

from coherex.cli._common import console, run_async
from coherex.errors import UserError

app = typer.Typer(no_args_is_help=True)


@app.command()
def add(
    email: str = typer.Argument(..., help="The login (an email address)."),
    team: str = typer.Option(
        None, "--team", help="Team slug (default: COHEREX_TEAM or 'default'); created if new."
    ),
    role: str = typer.Option("member", "--role", help="owner, admin, member or viewer."),
    name: str = typer.Option("", "--name", help="Display name."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input."
    ),
) -> None:
    """Create a user who can log in to the chat (or reset the password of an existing one)."""
    from coherex.cli._context import DEFAULT_TEAM
    from coherex.services.users import add_user
    from coherex.settings import get_settings
    from coherex.store.db import Database

    if role not in ("owner", "admin", "member", "viewer"):
        raise UserError(f"--role must be owner, admin, member or viewer, not {role!r}.")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    slug = team or get_settings().cli_team or DEFAULT_TEAM

    async def go() -> tuple[str, str]:
        async with Database.from_settings() as db:
            return await add_user(db, email, password, slug, role=role, name=name)  # type: ignore[arg-type]

    what, membership = run_async(go())
    console.print(f"[green]{what}[/] {email.strip().lower()}: {membership}. They can log in to the chat now.")


@app.command()
def passwd(
    email: str = typer.Argument(..., help="The login whose password changes."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the password from standard input."
    ),
) -> None:
    """Set a new password for an existing chat login."""
    from coherex.services.users import set_password
    from coherex.store.db import Database

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)

    async def go() -> None:
        async with Database.from_settings() as db:
            await set_password(db, email, password)

    run_async(go())
    console.print(
        f"[green]changed[/] the password of {email.strip().lower()}. Sessions signed in before keep "
        "working until they sign out."
    )


@app.command("set-timezone")
def set_timezone(
    email: str = typer.Argument(..., help="The login whose time zone changes."),
    zone: str = typer.Argument(
        None, help="An IANA time zone such as Europe/Berlin or America/New_York (omit with --clear)."
    ),
    clear: bool = typer.Option(
        False, "--clear", help="Forget it: the browser's zone is taken at the person's next chat."
    ),
) -> None:
    """Set the time zone the builder schedules this person's agents in (the browser's is kept
    otherwise; one set here is never replaced by it)."""
    from coherex.services.users import set_timezone as set_zone
    from coherex.store.db import Database

    if (zone is None) != clear:
        raise UserError(
            "Give a time zone (e.g. `coherex users set-timezone ana@example.com Europe/Berlin`) or --clear."
        )

    async def go():
        async with Database.from_settings() as db:
            return await set_zone(db, email, None if clear else zone)

    user = run_async(go())
    if user.timezone:
        console.print(f"[green]set[/] the time zone of {user.email} to {user.timezone}.")
    else:
        console.print(f"[green]cleared[/] the time zone of {user.email}; their browser's is taken next.")
