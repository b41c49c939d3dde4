"""`coherex teams …`: teams, members and roles, invitations, quotas and usage.

Acts as COHEREX_USER in COHEREX_TEAM (like every command): the database decides who may do what.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import typer
from rich.table import Table

from coherex.cli._common import console, print_json, run_async
from coherex.cli._context import cli_context
from coherex.errors import UserError

app = typer.Typer(no_args_is_help=True)

_UNLIMITED = ("", "none", "unlimited", "-")


def _limit(value: str | None, kind: type) -> Any:
    """None = leave as is; 'unlimited' = remove the limit (stored as null)."""
    if value is None:
        return ...
    if value.strip().lower() in _UNLIMITED:
        return None
    try:
        out = kind(value)
    except ValueError:
        raise UserError(f"{value!r} is not a number (or 'unlimited').") from None
    if out < 0:
        raise UserError(f"A quota cannot be negative ({value}).")
    return out


def _fmt(used: Any, limit: Any, money: bool = False) -> tuple[str, str]:
    f = (lambda v: f"${Decimal(v):.2f}") if money else str
    if limit is None:
        return f"{f(used)} / unlimited", "unlimited"
    return f"{f(used)} / {f(limit)}", f(max(Decimal(limit) - Decimal(used), 0))


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """Your teams and your role in each."""
    from coherex.services import teams

    async def go():
        async with cli_context() as ctx:
            return sorted(await teams.my_teams(ctx.db, ctx.identity), key=lambda t: t.slug), ctx.team.slug

    rows, current = run_async(go())
    if as_json:
        print_json([{"slug": t.slug, "name": t.name, "role": t.role, "id": str(t.id)} for t in rows])
        return
    table = Table("", "SLUG", "NAME", "ROLE", box=None)
    for t in rows:
        table.add_row("*" if t.slug == current else "", t.slug, t.name, t.role)
    console.print(table)


@app.command()
def create(
    slug: str, name: str = typer.Option("", "--name", help="Display name (default: from the slug).")
) -> None:
    """Create a team; you are its owner. Switch to it with COHEREX_TEAM=SLUG."""
    from coherex.services import teams

    async def go():
        async with cli_context() as ctx:
            return await teams.create_team(ctx.db, ctx.identity, slug, name or slug.replace("-", " ").title())

    team = run_async(go())
    console.print(
        f"created team [bold]{team.slug}[/] ({team.id}); you are its owner. Use it with "
        f"COHEREX_TEAM={team.slug}"
    )


@app.command()
def members(as_json: bool = typer.Option(False, "--json")) -> None:
    """The members of the current team and their roles."""
    from coherex.services import teams

    async def go():
        async with cli_context() as ctx:
            return await teams.list_members(ctx.db, ctx.identity, ctx.team.id)

    rows = run_async(go())
    if as_json:
        print_json(
            [
                {"email": m.email, "role": m.role, "user_id": str(m.user_id), "timezone": m.timezone}
                for m in rows
            ]
        )
        return
    table = Table("EMAIL", "ROLE", "TIME ZONE", "SINCE", box=None)
    for m in rows:
        table.add_row(m.email or str(m.user_id), m.role, m.timezone or "-", m.created_at.strftime("%Y-%m-%d"))
    console.print(table)


@app.command()
def invite(
    email: str,
    role: str = typer.Option("member", "--role", help="owner, admin, member or viewer."),
    days: float = typer.Option(7, "--days", help="How long the invitation is valid."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Invite someone into the current team (admins; only owners invite owners). Prints a one-time token."""
    from coherex.services import teams

    async def go():
        async with cli_context() as ctx:
            return await teams.invite(
                ctx.db, ctx.identity, ctx.team.id, email, role, days=days
            ), ctx.team.slug

    (inv, token), slug = run_async(go())
    if as_json:
        print_json(
            {
                "id": str(inv.id),
                "email": inv.email,
                "role": inv.role,
                "expires_at": inv.expires_at,
                "token": token,
            }
        )
        return
    console.print(
        f"Invited {inv.email} as {inv.role} of {slug} until {inv.expires_at:%Y-%m-%d %H:%M} UTC.\n\n"
        f"  {token}\n\nGive them this token (shown once): `coherex teams accept TOKEN`."
    )


@app.command()
def accept(token: str) -> None:
    """Join a team with an invitation token (as COHEREX_USER; it must be the invited email)."""
    from coherex.services import teams
    from coherex.services.users import user_by_email
    from coherex.settings import get_settings
    from coherex.store.db import Database, Identity

    async def go():
        from coherex.cli._context import DEFAULT_USER

        email = (get_settings().cli_user or DEFAULT_USER).strip().lower()
        async with Database.from_settings() as db:
            user = await user_by_email(db, email)
            if user is None:
                raise UserError(f"No user {email!r}.", hint="Create it with `coherex users add EMAIL`.")
            return await teams.accept_invitation(db, Identity.user(user.id), token)

    team = run_async(go())
    console.print(f"joined team [bold]{team.slug}[/]. Use it with COHEREX_TEAM={team.slug}")


@app.command()
def role(
    email: str,
    new_role: str = typer.Argument(None, metavar="ROLE", help="owner, admin, member or viewer."),
    remove: bool = typer.Option(False, "--remove", help="Remove the member from the team."),
) -> None:
    """Change a member's role, or remove them (admins; only owners touch owners)."""
    from coherex.services import teams

    if not remove and not new_role:
        raise UserError("Give a ROLE (owner, admin, member, viewer) or --remove.")

    async def go():
        async with cli_context() as ctx:
            if remove:
                await teams.remove_member(ctx.db, ctx.identity, ctx.team.id, email)
                return f"removed {email} from {ctx.team.slug}"
            m = await teams.set_role(ctx.db, ctx.identity, ctx.team.id, email, new_role)
            return f"{email} is now {m.role} of {ctx.team.slug}"

    console.print(run_async(go()))


@app.command()
def quota(
    executions: str = typer.Option(None, "--executions", help="Executions per month, or 'unlimited'."),
    cost: str = typer.Option(None, "--cost", help="Cost per month in USD, or 'unlimited'."),
    concurrent: str = typer.Option(None, "--concurrent", help="Runs at once, or 'unlimited'."),
    key: str = typer.Option(
        None, "--key", help="Set an API key's quotas (id, name or prefix) instead of the team's."
    ),
) -> None:
    """Change quotas of the current team or one of its API keys (owners only)."""
    from coherex.services import teams

    ex, co, cc = _limit(executions, int), _limit(cost, float), _limit(concurrent, int)
    if cc == 0:
        raise UserError("--concurrent must be at least 1 (or 'unlimited').")

    async def go():
        async with cli_context() as ctx:
            now = await teams.usage(ctx.db, ctx.identity, ctx.team.id)
            if key is None:
                t = now.team
                await teams.set_quotas(
                    ctx.db,
                    ctx.identity,
                    ctx.team.id,
                    executions_month=t.quota_executions_month if ex is ... else ex,
                    cost_month_usd=t.quota_cost_month_usd if co is ... else co,
                    max_concurrent_runs=t.max_concurrent_runs if cc is ... else cc,
                )
                return f"quotas of team {ctx.team.slug} changed"
            k = next((k for k in now.keys if key in (str(k.id), k.name, k.prefix)), None)
            await teams.set_key_quotas(
                ctx.db,
                ctx.identity,
                ctx.team.id,
                key,
                executions_month=(k.quota_executions_month if k else None) if ex is ... else ex,
                cost_month_usd=(k.quota_cost_month_usd if k else None) if co is ... else co,
                max_concurrent_runs=(k.max_concurrent_runs if k else None) if cc is ... else cc,
            )
            return f"quotas of API key {key} changed"

    console.print(run_async(go()))
    usage_cmd(as_json=False)


@app.command("network-role")
def network_role(
    role: str = typer.Argument(None, metavar="ROLE", help="member, admin or owner; omit to show it."),
) -> None:
    """Who may save agents whose sandbox reaches the internet (`runtime.network: true`); owners change it."""
    from coherex.services import teams

    async def go():
        async with cli_context() as ctx:
            team = (
                ctx.team
                if role is None
                else await teams.set_network_role(ctx.db, ctx.identity, ctx.team.id, role)
            )
            return (
                f"in team {team.slug}, a {team.network_min_role} or above may save agents with "
                "runtime.network: true"
            )

    console.print(run_async(go()))


@app.command("usage")
def usage_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """This month's executions, cost and runs going, against the quotas, with what is left."""
    from coherex.services import teams

    async def go():
        async with cli_context() as ctx:
            return await teams.usage(ctx.db, ctx.identity, ctx.team.id), ctx.team.slug

    u, slug = run_async(go())
    t = u.team
    if as_json:
        print_json(
            {
                "team": slug,
                "period": t.period.isoformat(),
                "executions": t.executions,
                "quota_executions_month": t.quota_executions_month,
                "executions_left": t.executions_left,
                "cost_usd": str(t.cost_usd),
                "quota_cost_month_usd": None
                if t.quota_cost_month_usd is None
                else str(t.quota_cost_month_usd),
                "cost_left_usd": None if t.cost_left_usd is None else str(t.cost_left_usd),
                "running": t.running,
                "max_concurrent_runs": t.max_concurrent_runs,
                "keys": [
                    {
                        "name": k.name,
                        "prefix": k.prefix,
                        "revoked": k.revoked_at is not None,
                        "executions": k.executions,
                        "quota_executions_month": k.quota_executions_month,
                        "executions_left": None
                        if k.quota_executions_month is None
                        else max(0, k.quota_executions_month - k.executions),
                        "cost_usd": str(k.cost_usd),
                        "quota_cost_month_usd": None
                        if k.quota_cost_month_usd is None
                        else str(k.quota_cost_month_usd),
                        "running": k.running,
                        "max_concurrent_runs": k.max_concurrent_runs,
                    }
                    for k in u.keys
                ],
            }
        )
        return
    table = Table(
        "WHO", "EXECUTIONS (used / quota)", "LEFT", "COST (used / quota)", "LEFT", "RUNNING / MAX", box=None
    )
    e, el = _fmt(t.executions, t.quota_executions_month)
    c, cl = _fmt(t.cost_usd, t.quota_cost_month_usd, money=True)
    table.add_row(f"team {slug}", e, el, c, cl, f"{t.running} / {t.max_concurrent_runs or 'unlimited'}")
    for k in u.keys:
        e, el = _fmt(k.executions, k.quota_executions_month)
        c, cl = _fmt(k.cost_usd, k.quota_cost_month_usd, money=True)
        table.add_row(
            f"key {k.name} ({k.prefix}…){' revoked' if k.revoked_at else ''}",
            e,
            el,
            c,
            cl,
            f"{k.running} / {k.max_concurrent_runs or 'unlimited'}",
        )
    console.print(f"Usage for {t.period:%B %Y}")
    console.print(table)


@app.command()
def share(
    agent: str,
    to_team: str = typer.Argument(..., metavar="TEAM"),
    move: bool = typer.Option(False, "--move", help="Archive the original after copying."),
) -> None:
    """Copy (or move) an agent's current spec into another of your teams."""
    from coherex.services import teams

    async def go():
        async with cli_context() as ctx:
            dest = await teams.team_by_slug(ctx.db, ctx.identity, to_team)
            await teams.share_agent(ctx.db, ctx.identity, ctx.team.id, agent, dest.id, move=move)
            return ctx.team.slug

    src = run_async(go())
    console.print(f"{'moved' if move else 'shared'} {agent} from {src} to {to_team}")


@app.command()
def visibility(agent: str, value: str = typer.Argument(..., metavar="team|personal")) -> None:
    """Make an agent personal (only you see it) or visible to the team."""
    from coherex.services import teams

    async def go():
        async with cli_context() as ctx:
            await teams.set_visibility(ctx.db, ctx.identity, ctx.team.id, agent, value)

    run_async(go())
    console.print(f"{agent} is now {value}")
