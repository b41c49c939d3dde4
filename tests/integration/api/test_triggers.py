"""Triggers: signed webhooks, schedules under a chosen clock, and events from Slack/GitHub sources."""

from __future__ import annotations

import hashlib
import hmac
import json
import textwrap
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

from coherex.services.triggers import fire_due_schedules, signed_headers
from coherex.store.db import Identity

WEBHOOK_SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: on-alert}
    spec:
      instructions: Handle the alert.
      inputs:
        alert: {type: object}
      triggers:
        - webhook: {input: alert}
    """)

SCHEDULE_SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: morning}
    spec:
      instructions: Good morning.
      triggers:
        - schedule: {cron: "0 8 * * 1-5", timezone: Europe/Berlin}
    """)


async def _count(db) -> int:
    async with db.session(Identity.system()) as s:
        return len(await s.executions.list(limit=1000))


async def test_signed_webhook_starts_a_run_and_forgeries_do_not(api, keys, db):
    alpha, _ = keys
    async with api.client(alpha) as c:
        agent = (await c.post("/api/agents", json={"spec": WEBHOOK_SPEC})).json()["agent"]
        other = (
            await c.post("/api/agents", json={"spec": WEBHOOK_SPEC.replace("on-alert", "other")})
        ).json()["agent"]
        hook = (await c.get(f"/api/agents/{agent['id']}/webhook")).json()
        other_secret = (await c.get(f"/api/agents/{other['id']}/webhook")).json()["secret"]
    assert hook["url"].endswith(f"/api/hooks/{agent['id']}") and hook["secret"].startswith("whsec_")
    body = json.dumps({"service": "db", "severity": "critical"}).encode()

    async with api.client() as anyone:
        ok = await anyone.post(
            f"/api/hooks/{agent['id']}", content=body, headers=signed_headers(hook["secret"], body, "d1")
        )
        assert ok.status_code == 202, ok.text
        assert ok.json()["inputs"] == {"alert": {"service": "db", "severity": "critical"}}
        assert ok.json()["trigger"] == "webhook"
        before = await _count(db)

        forged = [
            signed_headers("whsec_wrong", body),
            signed_headers(other_secret, body),  # another agent's secret
            signed_headers(hook["secret"], body, timestamp=int(time.time()) - 3600),  # stale
            signed_headers(hook["secret"], body, "d1"),  # replay
            {},  # unsigned
            {"X-Coherex-Signature": "garbage"},
        ]
        for headers in forged:
            r = await anyone.post(f"/api/hooks/{agent['id']}", content=body, headers=headers)
            assert r.status_code == 403, (headers, r.status_code, r.text)
            assert r.json()["error"]["code"] == "permission_denied"
        tampered = await anyone.post(
            f"/api/hooks/{agent['id']}", content=body + b" ", headers=signed_headers(hook["secret"], body)
        )
        assert tampered.status_code == 403
    assert await _count(db) == before  # nothing ran


async def test_schedule_fires_on_time_under_a_chosen_clock(api, keys, db, two_teams):
    alpha, _ = keys
    async with api.client(alpha) as c:
        agent = (await c.post("/api/agents", json={"spec": SCHEDULE_SPEC})).json()["agent"]
    async with db.session(Identity.system()) as s:
        [sched] = await s.triggers.schedules(agent["id"])
    due = sched.next_fire_at
    local = due.astimezone(ZoneInfo("Europe/Berlin"))
    assert (local.hour, local.minute) == (8, 0) and local.weekday() < 5

    assert await fire_due_schedules(db, due - timedelta(minutes=1)) == []
    fired = await fire_due_schedules(db, due + timedelta(seconds=5))
    assert [(x.trigger, str(x.agent_id)) for x in fired] == [("schedule", agent["id"])]
    assert await fire_due_schedules(db, due + timedelta(seconds=6)) == []  # once per tick
    # a missed window (the platform was down three days) fires once, then resumes on schedule
    later = due + timedelta(days=3)
    assert len(await fire_due_schedules(db, later)) == 1
    async with db.session(Identity.system()) as s:
        [sched] = await s.triggers.schedules(agent["id"])
    assert sched.next_fire_at > later

    # a new version reschedules; a paused agent does not fire
    async with api.client(alpha) as c:
        await c.post("/api/agents", json={"spec": SCHEDULE_SPEC.replace("0 8 * * 1-5", "30 9 * * *")})
        async with db.session(Identity.system()) as s:
            [sched] = await s.triggers.schedules(agent["id"])
        assert sched.next_fire_at.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") == "09:30"
        await c.post(f"/api/agents/{agent['id']}/pause")
    assert await fire_due_schedules(db, sched.next_fire_at + timedelta(seconds=1)) == []


def _slack_headers(secret: str, body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig, "Content-Type": "application/json"}


async def test_slack_event_starts_subscribed_agents(api, keys, db):
    alpha, _ = keys
    signing = "slack-signing-secret-123"
    spec = textwrap.dedent("""\
        apiVersion: coherex/v1
        kind: Agent
        metadata: {name: answerer}
        spec:
          instructions: Answer the question in {{text}}.
          inputs:
            text: {type: string}
            channel: {type: string, default: ""}
          triggers:
            - event: {source: team-slack, type: slack.message, filter: {channel: C1}}
        """)
    async with api.client(alpha) as c:
        source = await c.post(
            "/api/sources",
            json={
                "type": "slack",
                "name": "team-slack",
                "credentials": {"bot_token": "xoxb-test-token-1234", "signing_secret": signing},
            },
        )
        assert source.status_code == 201, source.text
        assert "credentials" not in source.json() and "xoxb" not in source.text
        source_id = source.json()["id"]
        assert (await c.post("/api/agents", json={"spec": spec})).status_code == 201

    async with api.client() as slack:
        challenge = json.dumps({"type": "url_verification", "challenge": "abc"}).encode()
        r = await slack.post(
            f"/api/events/{source_id}", content=challenge, headers=_slack_headers(signing, challenge)
        )
        assert r.json()["challenge"] == "abc"

        def event(channel: str, event_id: str) -> bytes:
            return json.dumps(
                {
                    "type": "event_callback",
                    "event_id": event_id,
                    "event": {"type": "message", "channel": channel, "text": "when is lunch?"},
                }
            ).encode()

        hit = event("C1", "Ev1")
        r = await slack.post(f"/api/events/{source_id}", content=hit, headers=_slack_headers(signing, hit))
        assert r.status_code == 200 and r.json()["event"] == "slack.message" and len(r.json()["started"]) == 1
        again = await slack.post(
            f"/api/events/{source_id}", content=hit, headers=_slack_headers(signing, hit)
        )
        assert again.json()["started"] == []  # Slack retries a delivery: it runs once
        miss = event("C2", "Ev2")
        r = await slack.post(f"/api/events/{source_id}", content=miss, headers=_slack_headers(signing, miss))
        assert r.json()["started"] == []  # filtered out
        forged = await slack.post(
            f"/api/events/{source_id}", content=hit, headers=_slack_headers("wrong", hit)
        )
        assert forged.status_code == 403
    async with db.session(Identity.system()) as s:
        [run] = await s.executions.list(limit=10)
    assert run.trigger == "event" and run.inputs == {"text": "when is lunch?", "channel": "C1"}


def _github_headers(secret: str, body: bytes, event: str, delivery: str) -> dict[str, str]:
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": sig,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }


async def test_github_webhook_starts_subscribed_agents(api, keys, db):
    """GitHub's webhook (X-Hub-Signature-256 with the source's webhook secret): an opened issue
    starts the agents that subscribe; a redelivery, another event, a forgery and an unsigned source do not."""
    alpha, _ = keys
    secret = "github-webhook-secret-456"
    spec = textwrap.dedent("""\
        apiVersion: coherex/v1
        kind: Agent
        metadata: {name: triager}
        spec:
          instructions: Triage the new issue {{event}}.
          inputs:
            event: {type: object}
          triggers:
            - event: {source: gh, type: github.issue_opened}
        """)
    async with api.client(alpha) as c:
        source = await c.post(
            "/api/sources",
            json={
                "type": "github",
                "name": "gh",
                "credentials": {"token": "ghp_testtoken1234567890abcd", "webhook_secret": secret},
            },
        )
        assert source.status_code == 201, source.text
        source_id = source.json()["id"]
        unsigned = await c.post(
            "/api/sources",
            json={
                "type": "github",
                "name": "gh-nosecret",
                "credentials": {"token": "ghp_testtoken1234567890abcd"},
            },
        )
        assert (await c.post("/api/agents", json={"spec": spec})).status_code == 201

    opened = json.dumps(
        {
            "action": "opened",
            "issue": {"number": 7, "title": "Crash on start"},
            "repository": {"full_name": "acme/app"},
        }
    ).encode()
    closed = json.dumps({"action": "closed", "issue": {"number": 7}}).encode()
    async with api.client() as github:
        r = await github.post(
            f"/api/events/{source_id}",
            content=opened,
            headers=_github_headers(secret, opened, "issues", "d-1"),
        )
        assert (
            r.status_code == 200
            and r.json()["event"] == "github.issue_opened"
            and len(r.json()["started"]) == 1
        )
        again = await github.post(
            f"/api/events/{source_id}",
            content=opened,
            headers=_github_headers(secret, opened, "issues", "d-1"),
        )
        assert again.json()["started"] == []  # the same delivery id runs once
        other = await github.post(
            f"/api/events/{source_id}",
            content=closed,
            headers=_github_headers(secret, closed, "issues", "d-2"),
        )
        assert other.status_code == 200 and other.json()["started"] == []  # nobody subscribes to it
        forged = await github.post(
            f"/api/events/{source_id}",
            content=opened,
            headers=_github_headers("not-the-secret", opened, "issues", "d-3"),
        )
        assert forged.status_code == 403
        r = await github.post(
            f"/api/events/{unsigned.json()['id']}",
            content=opened,
            headers=_github_headers(secret, opened, "issues", "d-4"),
        )
        assert r.status_code == 403 and "no webhook secret" in r.json()["error"]["message"]
    async with db.session(Identity.system()) as s:
        [run] = await s.executions.list(limit=10)
    assert run.trigger == "event" and run.inputs["event"]["issue"]["title"] == "Crash on start"
