"""The dashboard's Approvals page through Streamlit's AppTest, signed in as a real user: it lists
the waiting call with its arguments and lets a member approve it (the run is queued again); a
viewer's click is refused with a message."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from coherex.settings import reset_settings_cache
from coherex.store.db import Identity

from .test_approvals import paused_run

APP = str(Path(__file__).resolve().parents[3] / "dashboard_app.py")


def _signed_in(email: str) -> AppTest:
    reset_settings_cache()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.text_input(key="email_input").input(email)
    at.text_input(key="password_input").input("correct horse")
    at.button(key="sign_in").click().run()
    assert not at.exception, at.exception
    at.sidebar.radio(key="page").set_value("Approvals").run()
    assert not at.exception, at.exception
    return at


async def test_the_page_lists_what_waits_and_a_member_approves_it(world):
    _, paused, approval = await paused_run(world)
    async with world.db.session(Identity.system()) as s:
        viewer = await s.users.create("vic@example.com", password="correct horse")
        await s.members.add(world.team_id, viewer.id, "viewer")

    at = _signed_in("vic@example.com")
    assert not at.error, [e.value for e in at.error]
    assert not at.info, [e.value for e in at.info]
    table = at.dataframe[0].value
    assert list(table["tool"]) == ["slack_post_message"] and "Deploy is done." in table["arguments"][0]
    assert list(table["started_by"]) == ["acme@example.com"]
    at.button(key="approval_approve").click().run()
    assert "member role" in at.error[0].value
    assert (await world.execution(paused.id)).status == "waiting_approval"

    at = _signed_in("acme@example.com")
    at.button(key="approval_approve").click().run()
    assert not at.exception, at.exception
    assert "approved" in at.success[0].value
    assert (await world.execution(paused.id)).status == "pending"
    reset_settings_cache()
