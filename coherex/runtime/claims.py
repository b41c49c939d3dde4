"""Holding the claim on running executions: heartbeats and stop requests from a thread of its own.

A run claims its execution with `pending → running` (owner: worker id + attempt number). Other
processes take it as dead after 3 missed heartbeats and hand it to another worker, so the
heartbeats must not depend on the run's event loop: a CPU-bound step (the offline model
generating, a slow tool) can starve that loop for longer than the window, and the run was then
executed twice. One daemon thread per process and database beats for every run of the process
with one statement, on its own connection, and reads their stop flags and owners every
`POLL_SECONDS`; each run's watcher only reads what the thread found.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from uuid import UUID

import psycopg

log = logging.getLogger(__name__)

#: how often stop requests and lost claims are looked for (a stop lands well within 1 s)
POLL_SECONDS = 0.2
#: an idle keeper closes its connection after this long without runs
IDLE_CLOSE_SECONDS = 5.0


@dataclass
class Claim:
    """One run's hold on its execution, updated by the keeper's thread."""

    execution_id: UUID
    worker_id: str
    attempt: int
    cancel_requested: bool = False
    lost: bool = False  # the execution is no longer this run's (another worker took it, or it ended)


class ClaimKeeper:
    """Beats and polls for every claim registered with it (one per database URL and process)."""

    _instances: dict[tuple[str, float], ClaimKeeper] = {}
    _instances_lock = threading.Lock()

    @classmethod
    def for_database(cls, url: str, heartbeat_seconds: float) -> ClaimKeeper:
        with cls._instances_lock:
            keeper = cls._instances.get((url, heartbeat_seconds))
            if keeper is None:
                keeper = cls._instances[(url, heartbeat_seconds)] = cls(url, heartbeat_seconds)
            return keeper

    def __init__(self, url: str, heartbeat_seconds: float):
        self.url = url
        self.heartbeat_seconds = heartbeat_seconds
        self._claims: dict[UUID, Claim] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, claim: Claim) -> None:
        with self._lock:
            self._claims[claim.execution_id] = claim
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="coherex-claims", daemon=True)
                self._thread.start()
        self._wake.set()

    def release(self, claim: Claim) -> None:
        with self._lock:
            if self._claims.get(claim.execution_id) is claim:
                del self._claims[claim.execution_id]

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        conn: psycopg.Connection | None = None
        last_beat = 0.0
        idle_since: float | None = None
        while True:
            with self._lock:
                claims = list(self._claims.values())
            if not claims:
                idle_since = idle_since or time.monotonic()
                if conn is not None and time.monotonic() - idle_since > IDLE_CLOSE_SECONDS:
                    conn.close()
                    conn = None
                self._wake.wait(POLL_SECONDS * 5)
                self._wake.clear()
                continue
            idle_since = None
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
                    conn.execute("set role service_role")
                    last_beat = 0.0
                beat = time.monotonic() - last_beat >= self.heartbeat_seconds
                self._check(conn, claims, beat=beat)
                if beat:
                    last_beat = time.monotonic()
            except psycopg.Error as exc:
                # the database is away: runs go on (their own writes fail and are retried); beat on return
                log.debug("claim keeper: %s", exc)
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(POLL_SECONDS * 5)
                continue
            time.sleep(POLL_SECONDS)

    @staticmethod
    def _check(conn: psycopg.Connection, claims: list[Claim], *, beat: bool) -> None:
        ids = [c.execution_id for c in claims]
        if beat:
            # only rows this run still owns are refreshed: a claim that moved on is never kept alive
            rows = conn.execute(
                "update public.agent_executions e set heartbeat_at = now() "
                "from unnest(%s::uuid[], %s::text[], %s::int[]) as c(id, worker, attempt) "
                "where e.id = c.id and e.status = 'running' and e.worker_id = c.worker and e.attempts = "
                "c.attempt returning e.id, e.cancel_requested",
                (ids, [c.worker_id for c in claims], [c.attempt for c in claims]),
            ).fetchall()
            held = {r[0]: r[1] for r in rows}
            for c in claims:
                if c.execution_id in held:
                    c.cancel_requested = c.cancel_requested or held[c.execution_id]
                else:
                    c.lost = True
            return
        rows = conn.execute(
            "select id, status, worker_id, attempts, cancel_requested from public.agent_executions "
            "where id = any(%s)",
            (ids,),
        ).fetchall()
        found = {r[0]: r for r in rows}
        for c in claims:
            row = found.get(c.execution_id)
            if row is None or row[1] != "running" or row[2] != c.worker_id or row[3] != c.attempt:
                c.lost = True
            elif row[4]:
                c.cancel_requested = True
