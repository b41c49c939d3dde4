"""After real work (adding sources, calls, failures, a token refresh), no plaintext credential is
anywhere: not in any text/jsonb column of any table, not in the audit log, not in the logs."""

from __future__ import annotations

import logging

import psycopg
import pytest

from coherex.integrations import IntegrationError, add_source, check_source, invoke_tool
from coherex.integrations.oauth import OAuthToken


def all_text(admin_url: str) -> str:
    """Every text, varchar and jsonb value in every table of the public and auth schemas."""
    chunks = []
    with psycopg.connect(admin_url) as conn:
        cols = conn.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where table_schema in ('public', 'auth') and data_type in ('text', 'character varying', "
            "'jsonb', 'json') "
            "and table_name in (select table_name from information_schema.tables where table_type = 'BASE "
            "TABLE')"
        ).fetchall()
        for schema, table, column in cols:
            for (value,) in conn.execute(f'select "{column}"::text from "{schema}"."{table}"'):
                if value:
                    chunks.append(value)
    return "\n".join(chunks)


async def test_no_plaintext_credential_in_database_audit_or_logs(world, db_urls, caplog):
    saas = world.saas
    caplog.set_level(logging.DEBUG)
    saas.slack.add_channel("general", messages=["hello"])
    saas.google_expires_in = 60
    await add_source(
        world.db,
        world.admin,
        world.team_id,
        "slack",
        "team-slack",
        credentials={"bot_token": saas.slack_token, "signing_secret": "slack-signing-secret-42"},
    )
    await add_source(
        world.db, world.admin, world.team_id, "github", "gh", credentials={"token": saas.github_token}
    )
    await add_source(
        world.db,
        world.admin,
        world.team_id,
        "gmail",
        "mail",
        credentials=OAuthToken(
            access_token=saas.gmail_token,
            refresh_token=saas.gmail_refresh_token,
            expires_at="2000-01-01T00:00:00Z",
        ),
    )
    await add_source(
        world.db,
        world.admin,
        world.team_id,
        "http_api",
        "crm",
        config={"base_url": f"{saas.url}/api"},
        credentials={"auth_value": "Bearer crm-plain-777777"},
    )
    agent = await world.agent("busy", {"team-slack": "write", "gh": "write", "mail": "read", "crm": "write"})

    async def run(tool, source, **args):
        return await invoke_tool(
            world.db, team_id=world.team_id, agent_id=agent, tool_name=tool, data_source=source, args=args
        )

    await run("slack.post_message", "team-slack", channel="general", text="hi")
    await run("gmail.search_messages", "mail", query="x")  # refreshes the expired token first
    await run("http.request", "crm", method="POST", path="x", json={"echo": "Bearer crm-plain-777777"})
    saas.github.add_issue("acme/app", "a")
    await run("github.create_issue", "gh", repo="acme/app", title="t")
    saas.revoke(saas.github_token)
    with pytest.raises(IntegrationError) as err:
        await run("github.comment_issue", "gh", repo="acme/app", number=1, body="x")
    await check_source(world.db, world.admin, world.team_id, "gh")
    await check_source(world.db, world.admin, world.team_id, "team-slack")

    issued = [t for t in saas._tokens if t.startswith("ya29.")]  # includes the refreshed token
    plaintexts = [
        saas.slack_token,
        saas.github_token,
        saas.gmail_refresh_token,
        "slack-signing-secret-42",
        "crm-plain-777777",
        *issued,
    ]
    stored = all_text(db_urls.admin)
    logs = caplog.text + "\n".join(str(r.msg) for r in caplog.records)
    for secret in plaintexts:
        assert secret not in stored, "a credential is stored in plaintext"
        assert secret not in logs, "a credential reached the logs"
        assert secret not in str(err.value)
    assert "v1." in stored  # the ciphertexts are there
