"""The queue: procrastinate on the same Postgres. Workers run executions; a maintenance task
fires schedules and recovers work whose worker died.

Exactly-once comes from the execution row, not the queue: `pending → running` is one atomic
update, so a duplicate or retried job for the same execution finds it taken and does nothing.
A worker killed with SIGKILL stops heart-beating; maintenance puts its executions back to
`pending` (or `failed` after `COHEREX_MAX_ATTEMPTS`) and queues them again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import procrastinate
import procrastinate.exceptions
import procrastinate.jobs
import psycopg

from coherex.errors import BackendError, CoherexError
from coherex.runtime import ConcurrencyLimited, RetryLater, Runtime
from coherex.settings import Settings, get_settings
from coherex.store.db import Database, Identity, resolve_urls

log = logging.getLogger(__name__)

RUN_TASK = "run_execution"
INGEST_TASK = "ingest_upload"
QUEUES = ["executions", "knowledge", "maintenance"]
#: seconds between maintenance rounds (schedules, recovery); read once, when the worker starts
MAINTENANCE_SECONDS = int(os.environ.get("COHEREX_MAINTENANCE_SECONDS", "5"))
#: a pending execution with no job for this long is queued again (in-process runs start at once)
ORPHAN_GRACE_SECONDS = float(os.environ.get("COHEREX_ORPHAN_GRACE_SECONDS", "30"))


@dataclass
class WorkerDeps:
    db: Database
    runtime: Runtime


def _register_tasks(app: procrastinate.App) -> None:
    # Defined per app: procrastinate binds tasks to the app they were registered on, and tests
    # (and the API next to an in-process worker) open several apps, one per database.

    @app.task(
        name=RUN_TASK,
        queue="executions",
        pass_context=True,
        # Only backend failures are retried (the runtime put the execution back to pending);
        # an agent's own failure is final and never raises here.
        retry=procrastinate.RetryStrategy(max_attempts=5, exponential_wait=1, retry_exceptions={RetryLater}),
    )
    async def run_execution(context: procrastinate.JobContext, execution_id: str) -> None:
        deps: WorkerDeps = context.additional_context["deps"]
        try:
            await deps.runtime.run(UUID(execution_id), retry_backend_errors=True)
        except ConcurrencyLimited:
            # later; should this fail (database gone), maintenance queues the pending run again
            await enqueue(deps.db, UUID(execution_id), delay_seconds=1)

    @app.task(name=INGEST_TASK, queue="knowledge", pass_context=True)
    async def ingest_upload(context: procrastinate.JobContext, upload_id: str) -> None:
        deps: WorkerDeps = context.additional_context["deps"]
        await ingest_queued_upload(deps.db, UUID(upload_id))

    @app.periodic(cron=f"* * * * * */{MAINTENANCE_SECONDS}", periodic_id="maintenance")
    @app.task(name="maintenance", queue="maintenance", queueing_lock="maintenance", pass_context=True)
    async def maintenance(context: procrastinate.JobContext, timestamp: int) -> None:
        deps: WorkerDeps = context.additional_context["deps"]
        await maintain(context.app, deps, datetime.fromtimestamp(timestamp, UTC))


async def maintain(app: procrastinate.App, deps: WorkerDeps, now: datetime) -> None:
    from coherex.runtime.approvals import expire_overdue
    from coherex.services.triggers import fire_due_schedules

    await fire_due_schedules(deps.db, now)  # each execution is queued with its row
    await deps.runtime.recover_stale()  # re-queued (with a job) or failed
    await expire_overdue(deps.db)  # approvals nobody decided in time: rejected (run goes on) or the run fails
    async with deps.db.session(Identity.system()) as s:
        # the safety net: a pending execution that lost its job (or never had one) gets one, once
        for execution_id in await s.executions.queue_orphans(ORPHAN_GRACE_SECONDS):
            log.warning("execution %s was pending with no job; queued it again", execution_id)
    from coherex.integrations.service import refresh_discovered_tools
    from coherex.integrations.sync import run_due_syncs

    await run_due_syncs(deps.db, now)
    await refresh_discovered_tools(deps.db, now)  # MCP / OpenAPI sources' tool lists, when stale
    # jobs whose worker stopped heart-beating: run them again (a no-op if their execution moved on)
    for job in await app.job_manager.get_stalled_jobs(
        seconds_since_heartbeat=3 * deps.runtime.settings.heartbeat_seconds
    ):
        try:
            await app.job_manager.retry_job(job)
        except procrastinate.exceptions.UniqueViolation:
            # the execution was re-queued already (recover_stale above): that job runs it; close this one
            await app.job_manager.finish_job_by_id_async(
                job.id, procrastinate.jobs.Status.FAILED, delete_job=False
            )


async def ingest_queued_upload(db: Database, upload_id: UUID) -> None:
    """Ingest a queued knowledge upload as its uploader, reporting progress on the upload row."""
    from coherex.knowledge import ingest_file

    async with db.session(Identity.system()) as s:
        claimed = await s.uploads.claim(upload_id)
    if claimed is None:
        return  # taken by another worker, or already done
    upload, data = claimed
    identity = (
        Identity.user(upload.created_by, team_id=upload.team_id) if upload.created_by else Identity.system()
    )
    latest: list = []

    async def report() -> None:
        while True:
            await asyncio.sleep(0.5)
            if latest:
                p = latest[-1]
                async with db.session(Identity.system()) as s:
                    await s.uploads.progress(upload_id, p.stage, p.done, p.total)

    reporter = asyncio.create_task(report())
    try:
        result = await ingest_file(
            db, identity, upload.team_id, upload.collection, data, upload.filename, progress=latest.append
        )
        error, document_id = None, result.document_id
    except CoherexError as exc:
        error, document_id = str(exc), None
    finally:
        reporter.cancel()
    async with db.session(Identity.system()) as s:
        await s.uploads.finish(upload_id, document_id=document_id, error=error)


async def enqueue_upload(app: procrastinate.App, upload_id: UUID) -> None:
    await app.configure_task(INGEST_TASK).defer_async(upload_id=str(upload_id))


def make_app(url: str) -> procrastinate.App:
    # Workers act as the service identity; the queue tables are closed to everyone else.
    # (procrastinate's connector checks idle connections before use by itself)
    connector = procrastinate.PsycopgConnector(
        conninfo=url, kwargs={"options": "-c role=service_role"}, min_size=1, max_size=4
    )
    app = procrastinate.App(connector=connector)
    _register_tasks(app)
    return app


@asynccontextmanager
async def open_queue(settings: Settings | None = None) -> AsyncIterator[procrastinate.App]:
    """An open queue app for deferring (API, CLI, chat)."""
    app = make_app(resolve_urls(settings or get_settings()).app)
    async with app.open_async():
        yield app


async def enqueue(db: Database, execution_id: UUID, *, delay_seconds: float = 0) -> bool:
    """Give a pending execution a worker job (False: one is waiting already, or it is not pending).
    Code that creates or re-queues an execution does this in the same transaction instead
    (`executions.create(..., queue=True)`, `executions.requeue`); this is for the rest."""
    async with db.session(Identity.system()) as s:
        return await s.executions.queue(execution_id, delay_seconds=delay_seconds)


async def run_worker(
    settings: Settings | None = None,
    *,
    concurrency: int | None = None,
    wait: bool = True,
    install_signal_handlers: bool = True,
) -> None:
    """Process jobs until stopped (or until the queue is empty, with wait=False).

    A worker outlives its database: when the connection goes away (a restart, a failover), the
    worker waits and connects again instead of exiting or hanging, so nothing needs a supervisor.
    """
    settings = settings or get_settings()
    stopping = asyncio.Event()
    if install_signal_handlers:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
    delay = 1.0
    while True:
        try:
            await _work(settings, concurrency or settings.worker_concurrency, wait, stopping)
        except (BackendError, psycopg.Error, procrastinate.exceptions.ConnectorException) as exc:
            if not wait or stopping.is_set():
                raise
            log.warning("worker lost its database (%s); connecting again in %.0f s", exc, delay)
        else:
            if not wait or stopping.is_set():
                return
            log.warning("worker stopped by itself (its database connection went away); connecting again")
        try:
            await asyncio.wait_for(stopping.wait(), timeout=delay)
            return
        except TimeoutError:
            delay = min(delay * 2, 30.0)


async def _work(settings: Settings, concurrency: int, wait: bool, stopping: asyncio.Event) -> None:
    from procrastinate.worker import Worker

    url = resolve_urls(settings).app
    async with Database(url, max_size=concurrency + 2) as db:
        runtime = Runtime(db, settings=settings)
        # Load the LLM client (and the offline model) now: done inside a run, the import would
        # block the event loop long enough to miss heartbeats.
        await asyncio.to_thread(lambda: runtime.llm)
        app = make_app(url)
        async with app.open_async():
            worker = Worker(
                app,
                queues=QUEUES,
                concurrency=concurrency,
                wait=wait,
                additional_context={"deps": WorkerDeps(db, runtime)},
                update_heartbeat_interval=settings.heartbeat_seconds,
                stalled_worker_timeout=3 * settings.heartbeat_seconds,
                install_signal_handlers=False,
                delete_jobs="successful",
                shutdown_graceful_timeout=30,
            )
            running = asyncio.create_task(worker.run())
            stop_asked = asyncio.create_task(stopping.wait())
            await asyncio.wait({running, stop_asked}, return_when=asyncio.FIRST_COMPLETED)
            if not running.done():
                worker.stop()
            stop_asked.cancel()
            await running
