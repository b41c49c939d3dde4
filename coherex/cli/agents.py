"""`coherex agents …`: apply spec files, list, show, version history, diff, export."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from coherex.cli._common import console, print_json, run_async
from coherex.cli._context import cli_context

app = typer.Typer(no_args_is_help=True)


@app.command()
def apply(
    file: Path = typer.Argument(..., help="A coherex/v1 spec file (YAML or JSON)."),
    message: str = typer.Option("", "-m", "--message", help="What changed, kept with the version."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create the agent, or save the file as its next version (nothing happens if unchanged)."""
    from coherex.services.agents import save_spec
    from coherex.spec import read_file

    data = read_file(file)

    async def go():
        async with cli_context() as ctx:
            return await save_spec(
                ctx.db, ctx.identity, ctx.team.id, data, filename=str(file), message=message
            )

    saved = run_async(go())
    if as_json:
        print_json(
            {
                "agent": saved.agent.name,
                "id": str(saved.agent.id),
                "version": saved.version.version,
                "created_agent": saved.created_agent,
                "created_version": saved.created_version,
            }
        )
    elif saved.created_agent:
        console.print(f"[green]created[/] agent {saved.agent.name} (version 1)")
    elif saved.created_version:
        console.print(f"[green]updated[/] agent {saved.agent.name} → version {saved.version.version}")
    else:
        console.print(f"agent {saved.agent.name} unchanged (still version {saved.version.version})")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json")) -> None:
    """The team's agents."""
    from coherex.services.agents import list_agents

    async def go():
        async with cli_context() as ctx:
            return await list_agents(ctx.db, ctx.identity, ctx.team.id)

    agents = run_async(go())
    if as_json:
        print_json([a.model_dump(mode="json") for a in agents])
        return
    if not agents:
        console.print(
            "No agents yet. Create one with `coherex agents apply FILE` "
            "(`coherex templates list` shows ready-made specs)."
        )
        return
    table = Table("NAME", "VERSION", "STATUS", "UPDATED", "DESCRIPTION", box=None)
    for a in agents:
        table.add_row(
            a.name,
            str(a.current_version),
            a.status,
            a.updated_at.strftime("%Y-%m-%d %H:%M"),
            a.description[:60],
        )
    console.print(table)


@app.command()
def show(
    name: str,
    version: int | None = typer.Option(None, "--version", "-v", help="A version number (default: current)."),
) -> None:
    """Print a version of the agent's spec as YAML."""
    print(_version(name, version).spec_yaml, end="")


@app.command()
def export(
    name: str,
    output: Path | None = typer.Option(None, "-o", "--output", help="Write to this file instead of stdout."),
    version: int | None = typer.Option(None, "--version", "-v"),
) -> None:
    """Export the spec file (portable: no ids, no credentials), ready for git or another install."""
    text = _version(name, version).spec_yaml
    if output:
        output.write_text(text)
        console.print(f"wrote {output}")
    else:
        print(text, end="")


@app.command()
def versions(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """The agent's version history."""
    from coherex.services.agents import require_agent, version_history

    async def go():
        async with cli_context() as ctx:
            agent = await require_agent(ctx.db, ctx.identity, ctx.team.id, name)
            return agent, await version_history(ctx.db, ctx.identity, agent)

    agent, history = run_async(go())
    if as_json:
        print_json(
            [
                {
                    "version": v.version,
                    "created_at": v.created_at,
                    "message": v.message,
                    "checksum": v.checksum,
                }
                for v in history
            ]
        )
        return
    table = Table("VERSION", "CREATED", "MESSAGE", box=None)
    for v in history:
        mark = " (current)" if v.version == agent.current_version else ""
        table.add_row(f"{v.version}{mark}", v.created_at.strftime("%Y-%m-%d %H:%M:%S"), v.message)
    console.print(table)


@app.command()
def diff(name: str, a: int, b: int) -> None:
    """Unified diff between two versions of the agent's spec."""
    from coherex.spec import diff_specs

    va, vb = _version(name, a), _version(name, b)
    text = diff_specs(va.spec_yaml, vb.spec_yaml, f"{name} v{a}", f"{name} v{b}")
    print(text or f"versions {a} and {b} are identical", end="" if text else "\n")


@app.command()
def rm(name: str, yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Delete the agent with all its versions and runs."""
    if not yes:
        typer.confirm(f"Delete agent {name} with all its versions and runs?", abort=True)

    from coherex.services.agents import delete_agent, require_agent

    async def go():
        async with cli_context() as ctx:
            await delete_agent(
                ctx.db, ctx.identity, await require_agent(ctx.db, ctx.identity, ctx.team.id, name)
            )

    run_async(go())
    console.print(f"deleted agent {name}")


def _version(name: str, version: int | None):
    from coherex.services.agents import require_agent, require_version_of

    async def go():
        async with cli_context() as ctx:
            agent = await require_agent(ctx.db, ctx.identity, ctx.team.id, name)
            return await require_version_of(ctx.db, ctx.identity, agent, version)

    return run_async(go())
