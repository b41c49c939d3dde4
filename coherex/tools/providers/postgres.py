"""A Postgres database as a data source: queries in a READ ONLY transaction with a row limit
(tests use a real Postgres, coherex/testing/postgres.py).

`postgres.query` always runs read-only, whatever the role may do; `postgres.execute` is refused
unless the source was added with `read_only=false` (and the agent holds `write` access).

The DSN is hostile input (it could name the platform's own database through its Unix socket):
only network hosts are accepted, each passes the egress guard, and libpq connects to the checked
address (`hostaddr` pinned), never resolving the name again. DSN options that read files of the
platform host (service and password files, client certificates) are refused.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pydantic import Field, SecretStr

from coherex.integrations.base import Call, Check, Model, ServiceError, SourceType
from coherex.spec.catalogue import ToolInfo
from coherex.tools.port import Provider, action
from coherex.tools.schema import integer, obj, params, string

SERVICE = "The Postgres database"


class PostgresConfig(Model):
    read_only: bool = True
    max_rows: int = Field(1000, ge=1, le=100_000)
    statement_timeout_ms: int = Field(15_000, ge=100, le=600_000)


class PostgresCredentials(Model):
    #: postgresql://user:password@host:5432/dbname (runs see its host, never its password)
    dsn: SecretStr


#: options that make libpq read files of the platform's host or take settings from them
_FILE_OPTIONS = (
    "service",
    "servicefile",
    "passfile",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslcrldir",
    "sslrootcert",
)


def _parse(dsn: str) -> dict[str, str]:
    try:
        params = {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    except psycopg.ProgrammingError:
        # libpq's message may quote the DSN, password included
        raise ValueError(
            "The DSN is not a valid PostgreSQL DSN, e.g. postgresql://user:password@host:5432/dbname."
        ) from None
    for key in _FILE_OPTIONS:
        if key in params and not (key == "sslrootcert" and params[key] == "system"):
            raise ValueError(f"The DSN option {key!r} reads files of the platform's host and is not allowed.")
    return params


def targets(dsn: str) -> list[tuple[str, int]]:
    """(host, port) of each host the DSN names; ValueError (a sentence for the person) for sockets,
    missing hosts, file options.

    A `hostaddr` stands for its host (libpq connects to it without resolving the name)."""
    params = _parse(dsn)
    hosts = params.get("host", "").split(",")
    addrs = params.get("hostaddr", "").split(",") if params.get("hostaddr") else []
    count = max(len(hosts), len(addrs))
    hosts += [""] * (count - len(hosts))
    ports = params.get("port", "").split(",") if params.get("port") else ["5432"]
    if len(ports) == 1:
        ports *= count
    if len(ports) != count or len(addrs) not in (0, count):
        raise ValueError("The DSN names a different number of hosts, host addresses and ports.")
    out = []
    for i, host in enumerate(hosts):
        target = addrs[i] if addrs and addrs[i] else host
        if not target or (target + host).startswith(("/", "@")) or host.startswith(("/", "@")):
            raise ValueError(
                "The DSN must name a network host (a Unix socket or an empty host is never used): "
                "postgresql://user:password@host:5432/dbname."
            )
        port = ports[i].strip() or "5432"  # libpq: an empty item is the default port
        if not port.isdigit():
            raise ValueError(f"The DSN has an invalid port {port!r}.")
        out.append((target, int(port)))
    return out


async def _pinned(dsn: str) -> str:
    """The DSN with `hostaddr` set to the addresses the egress guard checked."""
    from coherex import egress

    params = _parse(dsn)
    try:
        checked = [str((await egress.check(host, port))[0]) for host, port in targets(dsn)]
    except ValueError as exc:
        raise ServiceError(str(exc)) from None
    except egress.EgressDenied as exc:
        raise ServiceError(exc.message) from None
    except OSError as exc:
        raise ServiceError(f"Cannot connect to the Postgres database: {exc}", retryable=True) from None
    if not params.get("host"):
        params["host"] = ",".join(checked)  # host names the server for TLS; without one, its address
    params["hostaddr"] = ",".join(checked)
    return make_conninfo("", **params)


async def _connect(call: Call) -> psycopg.AsyncConnection:
    dsn = await _pinned(call.credentials.dsn.get_secret_value())
    try:
        return await psycopg.AsyncConnection.connect(
            dsn, connect_timeout=10, application_name="coherex-agent"
        )
    except psycopg.OperationalError as exc:
        # libpq's message names host and user but never the password; redaction covers the rest
        raise ServiceError(
            f"Cannot connect to the Postgres database: {str(exc).strip().splitlines()[0]}", retryable=True
        ) from None


def _jsonable(v: Any) -> Any:
    if isinstance(v, (dt.date, dt.datetime, dt.time, uuid.UUID, decimal.Decimal)):
        return str(v)
    if isinstance(v, (bytes, memoryview)):
        return f"<{len(bytes(v))} bytes>"
    return v


async def _run(call: Call, sql: str, *, read_only: bool, limit: int | None) -> dict[str, Any]:
    conn = await _connect(call)
    try:
        await conn.set_read_only(read_only)  # BEGIN READ ONLY: the server refuses any write
        async with conn.transaction():
            await conn.execute(f"set local statement_timeout = {int(call.config.statement_timeout_ms)}")
            cur = await conn.execute(sql)
            if limit is None:
                return {"rowcount": cur.rowcount}
            columns = [d.name for d in cur.description or []]
            rows = await cur.fetchmany(limit + 1) if cur.description else []
            return {
                "columns": columns,
                "rows": [[_jsonable(v) for v in r] for r in rows[:limit]],
                "truncated": len(rows) > limit,
            }
    except psycopg.errors.ReadOnlySqlTransaction:
        raise ServiceError(
            "The query tried to change data; this tool only reads (use postgres.execute on a "
            "source added with read_only=false)."
        ) from None
    except psycopg.errors.QueryCanceled:
        raise ServiceError(
            f"The query ran longer than {call.config.statement_timeout_ms} ms and was stopped."
        ) from None
    except psycopg.Error as exc:
        raise ServiceError(f"{SERVICE} refused the statement: {exc.diag.message_primary or exc}") from None
    finally:
        await conn.close()


_ROWS = obj(
    columns={"type": "array", "items": {"type": "string"}},
    rows={"type": "array"},
    truncated={"type": "boolean"},
)


@action(
    ToolInfo(
        "postgres.query",
        "postgres",
        "Run a read-only SQL query; returns at most `limit` rows.",
        needs_data_source=True,
        parameters=params(
            {"sql": string("one SELECT statement"), "limit": integer("maximum rows", 1, 10000)}, ["sql"]
        ),
    ),
    _ROWS,
)
async def query(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    return await _run(
        call, args["sql"], read_only=True, limit=min(args.get("limit", 100), call.config.max_rows)
    )


@action(
    ToolInfo(
        "postgres.execute",
        "postgres",
        "Run a data-changing SQL statement (INSERT, UPDATE, DELETE).",
        access="write",
        needs_data_source=True,
        parameters=params({"sql": string("one SQL statement")}, ["sql"]),
    ),
    obj(rowcount={"type": "integer"}),
)
async def execute(call: Call, args: dict[str, Any]) -> dict[str, Any]:
    if call.config.read_only:
        raise ServiceError(
            f"Data source {call.source.name!r} is read-only; an admin can re-add it with "
            "--config read_only=false to allow postgres.execute."
        )
    return await _run(call, args["sql"], read_only=False, limit=None)


async def test_connection(call: Call) -> Check:
    r = await _run(
        call,
        "select current_user, current_database(), current_setting('server_version')",
        read_only=True,
        limit=1,
    )
    user, database, version = r["rows"][0]
    mode = "read-only" if call.config.read_only else "read-write (postgres.execute allowed)"
    return Check(
        True,
        f"Connected to PostgreSQL {version}, database {database!r} as {user!r}; queries run {mode}.",
        {"user": user, "database": database, "version": version},
    )


POSTGRES = SourceType(
    name="postgres",
    title="PostgreSQL (DSN)",
    config_model=PostgresConfig,
    credentials_model=PostgresCredentials,
    test_connection=test_connection,
    destinations=lambda cfg, creds: targets(creds.dsn.get_secret_value()),
    rate_per_second=10.0,
    rate_burst=20,
)


PROVIDER = Provider("postgres", (query, execute), source_type=POSTGRES)
