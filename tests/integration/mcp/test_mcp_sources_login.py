"""`coherex sources login NAME`: a remote MCP data source whose server asks for OAuth is signed in
from the CLI (a real subprocess): it prints the link, the browser (here an HTTP client following the
redirects) allows access and comes back to the CLI's loopback listener, the tokens go into the vault
and are refreshed from there — rotated refresh tokens included. The server is the fake OAuth MCP
server (discovery, dynamic registration, PKCE, tokens) over real HTTP."""

from __future__ import annotations

import asyncio
import sys
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from coherex.integrations.vault import generate_key
from coherex.settings import reset_settings_cache
from coherex.store.db import Identity
from coherex.testing.fake_mcp_oauth import CLIENT_ID, FakeOAuthMcp


@pytest.fixture
def fake():
    with FakeOAuthMcp() as server:
        yield server


@pytest.fixture
async def env(fake, cli_env, tenant_factory, monkeypatch):
    await tenant_factory("acme")
    extra = {
        "COHEREX_SECRET_KEY": generate_key(),
        "COHEREX_EGRESS_ALLOW": f"127.0.0.1:{fake.port}",
        "COHEREX_USER": "acme@example.com",
        "COHEREX_TEAM": "acme",
    }
    for k, v in extra.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    yield {**cli_env, **extra}
    reset_settings_cache()


async def coherex(env, *args) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "coherex", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=-2
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    return proc.returncode, out.decode()


async def login(env, fake, *args) -> tuple[int, str, httpx.Response]:
    """Run `coherex sources login docs`, open the link it prints as a browser would: (code, output,
    what the browser showed at the end)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "coherex", "sources", "login", "docs", "--no-browser", "--wait", "60", *args),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=-2,
    )
    lines = []
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 90)).decode()
        assert line, "the CLI ended without a link:\n" + "".join(lines)
        lines.append(line)
        if line.startswith(f"{fake.base_url}/authorize?"):
            break
    async with httpx.AsyncClient(follow_redirects=True, timeout=30) as browser:
        # another local process answering first with a code of its own is turned away
        listener = parse_qs(urlsplit(line.strip()).query)["redirect_uri"][0]
        forged = await browser.get(listener, params={"code": "evil", "state": "guessed"})
        assert forged.status_code == 400 and "does not belong" in forged.text
        page = await browser.get(line.strip())
    rest, _ = await asyncio.wait_for(proc.communicate(), 90)
    return proc.returncode, "".join(lines) + rest.decode(), page


async def _source(db, env):
    from coherex.integrations.service import open_source

    async with db.session(Identity.system()) as s:
        team = await s.teams.get_by_slug("acme")
        source = await s.sources.get_by_name(team.id, "docs")
    return source, (await open_source(db, source, fresh=False)).call.credentials.oauth


async def test_sign_in_from_the_cli_keeps_the_tokens_in_the_vault_and_refreshes_them(db, env, fake):
    code, out = await coherex(env, "sources", "add", "mcp", "docs", "--url", f"{fake.base_url}/mcp")
    assert code == 0 and "not working yet" in out and "coherex sources login docs" in out, out

    fake.expires_in = 30  # the tokens it issues lapse within the refresh margin: every use refreshes
    code, out, page = await login(env, fake)
    assert page.status_code == 200 and "Signed in" in page.text  # the CLI's listener answered
    assert code == 0 and "Signed in docs" in out and "ok:" in out and "1 tool(s)" in out, out
    # the authorization request: a client registered for the loopback listener, PKCE with S256
    (asked,) = fake.authorize_requests
    assert asked["client_id"].startswith("dyn-") and asked["code_challenge_method"] == "S256"
    assert asked["redirect_uri"].startswith("http://127.0.0.1:") and asked["redirect_uri"].endswith(
        "/callback"
    )
    grants = [r["grant_type"] for r in fake.token_requests]
    assert grants[0] == "authorization_code" and set(grants[1:]) == {"refresh_token"} and grants[1:]

    # the vault holds the last tokens the server issued (a rotated refresh token must be kept)
    source, oauth = await _source(db, env)
    assert source.status == "active"
    assert oauth.access_token.get_secret_value() == fake.valid
    assert oauth.refresh_token.get_secret_value() == fake.refresh
    assert oauth.server_metadata["token_endpoint"] == f"{fake.base_url}/oauth/token"
    assert fake.valid not in out and fake.refresh not in out  # never printed

    # a later process refreshes from the vault with the stored refresh token
    before = len(fake.token_requests)
    code, out = await coherex(env, "sources", "test", "docs")
    assert code == 0 and "ok:" in out, out
    assert len(fake.token_requests) > before and fake.token_requests[-1]["grant_type"] == "refresh_token"
    _, oauth = await _source(db, env)
    assert oauth.access_token.get_secret_value() == fake.valid


async def test_a_denied_sign_in_says_so_and_stores_no_token(db, env, fake):
    code, _ = await coherex(env, "sources", "add", "mcp", "docs", "--url", f"{fake.base_url}/mcp")
    fake.deny = True
    code, out, page = await login(env, fake, "--client-id", CLIENT_ID)  # a pre-registered client
    assert "Not signed in" in page.text and "access_denied" in page.text
    assert code == 1 and "did not grant access: access_denied" in out and "Traceback" not in out, out
    assert fake.authorize_requests[0]["client_id"] == CLIENT_ID
    assert fake.token_requests == []
    _, oauth = await _source(db, env)
    assert oauth is None or oauth.access_token is None

    code, out = await coherex(env, "sources", "login", "nothing-here", "--no-browser")
    assert code == 1 and "There is no data source 'nothing-here'" in out, out
