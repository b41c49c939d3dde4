"""The cloud path is settings only: the e2b backend, pointed at a second local server."""

from __future__ import annotations

import pytest

from coherex.sandbox import SandboxAuthError, SandboxUnavailable, open_sandbox
from coherex.settings import Settings

from .conftest import make_server


async def test_e2b_backend_is_the_same_sdk_path_with_other_settings(tmp_path, sandbox_settings):
    second, _local = make_server(tmp_path / "second", pool_size=0)
    try:
        key = (tmp_path / "second" / "sandbox" / "api_key").read_text()
        cloud = Settings(
            sandbox_backend="e2b",
            e2b_api_key=key,
            e2b_api_url=second.url,
            e2b_sandbox_url=second.url,
            data_dir=tmp_path / "unused",
        )
        assert cloud.sandbox == "e2b"
        async with await open_sandbox(cloud) as box:
            assert (
                await box.run_code("'served by the second instance'")
            ).text == "served by the second instance"
        # the first server's key is not valid on the second one
        wrong = cloud.model_copy(update={"e2b_api_key": sandbox_settings_key(sandbox_settings)})
        with pytest.raises(SandboxAuthError):
            await open_sandbox(wrong)
    finally:
        second.stop()
    with pytest.raises(SandboxUnavailable, match="cannot reach"):
        await open_sandbox(cloud)


def sandbox_settings_key(settings: Settings):
    from pydantic import SecretStr

    return SecretStr((settings.data_path / "sandbox" / "api_key").read_text())


async def test_local_backend_without_a_server_says_how_to_start_one(tmp_path):
    settings = Settings(sandbox_backend="local", data_dir=tmp_path)
    with pytest.raises(SandboxUnavailable, match="coherex sandbox serve"):
        await open_sandbox(settings)


def test_the_local_api_key_has_e2bs_format(tmp_path):
    """E2B's SDKs refuse a key that is not `e2b_` + hex before sending anything; a key kept by an
    older server is replaced when the server starts."""
    import re

    from coherex.sandbox.server.run import api_key_file, local_api_key

    settings = Settings(sandbox_backend="local", data_dir=tmp_path)
    api_key_file(settings).parent.mkdir(parents=True)
    api_key_file(settings).write_text("cx_local_old-format-key")
    assert local_api_key(settings, create=False) == "cx_local_old-format-key"  # clients read what is there
    key = local_api_key(settings, create=True)
    assert re.fullmatch(r"e2b_[0-9a-f]{40}", key)
    assert local_api_key(settings, create=False) == key
