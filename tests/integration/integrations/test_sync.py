"""Knowledge sync from data sources, through the real GitHub/Slack clients and fake services."""

from __future__ import annotations

from datetime import UTC

import pytest

from coherex.errors import UserError
from coherex.integrations.service import add_source
from coherex.integrations.sync import sync_source
from coherex.knowledge import knowledge_search


async def test_github_docs_sync_adds_updates_and_prunes(world):
    gh = world.saas.github
    gh.add_file(
        "acme/app", "docs/setup.md", "# Setup\n\nInstall with `make install` and start with `make run`."
    )
    gh.add_file("acme/app", "docs/faq.md", "# FAQ\n\nThe default port of the chat is 8000.")
    gh.add_file("acme/app", "README.md", "# App\n\nNot under docs/.")
    await add_source(
        world.db, world.admin, world.team_id, "github", "gh", credentials={"token": world.saas.github_token}
    )

    first = await sync_source(
        world.db, world.admin, world.team_id, "gh", "docs", repo="acme/app", path="docs/"
    )
    assert (first.documents, first.added) == (2, 2)
    hits = await knowledge_search(
        world.db, world.admin, world.team_id, "docs", "which port does the chat use?"
    )
    assert "8000" in hits[0].content and hits[0].source == "github:acme/app/docs/faq.md"

    again = await sync_source(
        world.db, world.admin, world.team_id, "gh", "docs", repo="acme/app", path="docs/"
    )
    assert (again.added, again.unchanged) == (0, 2)  # nothing changed, nothing re-ingested

    gh.files["acme/app"]["docs/faq.md"] = "# FAQ\n\nThe chat now listens on port 9000."
    del gh.files["acme/app"]["docs/setup.md"]
    third = await sync_source(
        world.db, world.admin, world.team_id, "gh", "docs", repo="acme/app", path="docs/"
    )
    assert (third.documents, third.added) == (1, 1)
    hits = await knowledge_search(world.db, world.admin, world.team_id, "docs", "chat port", k=5)
    assert [h.source for h in hits] == ["github:acme/app/docs/faq.md"] and "9000" in hits[0].content


async def test_slack_channel_history_becomes_daily_documents(world):
    world.saas.slack.add_channel(
        "support",
        messages=["How do I reset my password?", "Use the 'forgot password' link on the login page."],
    )
    await add_source(
        world.db,
        world.admin,
        world.team_id,
        "slack",
        "team-slack",
        credentials={"bot_token": world.saas.slack_token},
    )
    result = await sync_source(
        world.db, world.admin, world.team_id, "team-slack", "support-history", channel="#support"
    )
    assert result.documents >= 1 and result.added == result.documents
    hits = await knowledge_search(world.db, world.admin, world.team_id, "support-history", "reset password")
    assert "forgot password" in hits[0].content


async def test_sync_needs_its_parameters_and_a_syncable_source(world):
    await add_source(
        world.db, world.admin, world.team_id, "github", "gh", credentials={"token": world.saas.github_token}
    )
    with pytest.raises(UserError, match="repository"):
        await sync_source(world.db, world.admin, world.team_id, "gh", "docs")


async def test_scheduled_sync_runs_when_due_and_records_failures(world):
    from datetime import datetime, timedelta

    from coherex.integrations.sync import run_due_syncs
    from coherex.store.db import Identity

    gh = world.saas.github
    gh.add_file("acme/app", "docs/a.md", "# A\n\nAlpha release notes.")
    await add_source(
        world.db, world.admin, world.team_id, "github", "gh", credentials={"token": world.saas.github_token}
    )
    async with world.db.session(world.admin) as s:
        await s.syncs.upsert(world.team_id, "gh", "docs", {"repo": "acme/app", "path": "docs/"}, 30)
        await s.syncs.upsert(world.team_id, "gh", "broken", {}, 30)  # no repo: fails every time
    now = datetime.now(UTC)
    assert await run_due_syncs(world.db, now) == []  # not due yet
    ran = dict(await run_due_syncs(world.db, now + timedelta(minutes=31)))
    assert ran["docs"] is None and "repository" in ran["broken"]
    assert await run_due_syncs(world.db, now + timedelta(minutes=32)) == []  # next run in 30 minutes
    async with world.db.session(Identity.system()) as s:
        schedules = {x.collection: x for x in await s.syncs.list(world.team_id)}
    assert schedules["docs"].last_error is None and schedules["docs"].last_run_at
    assert "repository" in schedules["broken"].last_error
    hits = await knowledge_search(world.db, world.admin, world.team_id, "docs", "release notes")
    assert "Alpha" in hits[0].content
