"""The vault: round trip, key rotation through the real command, and clear messages for a
missing or wrong key (credentials that "stop decrypting after a key change")."""

from __future__ import annotations

import base64
import logging
import stat

import pytest
from pydantic import SecretStr

from coherex.integrations import add_source, check_source, rotate_key
from coherex.integrations.vault import Vault, VaultError, install_log_redaction, redact, remember_secrets
from coherex.settings import get_settings, reset_settings_cache
from coherex.tools.providers.slack import SlackCredentials

from .conftest import new_key


def test_round_trip_binds_the_team_and_names_the_key():
    vault = Vault([base64.urlsafe_b64decode(new_key())])
    creds = SlackCredentials(bot_token=SecretStr("xoxb-123456789-secret"))
    sealed, key_id = vault.seal(creds, context="team-a")
    assert "xoxb" not in sealed and key_id in sealed
    assert (
        vault.open(sealed, SlackCredentials, context="team-a").bot_token.get_secret_value()
        == "xoxb-123456789-secret"
    )
    with pytest.raises(VaultError, match="another team"):
        vault.open(sealed, SlackCredentials, context="team-b")


def test_embedded_default_generates_a_private_key_file_and_says_so(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("COHEREX_SECRET_KEY", raising=False)
    monkeypatch.setenv("COHEREX_DATA_DIR", str(tmp_path))
    reset_settings_cache()
    with caplog.at_level(logging.WARNING, logger="coherex.vault"):
        first = Vault.from_settings()
    key_file = tmp_path / "vault.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "Generated a new credentials key" in caplog.text and str(key_file) in caplog.text
    assert Vault.from_settings().current_key_id == first.current_key_id  # reused, not regenerated
    reset_settings_cache()


async def test_rotation_reencrypts_and_a_missing_key_is_named(world, monkeypatch):
    old, new = new_key(), new_key()
    monkeypatch.setenv("COHEREX_SECRET_KEY", old)
    reset_settings_cache()
    await add_source(
        world.db,
        world.admin,
        world.team_id,
        "slack",
        "team-slack",
        credentials={"bot_token": world.saas.slack_token},
    )
    old_id = Vault.from_settings().current_key_id

    # The key is replaced without keeping the old one: the message names the key and the setting.
    monkeypatch.setenv("COHEREX_SECRET_KEY", new)
    reset_settings_cache()
    source, check = await check_source(world.db, world.admin, world.team_id, "team-slack")
    assert not check.ok and old_id in check.summary and "COHEREX_SECRET_KEY" in check.summary
    assert source.status == "failing"

    # New key first, old one kept: everything still decrypts; rotation moves all to the new key.
    monkeypatch.setenv("COHEREX_SECRET_KEY", f"{new},{old}")
    reset_settings_cache()
    assert (await check_source(world.db, world.admin, world.team_id, "team-slack"))[1].ok
    count, key_id = await rotate_key(world.db)
    assert count == 1 and key_id == Vault.from_settings().current_key_id != old_id

    monkeypatch.setenv("COHEREX_SECRET_KEY", new)  # the old key can go now
    reset_settings_cache()
    source, check = await check_source(world.db, world.admin, world.team_id, "team-slack")
    assert check.ok and source.status == "active" and source.credentials_key_id == key_id


def test_a_malformed_key_setting_is_explained(monkeypatch):
    monkeypatch.setenv("COHEREX_SECRET_KEY", "not-a-key")
    reset_settings_cache()
    with pytest.raises(VaultError, match="COHEREX_SECRET_KEY") as err:
        Vault.from_settings()
    assert "32-byte" in str(err.value)
    reset_settings_cache()
    assert get_settings()


def test_redaction_hides_known_secrets_and_token_shapes(caplog):
    assert redact({"a": ["my s3cret value here"]}, ["s3cret value"]) == {"a": ["my [redacted] here"]}
    assert "ghp_" not in redact("token ghp_abcdefghijklmnopqrstuvwx1234 leaked")
    assert redact("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig") == "Authorization: [redacted]"
    assert redact("Basic dXNlcjpwYXNzd29yZA==") == "[redacted]"
    # prose is not a credential: an agent's answer keeps its words
    prose = "It needs a basic understanding of tokens; the token counting rules apply."
    assert redact(prose) == prose
    install_log_redaction()
    remember_secrets(["hunter2-very-secret"])
    with caplog.at_level(logging.INFO):
        logging.getLogger("anything").info("connecting with %s", "hunter2-very-secret")
    assert "hunter2-very-secret" not in caplog.text and "[redacted]" in caplog.text
