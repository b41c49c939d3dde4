"""`coherex keys …`: API keys of the current team."""

from __future__ import annotations

from uuid import UUID

import typer
from rich.table import Table

from coherex.cli._common import console, print_json, run_async
from coherex.cli._context import cli_context

app = typer.Typer(no_args_is_help=True)


@app.command()
def create(name: str, as_json: bool = typer.Option(False, "--json")) -> None:
    """Create an API key for the HTTP API. It is shown once; only its hash is stored."""

    from coherex.services.keys import create_key

    async def go():
        async with cli_context() as ctx:
            return await create_key(ctx.db, ctx.identity, ctx.team.id, name)

    record, key = run_async(go())
    if as_json:
        print_json({"id": str(record.id), "name": name, "key": key})
    else:
        console.print(
            f"API key [bold]{name}[/] ({record.id}):\n\n  {key}\n\n"
            "Keep it now: it is not shown again. Use it as `Authorization: Bearer <key>`."
        )


@app.command("list")
def list_() -> None:
    """The team's API keys (never the keys themselves)."""

    from coherex.services.keys import list_keys

    async def go():
        async with cli_context() as ctx:
            return await list_keys(ctx.db, ctx.identity, ctx.team.id)

    table = Table("ID", "NAME", "PREFIX", "CREATED", "LAST USED", "STATUS", box=None)
    for k in run_async(go()):
        table.add_row(
            str(k.id),
            k.name,
            k.prefix + "…",
            k.created_at.strftime("%Y-%m-%d"),
            k.last_used_at.strftime("%Y-%m-%d %H:%M") if k.last_used_at else "never",
            "revoked" if k.revoked_at else "active",
        )
    console.print(table)


@app.command()
def revoke(key_id: UUID) -> None:
    """Revoke a key at once."""

    from coherex.services.keys import revoke_key

    async def go():
        async with cli_context() as ctx:
            return await revoke_key(ctx.db, ctx.identity, ctx.team.id, key_id)

    console.print(f"revoked {key_id}" if run_async(go()) else f"no active key {key_id}")
