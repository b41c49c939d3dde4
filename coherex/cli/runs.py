"""`coherex run | ps | logs | stop`: run agents and watch their executions."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import typer
from rich.table import Table

from coherex.cli._common import console, err_console, print_json, run_async
from coherex.cli._context import cli_context, parse_inputs
from coherex.cli._events import Nesting, format_summary
from coherex.errors import UserError


def run(
    target: str = typer.Argument(
        ...,
        help="An agent name, a spec file (saved as a version first), or a registry "
        "reference (pulled first: `coherex pull`).",
    ),
    inputs: list[str] = typer.Option([], "--input", "-i", help="key=value, repeatable."),
    version: int | None = typer.Option(None, "--version", "-v", help="Run this version (default: current)."),
    files: list[Path] = typer.Option(
        [], "--file", "-f", help="Put this file in the sandbox's working directory."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the final execution and its events as JSON."),
) -> None:
    """Run an agent now, streaming every step. Exit code: 0 completed, 3 completed with errors (the
    answer came after a failed tool call nothing fixed), 1 otherwise."""
    from coherex.cli.distribution import looks_like_reference as is_reference
    from coherex.runtime import Runtime
    from coherex.runtime.tools import with_file_input
    from coherex.services.agents import require_agent, require_version_of, save_spec
    from coherex.spec import load_spec

    values = parse_inputs(inputs)
    uploads = {}
    for f in files:
        if not f.is_file():
            raise UserError(f"--file {f}: no such file")
        uploads[f.name] = f.read_bytes()

    async def go():
        async with cli_context() as ctx:
            pulled = None
            if is_reference(target):  # an OCI reference: pull it first (a no-op when already pulled)
                from coherex.distribution.service import pull

                pulled = await pull(ctx.db, ctx.identity, ctx.team.id, target, docker_config=True)
            path = Path(target)
            if pulled is not None:
                agent = await require_agent(ctx.db, ctx.identity, ctx.team.id, pulled.agent)
            elif path.suffix in (".yaml", ".yml", ".json") or path.exists():
                from coherex.spec import read_file

                saved = await save_spec(
                    ctx.db, ctx.identity, ctx.team.id, read_file(path), filename=str(path)
                )
                agent = saved.agent
            else:
                agent = await require_agent(ctx.db, ctx.identity, ctx.team.id, target)
            spec = load_spec((await require_version_of(ctx.db, ctx.identity, agent, version)).spec)
            runtime = Runtime(ctx.db)
            execution = await runtime.create(
                ctx.identity,
                ctx.team.id,
                agent,
                version=version,
                trigger="cli",
                inputs=with_file_input(spec, values, list(uploads)),
            )
            events = []
            status = None if as_json else console.status(f"running {agent.name}…", spinner="dots")
            nesting = Nesting()

            def show(event) -> None:
                events.append(event)
                if status is not None:
                    console.print(nesting.format(event))
                    if event.execution_id == execution.id:
                        status.update(f"running {agent.name}… step {event.seq}")

            if not as_json:
                console.print(f"[dim]execution {execution.id} · {agent.name} v{execution.agent_version}[/]")
            loop = asyncio.get_running_loop()
            # Ctrl-C asks the run to stop (recorded as cancelled) instead of killing the CLI mid-write.
            loop.add_signal_handler(
                signal.SIGINT, lambda: asyncio.ensure_future(runtime.stop(ctx.identity, execution.id))
            )
            try:
                if status is not None:
                    with status:
                        final = await runtime.run(execution.id, listeners=[show], files=uploads)
                else:
                    final = await runtime.run(execution.id, listeners=[show], files=uploads)
            finally:
                loop.remove_signal_handler(signal.SIGINT)
            return final, events

    final, events = run_async(go())
    if as_json:
        print_json(
            {
                "execution": final.model_dump(mode="json"),
                "events": [e.model_dump(mode="json") for e in events],
            }
        )
    else:
        if final.output and final.output.get("text"):
            console.print()
            console.print(final.output["text"], markup=False)
            if final.output.get("sources"):
                from coherex.runtime.citations import format_sources

                console.print()
                console.print(format_sources(final.output["sources"]).replace("**", ""), markup=False)
        console.print(format_summary(final))
        if final.status == "waiting_approval":
            console.print(
                f"[magenta]A tool call waits for approval:[/] `coherex approvals list`; after the decision a "
                f"worker goes on (`coherex logs -f {str(final.id)[:12]}`)."
            )
        if final.error:
            err_console.print(f"[red]{final.error}[/]", markup=True)
    raise typer.Exit({"completed": 0, "completed_with_errors": 3}.get(final.outcome or final.status, 1))


def ps(
    all_: bool = typer.Option(False, "--all", "-a", help="Include finished executions."),
    agent: str | None = typer.Option(None, "--agent", help="Only this agent's executions."),
    limit: int = typer.Option(20, "--limit", "-n"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List executions (running and pending; -a for all)."""

    from coherex.services.runs import runs_with_agent_names

    async def go():
        async with cli_context() as ctx:
            return await runs_with_agent_names(
                ctx.db, ctx.identity, ctx.team.id, agent, limit * (1 if all_ else 5)
            )

    rows, names = run_async(go())
    if not all_:
        rows = [r for r in rows if not r.finished][:limit]
    if as_json:
        print_json([r.model_dump(mode="json") for r in rows])
        return
    if not rows:
        console.print("No running executions." + ("" if all_ else " (`coherex ps -a` shows finished ones.)"))
        return
    table = Table(
        "ID", "AGENT", "VERSION", "STATUS", "TOOL ERRORS", "TRIGGER", "CREATED", "DURATION", "COST", box=None
    )
    for r in rows:
        table.add_row(
            str(r.id)[:12],
            names.get(r.agent_id, "?"),
            str(r.agent_version),
            r.shown_status,
            str(r.tool_errors or ""),
            r.trigger,
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{r.duration_ms / 1000:.1f}s" if r.duration_ms is not None else "",
            f"${float(r.cost_usd):.4f}",
        )
    console.print(table)


def logs(
    execution: str = typer.Argument(..., help="Execution id (or a unique prefix)."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new steps until the run ends."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event (JSON lines)."),
) -> None:
    """Print the steps of an execution."""
    from coherex.services.follow import follow_tree
    from coherex.services.runs import find_run
    from coherex.store.models import Execution

    nesting = Nesting()

    async def go() -> Execution:
        async with cli_context() as ctx:
            ex = await find_run(ctx.db, ctx.identity, ctx.team.id, execution)
            async for item in follow_tree(ctx.db, ctx.identity, ex.id, live=follow):
                if isinstance(item, Execution):
                    ex = item  # the last item: the run as it ended (or is, without --follow)
                elif as_json:
                    print(json.dumps(item.model_dump(mode="json")), flush=True)
                else:
                    console.print(nesting.format(item))
            return ex

    final = run_async(go())
    if not as_json:
        console.print(
            format_summary(final) if final.finished else f"[cyan]{final.status}[/] · execution {final.id}"
        )


def stop(execution: str = typer.Argument(..., help="Execution id (or a unique prefix).")) -> None:
    """Stop a running execution (takes effect within a second; its sandbox is killed)."""
    from coherex.runtime import Runtime
    from coherex.services.runs import find_run

    async def go():
        async with cli_context() as ctx:
            ex = await find_run(ctx.db, ctx.identity, ctx.team.id, execution)
            if ex.finished:
                return ex, False
            return await Runtime(ctx.db).stop(ctx.identity, ex.id), True

    ex, asked = run_async(go())
    if not asked:
        console.print(f"execution {ex.id} already ended ({ex.status}); nothing to stop")
    elif ex.status == "cancelled":
        console.print(f"cancelled execution {ex.id} before it started")
    else:
        console.print(f"stop requested for execution {ex.id}; it ends within a second")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("ps")(ps)
    app.command("logs")(logs)
    app.command("stop")(stop)
