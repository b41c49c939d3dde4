"""`coherex users add` and `coherex eval builder`, in-process against the test database."""

from __future__ import annotations

import io
import json

from coherex.cli import main
from coherex.settings import reset_settings_cache
from coherex.store.db import Identity
from coherex.testing.fake_openai import Text, ToolCall


def test_users_add_creates_a_login_in_a_team(cli_env, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert main(["users", "add", "Dana@Example.com", "--team", "ops", "--password-stdin"]) == 0
    assert "owner of the new team ops" in capsys.readouterr().out
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "eve@example.com", "--team", "ops", "--password-stdin"]) == 1
    assert "at least 8 characters" in capsys.readouterr().err


async def test_users_add_password_works_for_login(cli_env, db, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    import asyncio

    code = await asyncio.to_thread(
        main, ["users", "add", "fay@example.com", "--team", "ops", "--role", "admin", "--password-stdin"]
    )
    assert code == 0
    async with db.session(Identity.system()) as s:
        user = await s.users.authenticate("fay@example.com", "a long password")
        assert user is not None and await s.users.authenticate("fay@example.com", "wrong one!") is None
        (membership,) = await s.members.teams_of(user.id)
    assert membership.role == "owner"  # first member of a new team


def test_eval_builder_reports_per_case_and_total(cli_env, fake_llm, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", fake_llm.api_key)
    reset_settings_cache()
    fake_llm.reset()
    cases = tmp_path / "cases.jsonl"
    cases.write_text(
        json.dumps(
            {
                "id": "digest",
                "request": "Summarise my unread mail to #ops every weekday at 8",
                "answers": ["Berlin"],
                "data_sources": {"work-mail": "gmail", "team-slack": "slack"},
                "expect": {
                    "tools": ["gmail.search_messages", "slack.post_message"],
                    "access": {"slack.post_message": "write"},
                    "trigger": "schedule",
                    "cron": "0 8 * * 1-5",
                    "timezone": "Asia/Tokyo",  # not what it gets (the eval person's zone, UTC): one miss
                },
            }
        )
        + "\n"
    )
    fake_llm.script(
        [ToolCall("use_template", {"name": "email-digest"}), Text("Which time zone?"), Text("Done.")]
    )
    out = tmp_path / "report.json"
    assert main(["eval", "builder", str(cases), "--json", "-o", str(out)]) == 0
    report = json.loads(out.read_text())
    (case,) = report["cases"]
    # 6 expected properties, and no placeholder saved as ready
    assert case["valid"] and case["turns"] == 2 and case["checks"] == 7
    assert case["matched"] == 6 and case["failed"] == ["time zone Asia/Tokyo (got UTC)"]
    assert report["total"]["valid"] == 1 and report["total"]["tokens"] > 0


async def test_users_passwd_changes_the_password(cli_env, db, monkeypatch, capsys):
    import asyncio

    monkeypatch.setattr("sys.stdin", io.StringIO("a long password\n"))
    assert (
        await asyncio.to_thread(
            main, ["users", "add", "gus@example.com", "--team", "ops", "--password-stdin"]
        )
        == 0
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("another long one\n"))
    assert await asyncio.to_thread(main, ["users", "passwd", "GUS@example.com", "--password-stdin"]) == 0
    assert "changed the password of gus@example.com" in capsys.readouterr().out
    async with db.session(Identity.system()) as s:
        assert await s.users.authenticate("gus@example.com", "another long one") is not None
        assert await s.users.authenticate("gus@example.com", "a long password") is None
    monkeypatch.setattr("sys.stdin", io.StringIO("another long one\n"))
    assert await asyncio.to_thread(main, ["users", "passwd", "nobody@example.com", "--password-stdin"]) == 1
    assert "There is no user 'nobody@example.com'" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert await asyncio.to_thread(main, ["users", "passwd", "gus@example.com", "--password-stdin"]) == 1
    assert "at least 8 characters" in capsys.readouterr().err
