"""`coherex demo seed`: synthetic activity for the dashboard on a fresh machine."""

from __future__ import annotations

import time

import typer

from coherex.cli._common import console, print_json, run_async
from coherex.cli._context import cli_context
from coherex.errors import UserError

app = typer.Typer(no_args_is_help=True)


@app.command()
def seed(
    executions: int = typer.Option(5000, "--executions", "-n", help="How many executions to generate."),
    days: int = typer.Option(30, "--days", help="Spread them over this many days back from now."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Fill your team with demo people, agents (with versions), data sources, executions with their
    steps and costs, a knowledge collection and audit entries. Safe to run again (adds executions)."""
    from coherex.testing.demo import DEMO_PASSWORD
    from coherex.testing.demo import seed as seed_team

    if executions < 0 or days < 1:
        raise UserError("--executions must be 0 or more and --days at least 1.")
    started = time.perf_counter()

    async def go():
        async with cli_context() as ctx:
            return ctx, await seed_team(ctx.db, ctx.team.id, ctx.user.id, executions=executions, days=days)

    ctx, report = run_async(go())
    seconds = round(time.perf_counter() - started, 2)
    if as_json:
        print_json(
            {
                "team": ctx.team.slug,
                "agents": report.agents,
                "executions": report.executions,
                "documents": report.documents,
                "seconds": seconds,
            }
        )
        return
    console.print(
        f"[green]seeded[/] team {ctx.team.slug}: {report.agents} agents, {report.executions:,} executions, "
        f"{report.documents} documents in {seconds} s"
    )
    console.print(
        f"Demo people sign in with password [bold]{DEMO_PASSWORD!r}[/] "
        "(maria@demo.coherex.dev, jon@demo.coherex.dev, li@demo.coherex.dev). "
        "Open the dashboard: `streamlit run dashboard_app.py`."
    )
