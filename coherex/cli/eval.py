"""`coherex eval builder CASES.jsonl`: how well the builder turns requests into specs, on the
configured model (OPENAI_API_KEY / OPENAI_BASE_URL, or the offline one)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import typer
from rich.table import Table

from coherex.cli._common import console, print_json, run_async

app = typer.Typer(no_args_is_help=True)


@app.command()
def builder(
    cases_file: Path = typer.Argument(..., help="JSON lines: request, answers, data_sources, expect."),
    only: list[str] = typer.Option([], "--case", help="Run only these case ids."),
    as_json: bool = typer.Option(False, "--json"),
    output: Path = typer.Option(None, "--output", "-o", help="Also write the report as JSON here."),
) -> None:
    """Run every case through the real builder; report valid specs, properties matched, turns,
    tokens, cost and wall time, per case and in total."""
    from coherex.builder.evaluate import load_cases, run_case, totals
    from coherex.cli._context import cli_context
    from coherex.errors import UserError
    from coherex.llm import get_llm_client

    if not cases_file.is_file():
        raise UserError(f"{cases_file}: no such file.")
    cases = [c for c in load_cases(cases_file) if not only or c["id"] in only]

    async def go():
        llm = get_llm_client()
        results = []
        async with cli_context() as ctx:
            for case in cases:
                result = await run_case(ctx.db, ctx.user.id, case, llm)
                results.append(result)
                if not as_json:
                    mark = (
                        "[green]✓[/]"
                        if result.hit and not result.failed
                        else "[yellow]~[/]"
                        if result.hit
                        else "[red]✗[/]"
                    )
                    console.print(
                        f"{mark} {result.id}: {result.matched}/{result.checks} properties, "
                        f"{result.turns} turns, {result.tokens} tokens, {result.seconds:.1f} s"
                        + (f"  [dim]{'; '.join(result.failed)}[/]" if result.failed else "")
                        + (f"  [red]{result.error}[/]" if result.error else "")
                    )
        return results

    results = run_async(go())
    report = {"cases": [asdict(r) for r in results], "total": totals(results)}
    if output:
        output.write_text(json.dumps(report, indent=2) + "\n")
    if as_json:
        print_json(report)
        return
    t = report["total"]
    table = Table(
        "cases",
        "valid specs",
        "right template/tools",
        "properties",
        "turns",
        "turn p50/p95",
        "tokens",
        "cost",
        "wall time",
    )
    p50, p95 = (f"{t[k] / 1000:.2f}" if t[k] is not None else "-" for k in ("turn_ms_p50", "turn_ms_p95"))
    table.add_row(
        str(t["cases"]),
        f"{t['valid']}/{t['cases']}",
        f"{t['hits']}/{t['cases']}",
        f"{t['properties_matched']}/{t['properties']}",
        str(t["turns"]),
        f"{p50}/{p95} s",
        str(t["tokens"]),
        f"${t['cost_usd']:.4f}",
        f"{t['seconds']:.1f} s",
    )
    console.print(table)
