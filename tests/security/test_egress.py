"""Finding 3 of issue 16 (SSRF): an `http_api` data source (and the agent's `http.get`) could point
at 127.0.0.1:*, 169.254.169.254 or any private address, so agents read the platform's own API and
LLM endpoint through it.

Now every connection made for a data source passes the egress guard (coherex/egress.py): loopback,
link-local, private addresses and this host are refused with a message naming
COHEREX_EGRESS_ALLOW, when the source is added and at every connection (redirects included); an
operator's COHEREX_EGRESS_ALLOW opens exactly what it lists."""

from __future__ import annotations

import json
import socket
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from coherex.integrations import IntegrationError, add_source, invoke_tool
from coherex.integrations.vault import Vault
from coherex.runtime import Runtime
from coherex.services.agents import apply_spec
from coherex.settings import reset_settings_cache
from coherex.store.db import Identity
from coherex.testing.fake_openai import Text, ToolCall
from coherex.testing.fake_saas import FakeSaaS
from coherex.tools.providers.http_api import HttpApiCredentials

SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: fetcher}
    spec:
      instructions: Fetch what you are asked for.
      tools:
        - use: http.get
          dataSource: hop
          access: read
    """)


@pytest.fixture
def internal():
    """A service on the host's loopback that no data source should reach (not in the allow list)."""
    with FakeSaaS() as server:
        yield server


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def ipv6_loopback():
    """A real HTTP server on [::1] (the IPv6 loopback)."""

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    try:
        server = Server(("::1", 0), _Hello)
    except OSError:
        pytest.skip("no IPv6 loopback on this host")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def allow(monkeypatch, api_env, *entries: str) -> None:
    monkeypatch.setenv("COHEREX_EGRESS_ALLOW", ",".join([api_env["COHEREX_EGRESS_ALLOW"], *entries]))
    reset_settings_cache()


async def _count_sources(db) -> int:
    async with db.connection(Identity.system()) as conn:
        return (await (await conn.execute("select count(*) from public.data_sources")).fetchone())[0]


def _targets(internal: FakeSaaS, api, v6_port: int) -> dict[str, str]:
    q = internal.port
    return {
        "loopback": f"http://127.0.0.1:{q}/api",
        "the platform's own API": f"http://127.0.0.1:{api.port}/api",
        "the cloud metadata service": "http://169.254.169.254/latest/meta-data",
        "IPv6 loopback": f"http://[::1]:{v6_port}/api",
        "a name resolving to loopback": f"http://localhost:{q}/api",
        "IPv4-mapped loopback": f"http://[::ffff:127.0.0.1]:{q}/api",
        "a private network": "http://10.1.2.3/api",
        "unique-local IPv6": "http://[fd00::1]/api",
    }


async def test_http_sources_pointing_inside_are_refused_and_nothing_is_stored(
    api, keys, db, internal, ipv6_loopback
):
    owner_key, _ = keys
    before = await _count_sources(db)
    async with api.client(owner_key) as c:
        for i, (what, url) in enumerate(_targets(internal, api, ipv6_loopback).items()):
            r = await c.post(
                "/api/sources",
                json={
                    "type": "http_api",
                    "name": f"inside-{i}",
                    "config": {"base_url": url},
                    "credentials": {"auth_value": "Bearer team-token-123"},
                },
            )
            assert r.status_code == 422, (what, r.text)
            message = r.json()["error"]["message"]
            assert "not allowed" in message and "COHEREX_EGRESS_ALLOW" in message, (what, message)
    assert await _count_sources(db) == before
    assert internal.requests == []


async def test_with_the_operators_allow_list_they_work(
    api, api_env, keys, db, internal, ipv6_loopback, monkeypatch
):
    owner_key, _ = keys
    q = internal.port
    allow(monkeypatch, api_env, f"127.0.0.1:{q}", f"localhost:{q}", f"[::1]:{ipv6_loopback}")
    urls = {
        "loopback": f"http://127.0.0.1:{q}/api",
        "name": f"http://localhost:{q}/api",
        "mapped": f"http://[::ffff:127.0.0.1]:{q}/api",
        "ipv6": f"http://[::1]:{ipv6_loopback}/api",
    }
    async with api.client(owner_key) as c:
        for name, url in urls.items():
            r = await c.post(
                "/api/sources", json={"type": "http_api", "name": name, "config": {"base_url": url}}
            )
            assert r.status_code == 201, (name, r.text)
            check = (await c.post(f"/api/sources/{name}/validate")).json()
            assert check["ok"] and "HTTP 200" in check["message"], (name, check)
        # the allow list opens exactly what it lists: another port of the same host stays closed
        r = await c.post(
            "/api/sources",
            json={
                "type": "http_api",
                "name": "other-port",
                "config": {"base_url": f"http://127.0.0.1:{api.port}/api"},
            },
        )
        assert r.status_code == 422 and "COHEREX_EGRESS_ALLOW" in r.text
    assert len(internal.of("api")) == 3


async def _run_fetch(db, tenant, fake_llm, to: str):
    """The agent's http.get on the allowed source `hop`, whose server redirects to `to`."""
    fake_llm.always(
        lambda req: (
            Text("done")
            if req.body["messages"][-1]["role"] == "tool"
            else ToolCall("http_get", {"path": "go", "query": {"to": to}})
        )
    )
    async with db.session(tenant.identity) as s:
        agent = (await apply_spec(s, tenant.team_id, SPEC)).agent
    runtime = Runtime(db)
    execution = await runtime.create(tenant.identity, tenant.team_id, agent)
    final = await runtime.run(execution.id)
    assert final.status == "completed", final.error
    async with db.session(tenant.identity) as s:
        events = await s.executions.events(execution.id)
    return [e.payload for e in events if e.type == "tool_result"]


async def test_a_redirect_from_an_allowed_server_to_loopback_is_refused(
    db, two_teams, api_env, saas, fake_llm, internal, monkeypatch
):
    alpha, _ = two_teams
    await add_source(
        db,
        alpha.identity,
        alpha.team_id,
        "http_api",
        "hop",
        config={"base_url": f"{saas.url}/redirect", "auth_header": "X-Api-Key"},
        credentials={"auth_value": "hop-secret-123456"},
    )
    target = f"http://127.0.0.1:{internal.port}/api/secret"

    [result] = await _run_fetch(db, alpha, fake_llm, target)
    assert not result["ok"] and "COHEREX_EGRESS_ALLOW" in result["content"], result
    assert len(saas.of("redirect")) == 1 and internal.requests == []

    # allowed by the operator, the redirect is followed, without the source's secret header
    allow(monkeypatch, api_env, f"127.0.0.1:{internal.port}")
    [result] = await _run_fetch(db, alpha, fake_llm, target)
    assert result["ok"] and "/api/secret" in result["content"], result
    [received] = internal.of("api")
    assert "x-api-key" not in received.headers


async def test_every_connection_is_checked_not_only_when_the_source_is_added(
    db, two_teams, api_env, saas, internal
):
    """A source stored while its name resolved elsewhere (or before this guard existed)."""
    alpha, _ = two_teams
    sealed, key_id = Vault.from_settings().seal(HttpApiCredentials(), context=str(alpha.team_id))
    async with db.session(alpha.identity) as s:
        await s.sources.create(
            alpha.team_id,
            "hop",
            "http_api",
            {"base_url": f"http://localhost:{internal.port}/api"},
            credentials_encrypted=sealed,
            credentials_key_id=key_id,
        )
        agent = (await apply_spec(s, alpha.team_id, SPEC)).agent
    with pytest.raises(IntegrationError, match="COHEREX_EGRESS_ALLOW"):
        await invoke_tool(
            db,
            team_id=alpha.team_id,
            agent_id=agent.id,
            tool_name="http.get",
            data_source="hop",
            args={"path": "x"},
        )
    assert internal.requests == []


@pytest.mark.parametrize("service", ["slack", "github"])
async def test_service_base_urls_pass_the_same_guard(
    db, two_teams, api_env, saas, internal, monkeypatch, service
):
    """Slack's SDK (aiohttp) and GitHub's client (httpx) pointed at an address nobody allowed."""
    alpha, _ = two_teams
    if service == "slack":
        await add_source(
            db, alpha.identity, alpha.team_id, "slack", "svc", credentials={"bot_token": saas.slack_token}
        )
        tool, args = "slack.list_channels", {}
    else:
        await add_source(
            db, alpha.identity, alpha.team_id, "github", "svc", credentials={"token": saas.github_token}
        )
        tool, args = "github.list_issues", {"repo": "acme/app"}
    path = "/slack/api/" if service == "slack" else "/github"
    monkeypatch.setenv(f"COHEREX_{service.upper()}_API_URL", internal.url + path)
    reset_settings_cache()
    spec = SPEC.replace("http.get", tool).replace("dataSource: hop", "dataSource: svc")
    async with db.session(alpha.identity) as s:
        agent = (await apply_spec(s, alpha.team_id, spec)).agent
    with pytest.raises(IntegrationError, match="COHEREX_EGRESS_ALLOW"):
        await invoke_tool(
            db, team_id=alpha.team_id, agent_id=agent.id, tool_name=tool, data_source="svc", args=args
        )
    assert internal.requests == []
