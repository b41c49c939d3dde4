"""The chat action "install this agent from REF" (through the builder, as the chat drives it),
against the real registry: the request shows what the agent does, its tools, what to connect and
its signature status, saving nothing; only the confirm saves it, the exact digest shown; the
team's signature policy and missing connections hold it back, and a bad reference is a clear
message."""

from __future__ import annotations

import pytest

from coherex.builder import BuilderSession
from coherex.builder.install import install, install_reference
from coherex.distribution import service, signing
from coherex.errors import PermissionDenied

from .test_distribution import CSV, EMAIL, connect_sources, counts, login, save


def builder_for(db, tenant) -> BuilderSession:
    # no LLM is asked: the platform recognises the request (the offline model's chat too)
    return BuilderSession(db, tenant.identity, tenant.team_id, small_model=False)


def test_only_a_registry_reference_makes_an_install_request():
    assert install_reference("install this agent from ghcr.io/acme/inbox-digest:1.2") == (
        "ghcr.io/acme/inbox-digest:1.2"
    )
    assert install_reference("Please install the agent from `127.0.0.1:5000/acme/x:1`.") == (
        "127.0.0.1:5000/acme/x:1"
    )
    assert install_reference("install pandas") is None  # a request for the builder, not a registry
    assert install_reference("install this agent from my colleague") is None
    assert install_reference("Post a digest of my unread mail to #ops") is None


async def test_install_shows_the_agent_then_saves_the_digest_shown_on_confirm(
    db, two_teams, oci_env, registry, tmp_path
):
    alpha, bravo = two_teams
    key = tmp_path / "release.key"
    pub = signing.generate_keys(key)
    await save(db, alpha, CSV)
    await login(db, alpha, registry)
    pushed = await service.push(
        db, alpha.identity, alpha.team_id, "csv-analysis", f"{registry.host}/acme/csv:1", sign_key=key
    )
    await login(db, bravo, registry)
    await service.trust_key(db, bravo.identity, bravo.team_id, "acme-release", pub.read_text())
    before = await counts(db, bravo.team_id)

    builder = builder_for(db, bravo)
    turn = await builder.send(f"install this agent from {pushed.ref}")
    preview = turn.install
    assert turn.error is None and preview is not None and preview.installable
    assert preview.ref == f"{pushed.ref}@{pushed.digest}"  # the confirm pulls exactly this
    assert preview.tools == ["csv.summarize", "python"]
    assert preview.signature == "verified (key acme-release)"
    assert "Analyse an uploaded CSV file" in turn.text  # what it does, in the builder's answer
    assert "`csv.summarize`" in turn.text and "verified (key acme-release)" in turn.text
    assert "Nothing is saved until you confirm" in turn.text
    assert await counts(db, bravo.team_id) == before  # shown, not saved

    # the tag moves on after the preview: the confirm still saves what was shown
    await save(db, alpha, CSV.replace("careful data analyst", "meticulous data analyst"))
    await service.push(db, alpha.identity, alpha.team_id, "csv-analysis", f"{registry.host}/acme/csv:1")
    result = await install(builder, preview.ref)
    assert (result.agent, result.version, result.digest) == ("csv-analysis", 1, pushed.digest)
    assert builder.agent is not None and builder.agent.name == "csv-analysis" and not builder.unsaved
    assert builder.draft is not None and "careful data analyst" in builder.draft.yaml  # ready to test-run
    assert builder.draft.ready
    again = await install(builder, preview.ref)
    assert again.already and await counts(db, bravo.team_id) == (before[0] + 1, before[1] + 1)


async def test_what_holds_an_install_back_is_shown_and_saves_nothing(db, two_teams, oci_env, registry, saas):
    alpha, bravo = two_teams
    await connect_sources(db, alpha, saas)
    await save(db, alpha, EMAIL)
    await save(db, alpha, CSV.replace("name: csv-analysis", "name: plain-csv"))
    await login(db, alpha, registry)
    email = await service.push(
        db, alpha.identity, alpha.team_id, "email-digest", f"{registry.host}/acme/mail:1"
    )
    unsigned = await service.push(
        db, alpha.identity, alpha.team_id, "plain-csv", f"{registry.host}/acme/plain:1"
    )
    await login(db, bravo, registry)
    before = await counts(db, bravo.team_id)
    builder = builder_for(db, bravo)

    # data sources bravo has not connected: what to connect, no install button
    turn = await builder.send(f"install this agent from {email.ref}")
    assert turn.install is not None and not turn.install.installable
    assert [c.name for c in turn.install.connections] == ["work-mail", "team-slack"]
    assert "Connect before installing" in turn.text and "(/oauth/gmail/start?name=work-mail" in turn.text

    # the team requires signatures: an unsigned artifact is shown as such, and a pull is refused
    await service.require_signatures(db, bravo.identity, bravo.team_id, True)
    turn = await builder.send(f"install the agent from {unsigned.ref}")
    assert turn.install is not None and not turn.install.installable
    assert (
        turn.install.signature == "unsigned" and "valid signature from one of its trusted keys" in turn.text
    )
    with pytest.raises(PermissionDenied, match="requires a valid signature"):
        await install(builder, turn.install.ref)

    # a tag that does not exist: a plain message, the conversation goes on
    turn = await builder.send(f"install this agent from {registry.host}/acme/plain:9")
    assert turn.install is None and "has no tag '9'" in (turn.error or "")
    assert await counts(db, bravo.team_id) == before
    assert builder.agent is None and builder.draft is None
