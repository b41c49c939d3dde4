"""Apply `supabase/migrations/*.sql` in order, once each, recorded in `coherex_meta.schema_migrations`.

The files are plain SQL so `supabase db push` can apply them to a Supabase project as well.
Each file runs in its own transaction under an advisory lock, so two processes migrating at once
do not race; a file changed after it was applied is reported, never silently re-run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import psycopg

from coherex import resources
from coherex.errors import BackendError, UserError

MIGRATIONS_DIR = resources.path("supabase", "migrations")
_LOCK_KEY = 7_301_946_112  # any constant; identifies "coherex migrations" among advisory locks


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class MigrationState:
    applied: list[str]
    pending: list[Migration]
    changed: list[str]  # applied, but the file differs now


def available(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    out = []
    for path in sorted(directory.glob("*.sql")):
        version, _, name = path.stem.partition("_")
        out.append(Migration(version, name, path))
    return out


_META = """
create schema if not exists coherex_meta;
create table if not exists coherex_meta.schema_migrations (
  version text primary key,
  name text not null,
  checksum text not null,
  applied_at timestamptz not null default now()
);
grant usage on schema coherex_meta to public;
grant select on coherex_meta.schema_migrations to public;
"""


def latest_version(directory: Path = MIGRATIONS_DIR) -> str | None:
    files = available(directory)
    return files[-1].version if files else None


def _applied(conn: psycopg.Connection) -> dict[str, str]:
    exists = conn.execute("select to_regclass('coherex_meta.schema_migrations')").fetchone()[0]
    if exists is None:
        return {}
    return dict(conn.execute("select version, checksum from coherex_meta.schema_migrations").fetchall())


def state(admin_url: str, directory: Path = MIGRATIONS_DIR) -> MigrationState:
    with _connect(admin_url) as conn:
        applied = _applied(conn)
    files = available(directory)
    return MigrationState(
        applied=sorted(applied),
        pending=[m for m in files if m.version not in applied],
        changed=[m.version for m in files if m.version in applied and applied[m.version] != m.checksum],
    )


def migrate(
    admin_url: str, directory: Path = MIGRATIONS_DIR, *, app_user: str | None = None
) -> list[Migration]:
    """Apply pending migrations; returns the ones applied (empty when up to date)."""
    done: list[Migration] = []
    with _connect(admin_url) as conn:
        conn.autocommit = True
        conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(_META)
            applied = _applied(conn)
            for m in available(directory):
                if m.version in applied:
                    if applied[m.version] != m.checksum:
                        raise UserError(
                            f"Migration {m.path.name} was changed after it was applied to this database.",
                            hint="Never edit an applied migration; add a new file with the change instead.",
                        )
                    continue
                try:
                    with conn.transaction():
                        conn.execute("set local search_path = public, extensions")
                        conn.execute(m.sql)
                        conn.execute(
                            "insert into coherex_meta.schema_migrations (version, name, checksum) values "
                            "(%s, %s, %s)",
                            (m.version, m.name, m.checksum),
                        )
                except psycopg.Error as exc:
                    raise BackendError(f"Migration {m.path.name} failed and was rolled back: {exc}") from exc
                done.append(m)
            _install_queue_schema(conn)
            if app_user:
                _grant_app_roles(conn, app_user)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return done


def _install_queue_schema(conn: psycopg.Connection) -> None:
    """procrastinate's tables (the job queue), from the installed package, once.

    They sit in `public` (procrastinate expects them there), so they get RLS with no policy and no
    grants for `anon`/`authenticated`: only the service identity (workers) touches the queue, and
    PostgREST on Supabase cannot expose it.
    """
    if conn.execute("select to_regclass('public.procrastinate_jobs')").fetchone()[0] is not None:
        return
    from importlib.metadata import version

    from procrastinate.schema import SchemaManager

    with conn.transaction():
        conn.execute("set local search_path = public")
        conn.execute(SchemaManager.get_schema())
        tables = [
            r[0]
            for r in conn.execute(
                "select tablename from pg_tables where schemaname = 'public' and tablename like "
                "'procrastinate%'"
            )
        ]
        for table in tables:
            conn.execute(f"alter table public.{table} enable row level security")
            conn.execute(f"revoke all on public.{table} from anon, authenticated")
            conn.execute(f"grant all on public.{table} to service_role")
        conn.execute("grant usage, select on all sequences in schema public to service_role")
        conn.execute(
            "insert into coherex_meta.schema_migrations (version, name, checksum) values (%s, 'job queue', "
            "'')",
            (f"procrastinate-{version('procrastinate')}",),
        )


def _grant_app_roles(conn: psycopg.Connection, app_user: str) -> None:
    # The embedded app login may switch to these roles per transaction (as Supabase's `postgres`
    # user can); it owns nothing and has no RLS bypass of its own.
    for role in ("anon", "authenticated", "service_role"):
        conn.execute(f'grant {role} to "{app_user}"')


def _connect(url: str) -> psycopg.Connection:
    try:
        return psycopg.connect(url, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise BackendError(
            f"Cannot reach the database: {str(exc).strip().splitlines()[0]}",
            hint="For the embedded database run `coherex db start`; otherwise check DATABASE_URL.",
        ) from exc
