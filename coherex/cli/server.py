"""Long-running processes: `coherex web`, `coherex worker`, `coherex up`."""

from __future__ import annotations

import typer

from coherex.cli._common import console, run_async
from coherex.settings import get_settings


def worker(
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-c", help="Runs at once (COHEREX_WORKER_CONCURRENCY)."
    ),
    drain: bool = typer.Option(
        False, "--drain", help="Exit when the queue is empty instead of waiting for work."
    ),
) -> None:
    """Process queued executions, schedules and recovery. Run as many as you like, on any machine."""
    from coherex.jobs import run_worker

    settings = get_settings()
    console.print(
        f"worker: concurrency {concurrency or settings.worker_concurrency}, "
        f"heartbeat {settings.heartbeat_seconds:g}s — Ctrl-C to stop"
    )
    run_async(run_worker(settings, concurrency=concurrency, wait=not drain))


def web(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port", "-p"),
    chat: bool = typer.Option(True, "--chat/--no-chat", help="Mount the Chainlit chat at /chat."),
) -> None:
    """Serve the HTTP API (/api, docs at /docs) and the chat (/chat)."""
    import uvicorn

    from coherex.api.app import create_app

    # the app opens the database at startup; a failure there would reach the terminal as a
    # traceback from the server, so check first and let the CLI print the message and hint
    run_async(_database_reachable())
    console.print(f"Coherex on http://{host}:{port}  (API docs: /docs{', chat: /chat' if chat else ''})")
    uvicorn.run(create_app(chat=chat), host=host, port=port, log_level="warning")


async def _database_reachable() -> None:
    from coherex.store.db import Database

    async with Database.from_settings(get_settings()):
        pass


def up(
    port: int = typer.Option(8000, "--port", "-p", help="Port of the chat and API."),
    dashboard_port: int = typer.Option(8501, "--dashboard-port", help="Port of the dashboard."),
) -> None:
    """Run the whole platform on this machine: database, sandbox server, chat + API, dashboard, worker.

    Logs of every process are shown together, each line prefixed with its name; Ctrl-C stops all.
    """
    import os
    import sys

    from coherex.cli.supervisor import Supervisor

    settings = get_settings()
    if settings.embedded_db:
        from coherex.store.embedded import APP_USER, EmbeddedPostgres
        from coherex.store.migrate import migrate

        pg = EmbeddedPostgres(settings.data_path, settings.db_port)
        started_db = not pg.status().running
        console.print(pg.start())
        done = migrate(pg.url(admin=True), app_user=APP_USER)
        console.print(
            f"database schema: {len(done)} migration(s) applied" if done else "database schema up to date"
        )
    _ensure_admin_login(settings)

    me = [sys.executable, "-m", "coherex"]
    # one configuration for every process, wherever `up` was started: this directory's .env and
    # the data dir as an absolute path (the dashboard runs in the project for its .streamlit/)
    from dotenv import dotenv_values

    from coherex import resources

    dotenv = {k: v for k, v in dotenv_values(".env").items() if v is not None}
    procs = Supervisor(env={**dotenv, **os.environ, "COHEREX_DATA_DIR": str(settings.data_path)})
    if settings.sandbox == "local":
        procs.add("sandbox", [*me, "sandbox", "serve"])
    procs.add("web", [*me, "web", "--port", str(port)], env={"COHEREX_PRELOAD_MODEL": "1"})
    procs.add("worker", [*me, "worker"])
    procs.add(
        "dashboard",
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(resources.path("dashboard_app.py")),
            "--server.port",
            str(dashboard_port),
            "--server.address",
            "127.0.0.1",
        ],
        cwd=str(resources.root()),
    )
    console.print(
        f"\n[bold]Coherex is starting[/]\n  chat       http://127.0.0.1:{port}/chat\n"
        f"  API docs   http://127.0.0.1:{port}/docs\n  dashboard  http://127.0.0.1:{dashboard_port}\n"
        "Ctrl-C stops everything.\n"
    )
    code = procs.run()
    if settings.embedded_db and started_db:
        console.print(pg.stop())  # what `up` started, it stops; data stays in the data dir
    raise typer.Exit(code)


def _ensure_admin_login(settings) -> None:
    """On a fresh install, a login for the chat and dashboard, with its password written to the data dir."""
    import secrets

    from coherex.cli._context import DEFAULT_USER, resolve_context
    from coherex.services.users import set_password
    from coherex.store.db import Database

    password_file = settings.data_path / "admin-password"

    async def go() -> bool:
        async with Database.from_settings(settings) as db:
            ctx = await resolve_context(db)
            if password_file.exists():
                return False
            password = secrets.token_urlsafe(12)
            await set_password(db, ctx.user.id, password)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
            return True

    created = run_async(go())
    note = "created" if created else "kept"
    console.print(
        f"login: {DEFAULT_USER} — password {note} in {password_file} (add people with `coherex users add`)"
    )


def openapi() -> None:
    """Print the HTTP API's OpenAPI document (committed as schema/openapi.json)."""
    import json

    from coherex.api.app import create_app

    print(json.dumps(create_app(chat=False).openapi(), indent=2, sort_keys=True))


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("web")(web)
    app.command("openapi")(openapi)
    app.command("up")(up)
