"""`coherex sources` end to end, in-process, against the test database and the fake services."""

from __future__ import annotations

import json

from coherex.cli import main


def test_add_list_test_remove_with_secrets_from_env(cli_env, settings_env, saas, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", cli_env["DATABASE_URL"])
    monkeypatch.setenv("SLACK_BOT_TOKEN", saas.slack_token)
    assert main(["sources", "add", "slack", "team-slack", "--from-env"]) == 0
    out = capsys.readouterr().out
    assert "Added data source team-slack" in out and "Connected to Slack as bot 'coherex'" in out

    assert main(["sources", "add", "github", "gh", "--from-env"]) == 1
    assert "GITHUB_TOKEN is not set" in capsys.readouterr().err
    assert (
        main(["sources", "add", "gmail", "mail", "--secret", "access_token=x"]) == 0
    )  # pasted tokens are allowed
    capsys.readouterr()
    assert main(["sources", "add", "github", "gh", "--secret", f"token={saas.github_token}"]) == 0
    saas.revoke(saas.github_token)
    assert main(["sources", "test", "gh"]) == 1
    assert "refused the credentials" in capsys.readouterr().out

    assert main(["sources", "list", "--json"]) == 0
    listed = {s["name"]: s for s in json.loads(capsys.readouterr().out)}
    assert listed["team-slack"]["status"] == "active" and listed["gh"]["status"] == "failing"
    assert saas.github_token not in json.dumps(listed)

    assert main(["sources", "rotate-key"]) == 0
    assert "Re-encrypted 0 credential(s)" in capsys.readouterr().out

    assert main(["sources", "remove", "gh", "--yes"]) == 0
    assert main(["sources", "test", "gh"]) == 1
    assert "no data source 'gh'" in capsys.readouterr().err


def test_unknown_type_and_bad_pairs_are_explained(cli_env, settings_env, capsys):
    assert main(["sources", "add", "slak", "x", "--secret", "bot_token=xoxb-1"]) == 1
    assert "Did you mean 'slack'" in capsys.readouterr().err
    assert main(["sources", "add", "slack", "x", "--secret", "xoxb-secret-value"]) == 1
    err = capsys.readouterr().err
    assert "not key=value" in err and "xoxb-secret-value" not in err
