"""The embedded database through the real `coherex db` command: first start, restarts, clear
messages for the usual mistakes, and no data lost on the way."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from coherex.store.embedded import EmbeddedPostgres, free_port
from coherex.store.migrate import MIGRATIONS_DIR, migrate, state


def coherex(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coherex", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def data_env(tmp_path_factory):
    # outside pytest's tmp (under /tmp already) so the db user can traverse it
    data = tmp_path_factory.mktemp("embedded")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env.update(COHEREX_DATA_DIR=str(data), COHEREX_DB_PORT=str(free_port()))
    yield env, Path(data)
    EmbeddedPostgres(Path(data), int(env["COHEREX_DB_PORT"])).stop()
    shutil.rmtree(data, ignore_errors=True)


def test_start_migrate_status_and_restart_keep_data(data_env):
    env, data = data_env
    first = coherex(env, "db", "start")
    assert first.returncode == 0, first.stderr
    assert "created and started" in first.stdout
    assert "applied" in coherex(env, "db", "migrate").stdout
    again = coherex(env, "db", "migrate")
    assert again.returncode == 0 and "up to date" in again.stdout

    status = json.loads(coherex(env, "db", "status", "--json").stdout)
    assert (
        status["running"]
        and status["pending"] == []
        and status["applied"] > len(list(MIGRATIONS_DIR.glob("*.sql")))
    )

    url = coherex(env, "db", "url", "--admin").stdout.strip()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("insert into public.teams (slug, name) values ('kept', 'Kept')")

    running = coherex(env, "db", "start")
    assert running.returncode == 0 and "already running" in running.stdout

    assert coherex(env, "db", "stop").returncode == 0
    stopped = coherex(env, "db", "status")
    assert stopped.returncode == 1 and "not running" in stopped.stdout
    assert "started" in coherex(env, "db", "start").stdout
    with psycopg.connect(url) as conn:
        assert conn.execute("select name from public.teams where slug = 'kept'").fetchone() == ("Kept",)


def test_port_taken_is_a_clear_message(data_env):
    env, _ = data_env
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        env = {**env, "COHEREX_DB_PORT": str(blocker.getsockname()[1])}
        res = coherex(env, "db", "start")
    assert res.returncode == 1
    assert "already in use" in res.stderr and "COHEREX_DB_PORT" in res.stderr
    assert "Traceback" not in res.stderr + res.stdout


def test_older_schema_is_reported_then_migrated_without_loss(data_env, tmp_path):
    env, data = data_env
    assert coherex(env, "db", "start").returncode == 0
    admin = coherex(env, "db", "url", "--admin").stdout.strip()
    older = tmp_path / "older"
    older.mkdir()
    files = sorted(MIGRATIONS_DIR.glob("*.sql"))
    for f in files[:-1]:
        shutil.copy(f, older / f.name)
    migrate(admin, older)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("insert into public.teams (slug, name) values ('old', 'Old data')")

    status = coherex(env, "db", "status")
    assert status.returncode == 0
    assert f"pending: {files[-1].name}" in status.stdout and "coherex db migrate" in status.stdout

    assert coherex(env, "db", "migrate").returncode == 0
    assert state(admin).pending == []
    with psycopg.connect(admin) as conn:
        assert conn.execute("select name from public.teams where slug = 'old'").fetchone() == ("Old data",)


def test_data_dir_of_another_postgres_version_is_refused_untouched(data_env):
    env, data = data_env
    assert coherex(env, "db", "start").returncode == 0
    assert coherex(env, "db", "stop").returncode == 0
    version_file = data / "pgdata" / "PG_VERSION"
    version_file.write_text("16\n")
    res = coherex(env, "db", "start")
    assert res.returncode == 1
    assert "PostgreSQL 16" in res.stderr and "Nothing was changed" in res.stderr
    assert version_file.read_text() == "16\n"


def test_migrations_twice_change_nothing(db_urls):
    assert migrate(db_urls.admin) == []  # the template was migrated already
    with psycopg.connect(db_urls.admin) as conn:
        before = conn.execute("select count(*) from pg_policies").fetchone()
    assert migrate(db_urls.admin) == []
    with psycopg.connect(db_urls.admin) as conn:
        assert conn.execute("select count(*) from pg_policies").fetchone() == before


def test_edited_migration_is_refused(db_urls, tmp_path):
    edited = tmp_path / "m"
    edited.mkdir()
    for f in sorted(MIGRATIONS_DIR.glob("*.sql")):
        shutil.copy(f, edited / f.name)
    target = sorted(edited.glob("*.sql"))[-1]
    target.write_text(target.read_text() + "\n-- edited\n")
    from coherex.errors import UserError

    with pytest.raises(UserError, match="changed after it was applied"):
        migrate(db_urls.admin, edited)


def test_unreachable_database_is_a_clear_message(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://x:y@127.0.0.1:{free_port()}/nope",
        "COHEREX_DATA_DIR": str(tmp_path),
    }
    res = coherex(env, "db", "status")
    assert res.returncode == 2
    assert "Cannot reach the database" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("database_url", [None, "unreachable"])
def test_servers_started_without_a_database_say_so_without_a_traceback(tmp_path, database_url):
    """`coherex web` with the embedded database not started (or a DATABASE_URL nobody answers)."""
    env = {**os.environ, "COHEREX_DATA_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = f"postgresql://x:y@127.0.0.1:{free_port()}/nope"
    res = coherex(env, "web", "--port", str(free_port()))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert ("not running" if database_url is None else "Cannot connect to the database") in res.stderr
    assert "hint:" in res.stderr
