"""`coherex approvals list | approve | reject`: tool calls waiting for a person."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer
from rich.table import Table

from coherex.cli._common import console, print_json, run_async
from coherex.cli._context import cli_context
from coherex.errors import UserError

app = typer.Typer(no_args_is_help=True)


def _since(when: datetime) -> str:
    seconds = int((datetime.now(UTC) - when).total_seconds())
    if abs(seconds) < 120:
        return f"{seconds} s"
    if abs(seconds) < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print them as JSON.")) -> None:
    """Tool calls of the team's runs that wait for a decision, oldest first."""

    from coherex.services.approvals import pending

    async def go():
        async with cli_context() as ctx:
            return await pending(ctx.db, ctx.identity, ctx.team.id)

    rows = run_async(go())
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    if not rows:
        console.print("Nothing waits for approval.")
        return
    table = Table(
        "ID", "AGENT", "TOOL", "ARGUMENTS", "WAITING", "EXPIRES IN", "STARTED BY", "EXECUTION", box=None
    )
    for r in rows:
        args = json.dumps(r.arguments, ensure_ascii=False)
        table.add_row(
            str(r.id)[:8],
            r.agent_name,
            r.tool_name,
            args if len(args) <= 60 else args[:57] + "…",
            _since(r.created_at),
            _since(r.expires_at).lstrip("-"),
            r.requested_by or r.trigger,
            str(r.execution_id)[:12],
        )
    console.print(table)
    console.print(
        "[dim]`coherex approvals approve ID` (--args JSON to edit) · `coherex approvals reject ID -m WHY`[/]"
    )


@app.command()
def approve(
    approval: str = typer.Argument(..., help="Approval id (or a unique prefix)."),
    args: str | None = typer.Option(
        None, "--args", help="Run the call with these arguments instead (JSON object)."
    ),
    always: bool = typer.Option(
        False, "--always", help="Also stop asking for this tool (saves a new version)."
    ),
) -> None:
    """Approve a waiting call (with --args: edited); the run goes on."""
    edited = None
    if args is not None:
        try:
            edited = json.loads(args)
        except ValueError as exc:
            raise UserError(f"--args is not valid JSON: {exc}") from None
        if not isinstance(edited, dict):
            raise UserError('--args must be a JSON object, e.g. \'{"channel": "#ops"}\'.')
    _decide(approval, "edit" if edited is not None else "approve", arguments=edited, always_allow=always)


@app.command()
def reject(
    approval: str = typer.Argument(..., help="Approval id (or a unique prefix)."),
    message: str | None = typer.Option(None, "--message", "-m", help="Why: the model reads this."),
) -> None:
    """Reject a waiting call; the model is told (with your message) and the run goes on."""
    _decide(approval, "reject", message=message)


def _decide(approval: str, action: str, **kw) -> None:
    from coherex.runtime.approvals import decide
    from coherex.services.approvals import find

    async def go():
        async with cli_context() as ctx:
            row = await find(ctx.db, ctx.identity, ctx.team.id, approval)
            return await decide(ctx.db, ctx.identity, row.id, action, **kw)

    done = run_async(go())
    a = done.approval
    console.print(
        f"{a.tool_name} ({str(a.id)[:8]}) {a.status}."
        + (" The run goes on." if done.resumed else " Other calls of this step still wait.")
        + (
            f" (It is a sub-agent's call: its caller {str(done.queued)[:12]} goes on; "
            f"`coherex logs -f {str(done.queued)[:12]}`.)"
            if done.queued and done.queued != a.execution_id
            else ""
        )
        + (f" Saved version {done.new_version}: this tool no longer asks." if done.new_version else "")
    )


@app.command("team-default")
def team_default(
    mode: str = typer.Argument(
        ..., help="never, or writes: tools that change data ask unless their spec says otherwise."
    ),
) -> None:
    """Set what tools without an `approval:` setting do in this team (admins)."""

    if mode not in ("never", "writes"):
        raise UserError(f"{mode!r} is not a team default; use never or writes.")

    from coherex.services.approvals import set_team_default

    async def go():
        async with cli_context() as ctx:
            await set_team_default(ctx.db, ctx.identity, ctx.team.id, mode)
            return ctx.team.slug

    slug = run_async(go())
    console.print(f"Team {slug}: tools without an approval setting now use `{mode}`.")


@app.command()
def notify(
    source: str | None = typer.Argument(None, help="A Slack data source of the team."),
    channel: str | None = typer.Argument(
        None, help="The channel that hears about waiting calls, e.g. #approvals."
    ),
    email: str | None = typer.Option(
        None,
        "--email",
        help="Addresses that get a mail per waiting step, comma-separated (sent through COHEREX_SMTP_URL).",
    ),
    off: bool = typer.Option(False, "--off", help="Stop notifying (Slack and e-mail)."),
) -> None:
    """Announce each call that waits for approval, with how to decide (admins): posted to a Slack
    channel of the team, and/or mailed to addresses. Setting one keeps the other."""
    from coherex import mail

    slack = bool(source and channel)
    if not off and not slack and email is None:
        raise UserError(
            "Give a Slack data source and a channel (e.g. `coherex approvals notify team-slack "
            "#approvals`), --email ops@example.com, or --off."
        )
    if source and not channel:
        raise UserError(f"Give the channel too, e.g. `coherex approvals notify {source} #approvals`.")
    addresses = mail.check_addresses(email) if email is not None and not off else None
    if addresses:
        mail.require_configured()

    from coherex.services.approvals import set_team_notify

    async def go():
        async with cli_context() as ctx:
            return await set_team_notify(
                ctx.db,
                ctx.identity,
                ctx.team.id,
                source=source if slack else None,
                channel=channel,
                email=addresses,
                off=off,
            )

    target = run_async(go())
    if not target:
        console.print("Approval requests are no longer announced.")
        return
    if target.get("source"):
        console.print(
            f"Calls that wait for approval are posted to {target['channel']} through {target['source']}."
        )
    if target.get("email"):
        console.print(f"Calls that wait for approval are mailed to {', '.join(target['email'])}.")
