"""Commands for spec files: validate, schema, templates, import (from CrewAI and Letta)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coherex.cli._common import console, err_console, print_json
from coherex.errors import CoherexError, Conflict
from coherex.spec import json_schema_text, read_file, to_yaml, validate
from coherex.spec.importers import ImportResult
from coherex.spec.templates import get_template, list_templates

templates_app = typer.Typer(help="The template library: ready-to-run agent specs.", no_args_is_help=True)
import_app = typer.Typer(help="Turn agents of other platforms into coherex specs.", no_args_is_help=True)


def validate_cmd(
    files: Annotated[list[Path], typer.Argument(help="spec files (YAML or JSON)")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Check spec files and list every problem; exit 1 when any file has an error."""
    results = {}
    for path in files:
        try:
            report = validate(read_file(path), filename=str(path))
            results[str(path)] = report.to_dict()
        except CoherexError as exc:  # unreadable file
            results[str(path)] = {
                "valid": False,
                "problems": [{"path": "", "message": exc.message, "hint": exc.hint, "severity": "error"}],
            }
    if as_json:
        print_json(results)
    else:
        for name, result in results.items():
            if result["valid"] and not result["problems"]:
                console.print(f"{name}: valid")
            for p in result["problems"]:
                where = f"{p['path']}: " if p["path"] else ""
                hint = f" ({p['hint']})" if p["hint"] else ""
                label = "" if p["severity"] == "error" else "warning: "
                (err_console if p["severity"] == "error" else console).print(
                    f"{name}: {where}{label}{p['message']}{hint}", markup=False
                )
    invalid = [r for r in results.values() if not r["valid"]]
    if invalid:
        if not as_json:
            errors = sum(p["severity"] == "error" for r in invalid for p in r["problems"])
            err_console.print(f"{len(invalid)} of {len(results)} file(s) invalid, {errors} error(s)")
        raise typer.Exit(1)


def schema_cmd() -> None:
    """Print the JSON Schema of spec files (for editors)."""
    print(json_schema_text(), end="")


@templates_app.command("list")
def templates_list() -> None:
    """List the templates."""
    for template in list_templates():
        console.print(f"[bold]{template.name}[/]  {template.description}")


@templates_app.command("show")
def templates_show(name: Annotated[str, typer.Argument(help="template name")]) -> None:
    """Print a template (save it to a file, edit it, `coherex validate` it)."""
    print(get_template(name).text(), end="")


def _write(result: ImportResult, outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    targets = [(outdir / f"{spec.name}.yaml", spec) for spec in result.specs]
    existing = [str(path) for path, _ in targets if path.exists()]
    if existing:
        raise Conflict(f"would overwrite {', '.join(existing)}", hint="choose another directory with -o")
    for path, spec in targets:
        path.write_text(to_yaml(spec), encoding="utf-8")
        console.print(f"wrote {path}")
    for warning in result.warnings:
        err_console.print(f"warning: {warning}", markup=False)


OutDir = Annotated[Path, typer.Option("-o", "--output", help="directory for the spec files")]


@import_app.command("crewai")
def import_crewai_cmd(
    directory: Annotated[Path, typer.Argument(help="CrewAI project (with agents.yaml and tasks.yaml)")],
    outdir: OutDir = Path("."),
) -> None:
    """Import a CrewAI project: one spec per agent."""
    from coherex.spec.importers.crewai import import_crewai

    _write(import_crewai(directory), outdir)


@import_app.command("letta")
def import_letta_cmd(
    file: Annotated[Path, typer.Argument(help="Letta agent file (.af)")],
    outdir: OutDir = Path("."),
) -> None:
    """Import a Letta agent file."""
    from coherex.spec.importers.letta import import_letta

    _write(import_letta(file), outdir)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_cmd)
    app.command("schema")(schema_cmd)
    app.add_typer(templates_app, name="templates")
    app.add_typer(import_app, name="import")
