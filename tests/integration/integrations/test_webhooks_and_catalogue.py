"""Inbound webhook verification (Slack Events API, GitHub) and the match between integrations
and the tool catalogue the spec validates against."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest

from coherex.errors import PermissionDenied
from coherex.spec.catalogue import tools
from coherex.tools import registry
from coherex.tools.providers.github import verify_github_webhook
from coherex.tools.providers.slack import verify_slack_event

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def slack_headers(body: bytes, ts: int, secret: str = SECRET) -> dict[str, str]:
    base = f"v0:{ts}:".encode() + body
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest(),
    }


def test_slack_events_are_verified_and_replays_refused():
    body = json.dumps({"type": "event_callback", "event": {"type": "app_mention", "text": "hi"}}).encode()
    now = int(time.time())
    assert verify_slack_event(SECRET, slack_headers(body, now), body)["event"]["type"] == "app_mention"
    with pytest.raises(PermissionDenied):
        verify_slack_event(SECRET, slack_headers(body, now, secret="other"), body)
    with pytest.raises(PermissionDenied, match="too old"):
        verify_slack_event(SECRET, slack_headers(body, now - 600), body)  # a replay of an old request
    with pytest.raises(PermissionDenied):
        verify_slack_event(SECRET, slack_headers(body, now), body + b" ")  # changed body


def test_github_webhook_signature():
    body = b'{"action": "opened"}'
    good = {"X-Hub-Signature-256": "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()}
    verify_github_webhook("s3cret", good, body)
    with pytest.raises(PermissionDenied):
        verify_github_webhook("other", good, body)
    with pytest.raises(PermissionDenied):
        verify_github_webhook("s3cret", {}, body)


def test_every_data_source_tool_is_served_by_the_provider_of_its_type():
    for info in tools():
        provider = registry.provider_for_tool(info.name)
        assert provider is not None and info in provider.tools()
        if info.needs_data_source:
            assert provider.source_type is not None and provider.source_type.name == info.integration, (
                info.name
            )
            assert registry.provider_for_source_type(info.integration) is provider
