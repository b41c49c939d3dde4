"""`coherex db …`: the embedded server and migrations."""

from __future__ import annotations

import typer

from coherex.cli._common import console, print_json
from coherex.errors import UserError
from coherex.settings import get_settings

app = typer.Typer(no_args_is_help=True)


def _embedded():
    from coherex.store.embedded import EmbeddedPostgres

    s = get_settings()
    if not s.embedded_db:
        raise UserError(
            "DATABASE_URL is set, so Coherex uses that server and manages no embedded one.",
            hint="Unset DATABASE_URL to use the embedded database.",
        )
    return EmbeddedPostgres(s.data_path, s.db_port)


@app.command()
def start() -> None:
    """Start the embedded Postgres+pgvector server (created on first use)."""
    console.print(_embedded().start())


@app.command()
def stop() -> None:
    """Stop the embedded server. Data stays in the data dir."""
    console.print(_embedded().stop())


@app.command()
def url(admin: bool = typer.Option(False, help="The migration (owner) URL instead of the app's.")) -> None:
    """Print the connection URL (contains a password: keep it to yourself)."""
    from coherex.store.db import resolve_urls

    urls = resolve_urls()
    print(urls.admin if admin else urls.app)


@app.command()
def migrate() -> None:
    """Apply pending migrations from supabase/migrations (idempotent)."""
    from coherex.store.db import resolve_urls
    from coherex.store.embedded import APP_USER
    from coherex.store.migrate import migrate as run

    s = get_settings()
    done = run(resolve_urls(s).admin, app_user=APP_USER if s.embedded_db else None)
    if done:
        for m in done:
            console.print(f"applied {m.path.name}")
        console.print(f"[green]{len(done)} migration(s) applied.[/]")
    else:
        console.print("Database schema is up to date; nothing to apply.")


@app.command()
def snapshot(
    check: bool = typer.Option(False, "--check", help="Only say whether the file is stale (exit 1 if so)."),
) -> None:
    """Regenerate schema/current.sql, the readable live schema, from a freshly migrated database."""
    from coherex.store.snapshot import main

    raise typer.Exit(main(["--check"] if check else []))


@app.command()
def status(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Say where the database is, whether it runs, and which migrations are pending."""
    from coherex.store.db import resolve_urls
    from coherex.store.migrate import state

    s = get_settings()
    info: dict = {"mode": "embedded" if s.embedded_db else "external"}
    if s.embedded_db:
        st = _embedded().status()
        info.update(
            running=st.running, pid=st.pid, port=st.port, data_dir=str(st.pgdata), postgres_version=st.version
        )
        if not st.running:
            if as_json:
                print_json(info)
            else:
                console.print(
                    f"Embedded database: [yellow]not running[/] (data dir {st.pgdata}).\n"
                    "Start it with `coherex db start`."
                )
            raise typer.Exit(1)
    ms = state(resolve_urls(s).admin)
    info.update(applied=len(ms.applied), pending=[m.path.name for m in ms.pending], changed=ms.changed)
    if as_json:
        print_json(info)
        return
    if s.embedded_db:
        console.print(
            f"Embedded database: [green]running[/] (pid {info['pid']}, 127.0.0.1:{info['port']}, "
            f"PostgreSQL {info['postgres_version']}, data in {info['data_dir']})"
        )
    else:
        console.print("External database from DATABASE_URL: [green]reachable[/]")
    console.print(f"Migrations: {len(ms.applied)} applied, {len(ms.pending)} pending")
    for name in info["pending"]:
        console.print(f"  pending: {name}  (run `coherex db migrate`)")
    for v in ms.changed:
        console.print(f"  [red]changed after apply:[/] {v}")
