"""A real Postgres for tests and benchmarks: one server per session, one fresh database per test.

The server is the embedded one (in a temp dir, on a free port) unless `TEST_DATABASE_URL` points
at any other Postgres with pgvector (its user must be allowed to create databases and roles).
The schema is migrated once into a template database; each test gets
`CREATE DATABASE … TEMPLATE coherex_template` (~45 ms) and drops it after.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from coherex.errors import BackendError
from coherex.store.db import DatabaseUrls
from coherex.store.embedded import APP_USER, EmbeddedPostgres, free_port
from coherex.store.migrate import migrate

TEMPLATE = "coherex_template"


def _with_db(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


@dataclass
class TestPostgres:
    admin_url: str  # server-level admin URL (any database)
    app_url: str | None  # the non-owner login; None for an external server (use admin)
    _embedded: EmbeddedPostgres | None = None
    _tmp: Path | None = None

    @classmethod
    def start(cls) -> TestPostgres:
        external = os.environ.get("TEST_DATABASE_URL")
        if external:
            server = cls(admin_url=external, app_url=None)
        else:
            _reap_orphans()
            tmp = Path(tempfile.mkdtemp(prefix="coherex-test-pg-", dir="/tmp"))
            (tmp / "owner.pid").write_text(str(os.getpid()))
            pg = EmbeddedPostgres(tmp, free_port())
            pg.start()
            server = cls(
                admin_url=pg.url(admin=True, database="postgres"), app_url=pg.url(), _embedded=pg, _tmp=tmp
            )
        server._make_template()
        return server

    def _make_template(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"drop database if exists {TEMPLATE} with (force)")
            conn.execute(f"create database {TEMPLATE}")
            conn.execute(f"alter database {TEMPLATE} set search_path = public, extensions")
        migrate(_with_db(self.admin_url, TEMPLATE), app_user=APP_USER if self.app_url else None)

    def create_database(self) -> DatabaseUrls:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"create database {name} template {TEMPLATE}")
            conn.execute(f"alter database {name} set search_path = public, extensions")
        admin = _with_db(self.admin_url, name)
        return DatabaseUrls(app=_with_db(self.app_url, name) if self.app_url else admin, admin=admin)

    def drop_database(self, urls: DatabaseUrls) -> None:
        name = urlsplit(urls.admin).path.lstrip("/")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"drop database if exists {name} with (force)")

    def stop(self) -> None:
        if self._embedded is not None:
            self._embedded.stop()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


def _reap_orphans() -> None:
    """Stop servers left by test sessions that were killed before their teardown ran."""
    for tmp in Path("/tmp").glob("coherex-test-pg-*"):
        try:
            owner = int((tmp / "owner.pid").read_text())
        except (OSError, ValueError):
            continue  # not ours to judge
        try:
            os.kill(owner, 0)
            continue  # its session is still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        try:
            pid_lines = (tmp / "pgdata" / "postmaster.pid").read_text().splitlines()
            EmbeddedPostgres(tmp, int(pid_lines[3])).stop()
        except (OSError, ValueError, IndexError, BackendError):
            pass
        shutil.rmtree(tmp, ignore_errors=True)
