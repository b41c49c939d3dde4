"""Partial secrets (issue 16, finding 7): a service that quotes part of a credential back (the
token without its `Bearer ` prefix, or JSON-escaped inside a text body) must not get that part to
the LLM, the events, the run's output, the audit log or the logs."""

from __future__ import annotations

import json
import logging
import secrets
import textwrap
import time

from coherex.integrations import add_source
from coherex.integrations.vault import redact
from coherex.runtime import Runtime
from coherex.services.agents import apply_spec
from coherex.store.db import Identity
from coherex.testing.fake_openai import Text, ToolCall

SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: crm-check}
    spec:
      instructions: Look up the account and repeat what the service said, word for word.
      tools:
        - use: http.get
          dataSource: crm
          access: read
    """)


def _leaks(secret: str, text: str) -> list[str]:
    """Every run of 8 characters of `secret` found in `text`."""
    return [secret[i : i + 8] for i in range(len(secret) - 7) if secret[i : i + 8] in text]


async def test_an_echoed_part_of_a_credential_reaches_nobody(db, two_teams, api_env, saas, fake_llm, caplog):
    alpha, _ = two_teams
    token = "sk-live-" + secrets.token_hex(12) + '"/' + secrets.token_hex(6)  # '"' and '/' get JSON-escaped
    await add_source(
        db,
        alpha.identity,
        alpha.team_id,
        "http_api",
        "crm",
        config={"base_url": f"{saas.url}/api/v1"},
        credentials={"auth_value": f"Bearer {token}"},
    )
    async with db.session(alpha.identity) as s:
        agent = (await apply_spec(s, alpha.team_id, SPEC)).agent

    def model(request):
        """A model that calls the echoing endpoint twice, then repeats the tool results."""
        tool_results = [m["content"] for m in request.body["messages"] if m["role"] == "tool"]
        if len(tool_results) == 0:
            return ToolCall("http_get", {"path": "accounts/echo-key"})
        if len(tool_results) == 1:
            return ToolCall("http_get", {"path": "accounts/echo-key", "query": {"as": "text"}})
        return Text("The service said: " + " | ".join(tool_results))

    fake_llm.always(model)
    caplog.set_level(logging.DEBUG)
    runtime = Runtime(db)
    execution = await runtime.create(alpha.identity, alpha.team_id, agent)
    final = await runtime.run(execution.id)
    assert final.status == "completed", final.error

    # the service did quote the bare token (so the test would catch a leak) ...
    echoed = [r for r in saas.of("api") if r.path.endswith("/echo-key")]
    assert len(echoed) == 2 and all(r.headers["authorization"] == f"Bearer {token}" for r in echoed)
    async with db.session(alpha.identity) as s:
        events = await s.executions.events(execution.id)
        audit = await s.audit.list(alpha.team_id, limit=500)
    results = [e.payload["content"] for e in events if e.type == "tool_result"]
    # (the space before the token is part of the secret "Bearer <token>", so it goes too)
    assert len(results) == 2 and all("Invalid API key:[redacted]" in r for r in results), results
    # ... and no 8 characters of it are anywhere the model, the team or an operator can read
    async with db.connection(Identity.system()) as conn:
        stored = await (
            await conn.execute(
                "select to_jsonb(x)::text from public.agent_executions x where id = %s", (execution.id,)
            )
        ).fetchone()
    places = {
        "llm": json.dumps([r.body for r in fake_llm.requests]),
        "events": json.dumps([e.payload for e in events]),
        "execution row": stored[0],
        "output": json.dumps(final.output),
        "audit": json.dumps([e.details for e in audit], default=str),
        "logs": caplog.text,
    }
    for where, text in places.items():
        assert _leaks(token, text) == [] and _leaks(json.dumps(token)[1:-1], text) == [], where


def test_redaction_finds_runs_split_by_escaping_and_keeps_token_shapes():
    secret = 'p@ss"w/rd\\' + secrets.token_hex(10)
    for text in (
        f"x {secret[3:]} y",
        json.dumps({"m": secret[:12]}),
        json.dumps(json.dumps({"m": secret})),
        f"x {secret[:9]}y",
    ):
        assert _leaks(secret, redact(text, [secret])) == [], text
        assert _leaks(json.dumps(secret)[1:-1], redact(text, [secret])) == [], text
    assert (
        redact(f"said {secret[:7]} only", [secret]) == f"said {secret[:7]} only"
    )  # 7 characters are not a run
    assert redact("a basic understanding", []) == "a basic understanding"
    assert redact("Authorization: Bearer abcdef123456789", []) == "Authorization: [redacted]"
    assert redact({"deep": [f"k={secret}"]}, [secret]) == {"deep": ["k=[redacted]"]}


def test_redaction_stays_fast_on_long_text():
    known = [secrets.token_urlsafe(32) for _ in range(50)]
    text = "an ordinary long tool output line with numbers 12345 and words\n" * 20_000  # 1.3 MB
    redact(text, known)  # the index of the secrets is built once
    started = time.perf_counter()
    assert redact(text + known[7][5:20], known) == text + "[redacted]"
    assert time.perf_counter() - started < 1.0  # linear in the text, not in text x secrets


PG_SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: shop-check}
    spec:
      instructions: Count the orders and say what the database said.
      tools:
        - use: postgres.query
          dataSource: shop
          access: read
    """)


async def test_a_database_error_names_its_host_and_never_its_password(
    db, db_urls, two_teams, api_env, fake_llm, monkeypatch
):
    """A data source's DSN is a secret only by its credentials: the run shows where the database
    is (what the person needs to fix a refused login), never the password."""
    from urllib.parse import urlsplit

    from coherex.settings import reset_settings_cache

    alpha, _ = two_teams
    port = urlsplit(db_urls.admin).port
    monkeypatch.setenv("COHEREX_EGRESS_ALLOW", f"{api_env['COHEREX_EGRESS_ALLOW']},127.0.0.1:{port}")
    reset_settings_cache()
    password = "pw-" + secrets.token_hex(12)
    dbname = urlsplit(db_urls.admin).path.lstrip("/")
    await add_source(
        db,
        alpha.identity,
        alpha.team_id,
        "postgres",
        "shop",
        credentials={"dsn": f"postgresql://analyst:{password}@127.0.0.1:{port}/{dbname}?sslmode=disable"},
    )
    async with db.session(alpha.identity) as s:
        agent = (await apply_spec(s, alpha.team_id, PG_SPEC)).agent

    def model(request):
        tool_results = [m["content"] for m in request.body["messages"] if m["role"] == "tool"]
        if not tool_results:
            return ToolCall("postgres_query", {"sql": "select count(*) from orders"})
        return Text("The database said: " + tool_results[0])

    fake_llm.always(model)
    runtime = Runtime(db)
    execution = await runtime.create(alpha.identity, alpha.team_id, agent)
    final = await runtime.run(execution.id)
    async with db.session(alpha.identity) as s:
        events = await s.executions.events(execution.id)
    (result,) = [e.payload["content"] for e in events if e.type == "tool_result"]
    # libpq's refusal, as the person reads it in the run: where, and for whom
    where = f'connection to server at "127.0.0.1", port {port} failed'
    assert where in result and 'password authentication failed for user "analyst"' in result, result
    assert where in final.output["text"], final.output
    places = {
        "llm": json.dumps([r.body for r in fake_llm.requests]),
        "events": json.dumps([e.payload for e in events]),
        "output": json.dumps(final.output),
        "error": final.error or "",
    }
    for name, text in places.items():
        assert password not in text and _leaks(password, text) == [], name


def test_a_url_secret_hides_its_credentials_and_keeps_its_address():
    dsn = "postgresql://bob:s3cret-pass%21@db.internal:5432/shop?sslmode=require&sslpassword=keyphrase99"
    text = f"could not reach db.internal:5432/shop as bob (tried {dsn}); password s3cret-pass! refused"
    shown = redact(text, [dsn])
    assert "could not reach db.internal:5432/shop as bob" in shown and "sslmode=require" in shown
    for part in ("s3cret-pass", "keyphrase99"):
        assert part not in shown, shown
    # the keyword form of a DSN, the same way
    keyword = "host=db.internal port=5432 dbname=shop user=bob password='two words!'"
    assert redact("db.internal:5432 said: two words!", [keyword]) == "db.internal:5432 said: [redacted]"
    # a token given as the URL's user
    assert "ghp0token0value" not in redact(
        "https://ghp0token0value@git.example/x", ["https://ghp0token0value@git.example/x"]
    )
    # a URL with no credentials in it may hold its secret in the path (a webhook URL): hidden whole
    hook = "https://hooks.example/services/T000/B000/" + secrets.token_hex(8)
    assert redact(f"posting to {hook}", [hook]) == "posting to [redacted]"
