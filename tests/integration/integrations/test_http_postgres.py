"""The generic HTTP API stays inside its base URL; Postgres queries are read-only with a row limit."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from coherex.errors import PermissionDenied
from coherex.integrations import IntegrationError, add_source, check_source, invoke_tool
from coherex.integrations.base import ServiceError
from coherex.settings import reset_settings_cache
from coherex.tools.providers.http_api import resolve


async def test_http_api_calls_below_its_base_url_with_the_auth_header(world):
    await add_source(
        world.db,
        world.admin,
        world.team_id,
        "http_api",
        "crm",
        config={"base_url": f"{world.saas.url}/api/v1", "auth_header": "X-Api-Key"},
        credentials={"auth_value": "crm-key-123456"},
    )
    agent = await world.agent("a", {"crm": "write"})
    got = await invoke_tool(
        world.db,
        team_id=world.team_id,
        agent_id=agent,
        tool_name="http.get",
        data_source="crm",
        args={"path": "/items", "query": {"page": "2"}},
    )
    assert (
        got["status"] == 200
        and got["body"]["path"] == "/api/v1/items"
        and got["body"]["query"] == {"page": "2"}
    )
    assert got["body"]["auth"] == "[redacted]"  # an API echoing the key back does not leak it to the agent
    posted = await invoke_tool(
        world.db,
        team_id=world.team_id,
        agent_id=agent,
        tool_name="http.request",
        data_source="crm",
        args={"method": "POST", "path": "items", "json": {"n": 1}},
    )
    assert posted["body"]["json"] == {"n": 1}
    assert world.saas.of("api")[0].headers["x-api-key"] == "crm-key-123456"

    for path in [
        "../admin",
        "/v1/../../secret",
        "%2e%2e/admin",
        "http://evil.example/x",
        "//evil.example/x",
        "..\\admin",
        "https://127.0.0.1:1/api/v1/x",
        "@evil.example/x",
    ]:
        with pytest.raises(IntegrationError, match="not allowed|leads outside"):
            await invoke_tool(
                world.db,
                team_id=world.team_id,
                agent_id=agent,
                tool_name="http.get",
                data_source="crm",
                args={"path": path},
            )
    assert len(world.saas.of("api")) == 2  # none of those left the process


def test_resolve_keeps_the_base_path():
    assert resolve("https://api.example.com/v1", "items/3") == "https://api.example.com/v1/items/3"
    assert resolve("https://api.example.com/v1", "") == "https://api.example.com/v1"
    with pytest.raises(ServiceError):
        resolve("https://api.example.com/v1", "./../v2")


async def test_http_api_config_is_validated(world):
    from coherex.errors import UserError

    with pytest.raises(UserError, match="base_url"):
        await add_source(
            world.db, world.admin, world.team_id, "http_api", "bad", config={"base_url": "ftp://x"}
        )
    with pytest.raises(UserError, match="unknown config key") as err:
        await add_source(
            world.db,
            world.admin,
            world.team_id,
            "http_api",
            "bad",
            config={"base_url": "https://x.example", "token": "oops-secret-in-config"},
        )
    assert "oops-secret" not in str(err.value) and "--secret" in str(err.value)


@pytest.fixture
async def target_db(db_urls, db, settings_env, monkeypatch):
    """A table in the test database, reachable through its own DSN (on 127.0.0.1, so allowed in
    the egress guard as an operator allows an internal database)."""
    import psycopg

    port = urlsplit(db_urls.admin).port
    monkeypatch.setenv("COHEREX_EGRESS_ALLOW", f"{settings_env['COHEREX_EGRESS_ALLOW']},127.0.0.1:{port}")
    reset_settings_cache()

    with psycopg.connect(db_urls.admin, autocommit=True) as conn:
        conn.execute("create table public.orders (id int primary key, total numeric)")
        conn.execute("insert into public.orders select g, g * 10 from generate_series(1, 50) g")
        conn.execute("grant select, insert, update, delete on public.orders to public")
    yield db_urls.admin


async def test_postgres_query_is_read_only_and_limited(world, target_db):
    await add_source(world.db, world.admin, world.team_id, "postgres", "shop", credentials={"dsn": target_db})
    agent = await world.agent("analyst", {"shop": "write"})
    result = await invoke_tool(
        world.db,
        team_id=world.team_id,
        agent_id=agent,
        tool_name="postgres.query",
        data_source="shop",
        args={"sql": "select id, total from orders order by id", "limit": 5},
    )
    assert result["columns"] == ["id", "total"] and len(result["rows"]) == 5 and result["truncated"]
    assert result["rows"][0] == [1, "10"]
    with pytest.raises(IntegrationError, match="only reads"):
        await invoke_tool(
            world.db,
            team_id=world.team_id,
            agent_id=agent,
            tool_name="postgres.query",
            data_source="shop",
            args={"sql": "delete from orders"},
        )
    with pytest.raises(IntegrationError, match="read-only"):
        await invoke_tool(
            world.db,
            team_id=world.team_id,
            agent_id=agent,
            tool_name="postgres.execute",
            data_source="shop",
            args={"sql": "delete from orders"},
        )
    _, check = await check_source(world.db, world.admin, world.team_id, "shop")
    assert check.ok and "read-only" in check.summary
    # a read grant never reaches postgres.execute, even on a writable source
    await add_source(
        world.db,
        world.admin,
        world.team_id,
        "postgres",
        "shop-rw",
        config={"read_only": "false"},
        credentials={"dsn": target_db},
    )
    reader = await world.agent("reader", {"shop-rw": "read"})
    with pytest.raises(PermissionDenied):
        await invoke_tool(
            world.db,
            team_id=world.team_id,
            agent_id=reader,
            tool_name="postgres.execute",
            data_source="shop-rw",
            args={"sql": "delete from orders"},
        )
    writer = await world.agent("writer", {"shop-rw": "write"})
    done = await invoke_tool(
        world.db,
        team_id=world.team_id,
        agent_id=writer,
        tool_name="postgres.execute",
        data_source="shop-rw",
        args={"sql": "delete from orders where id > 40"},
    )
    assert done == {"rowcount": 10}
