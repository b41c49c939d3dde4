"""The cloud path is settings only: the e2b backend, pointed at a second local server."""

from __future__ import annotations

import pytest

from coherex.sandbox import SandboxAuthError, SandboxUnavailable, open_sandbox
from coherex.settings import Settings

from .conftest import make_server


async def test_e2b_backend_is_the_same_sdk_path_with_other_settings(tmp_path, sandbox_settings):
    second, local = make_server(tmp_path / "second", pool_size=0)
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
