"""Finding 1 of issue 16: a team admin added a `postgres` data source pointing at the platform's own
database through its Unix socket, as the superuser without a password (`pg_hba.conf` trusted local
logins), and through `postgres.execute` read and rewrote every team's rows.

Now the API refuses such a DSN before anything is stored, and the server itself refuses a
passwordless login through the socket."""

from __future__ import annotations

import psycopg
import pytest

from coherex.store.db import Identity


async def _count_sources(db) -> int:
    async with db.connection(Identity.system()) as conn:
        return (await (await conn.execute("select count(*) from public.data_sources")).fetchone())[0]


@pytest.fixture
def embedded(pg_server):
    if pg_server._embedded is None:
        pytest.skip("TEST_DATABASE_URL points at another server; this is about the embedded one")
    return pg_server._embedded


async def test_a_postgres_source_cannot_name_the_platforms_database(api, keys, db, embedded):
    owner_key, _ = keys
    socket_dir, port = embedded.pgdata, embedded.port
    attempts = {
        "socket in the query": f"postgresql://postgres@/coherex?host={socket_dir}&port={port}",
        "socket as the host": f"postgresql://postgres@{str(socket_dir).replace('/', '%2F')}:{port}/coherex",
        "key=value socket": f"host={socket_dir} port={port} user=postgres dbname=coherex",
        "no host (default socket)": "postgresql:///coherex?user=postgres",
        "a bad host among good ones": f"host=example.com,{socket_dir} port=5432,{port} user=postgres",
        "a service file": "postgresql://postgres@example.com/coherex?service=coherex",
    }
    before = await _count_sources(db)
    async with api.client(owner_key) as c:
        for i, (what, dsn) in enumerate(attempts.items()):
            r = await c.post(
                "/api/sources",
                json={
                    "type": "postgres",
                    "name": f"mine-{i}",
                    "config": {"read_only": False},
                    "credentials": {"dsn": dsn},
                },
            )
            assert r.status_code in (400, 422), (what, r.status_code, r.text)
            message = r.json()["error"]["message"]
            assert "network host" in message or "not allowed" in message, (what, message)
            assert str(socket_dir) not in r.text and "Traceback" not in r.text
        # over TCP the loopback address is the egress guard's to refuse, naming the setting
        r = await c.post(
            "/api/sources",
            json={
                "type": "postgres",
                "name": "tcp",
                "credentials": {"dsn": f"postgresql://postgres@127.0.0.1:{port}/coherex"},
            },
        )
        assert r.status_code == 422, r.text
        assert "COHEREX_EGRESS_ALLOW" in r.json()["error"]["message"]
    assert await _count_sources(db) == before


def test_the_server_refuses_a_passwordless_superuser_on_its_socket(embedded):
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(
            host=str(embedded.pgdata),
            port=embedded.port,
            user="postgres",
            dbname="postgres",
            connect_timeout=5,
        ).close()
    hba = (embedded.pgdata / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    assert rules and all(rule[-1] == "scram-sha-256" for rule in rules), hba
    # with its password the superuser still logs in through the socket (what the platform itself uses)
    password = embedded.credentials()["superuser_password"]
    psycopg.connect(
        host=str(embedded.pgdata),
        port=embedded.port,
        user="postgres",
        password=password,
        dbname="postgres",
        connect_timeout=5,
    ).close()


async def test_a_socket_dsn_stored_before_the_fix_reaches_nothing(db, two_teams, api_env, embedded):
    """A source saved by an older version keeps its DSN; every connection is checked again."""
    from pydantic import SecretStr

    from coherex.integrations import IntegrationError, invoke_tool
    from coherex.integrations.vault import Vault
    from coherex.services.agents import apply_spec
    from coherex.tools.providers.postgres import PostgresCredentials

    alpha, _ = two_teams
    dsn = f"postgresql://postgres@/postgres?host={embedded.pgdata}&port={embedded.port}"
    creds = PostgresCredentials.model_construct(dsn=SecretStr(dsn))  # as stored, unvalidated
    sealed, key_id = Vault.from_settings().seal(creds, context=str(alpha.team_id))
    spec = (
        "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: dba}\nspec:\n  instructions: x\n"
        "  tools:\n    - {use: postgres.execute, dataSource: old, access: write}\n"
    )
    async with db.session(alpha.identity) as s:
        await s.sources.create(
            alpha.team_id,
            "old",
            "postgres",
            {"read_only": False},
            credentials_encrypted=sealed,
            credentials_key_id=key_id,
        )
        agent = (await apply_spec(s, alpha.team_id, spec)).agent
    with pytest.raises(IntegrationError, match="network host"):
        await invoke_tool(
            db,
            team_id=alpha.team_id,
            agent_id=agent.id,
            tool_name="postgres.execute",
            data_source="old",
            args={"sql": "create table public.pwned (x int)"},
        )
    async with db.connection(Identity.system()) as conn:
        assert (await (await conn.execute("select to_regclass('public.pwned')")).fetchone())[0] is None
