"""Long-running processes: `coherex web`, `coherex worker`, `coherex up`."""

from __future__ import annotations

import typer

from coherex.cli._common import console, run_async
from coherex.settings import get_settings


def worker(
    concurrency: int | None = typer.Option(None, "--concurrency", "-c", help="Runs at once (COHEREX_WORKER_CONCURRENCY)."),
    drain: bool = typer.Option(False, "--drain", help="Exit when the queue is empty instead of waiting for work."),
) -> None:
    """Process queued executions, schedules and recovery. Run as many as you like, on any machine."""
    from coherex.jobs import run_worker

    settings = get_settings()
    console.print(f"worker: concurrency {concurrency or settings.worker_concurrency}, "
                  f"heartbeat {settings.heartbeat_seconds:g}s — Ctrl-C to stop")
    run_async(run_worker(settings, concurrency=concurrency, wait=not drain))


def web(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port", "-p"),
    chat: bool = typer.Option(True, "--chat/--no-chat", help="Mount the Chainlit chat at /chat."),
) -> None:
    """Serve the HTTP API (/api, docs at /docs) and the chat (/chat)."""
    import uvicorn

    from coherex.web import create_app

    console.print(f"Coherex on http://{host}:{port}  (API docs: /docs{', chat: /chat' if chat else ''})")
    uvicorn.run(create_app(chat=chat), host=host, port=port, log_level="warning")


def openapi() -> None:
    """Print the HTTP API's OpenAPI document (committed as schema/openapi.json)."""
    import json

    from coherex.web import create_app

    print(json.dumps(create_app(chat=False).openapi(), indent=2, sort_keys=True))


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("web")(web)
    app.command("openapi")(openapi)
