"""One local sandbox server for the session, on a free port with a temporary data dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from coherex.settings import Settings

# set before the server starts: it must NOT reach any sandbox
FAKE_SECRET = "cx-fake-secret-8d1f0c2e"
os.environ["COHEREX_TEST_FAKE_SECRET"] = FAKE_SECRET


def make_server(tmp: Path, pool_size: int = 2):
    from coherex.testing.sandbox import start_local_sandbox

    return start_local_sandbox(tmp, pool_size)


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, Settings]]:
    server, settings = make_server(tmp_path_factory.mktemp("sandbox-data"))
    yield server, settings
    server.stop()


@pytest.fixture(scope="session")
def sandbox_settings(sandbox_server: tuple[object, Settings]) -> Settings:
    return sandbox_server[1]


@pytest.fixture
async def sbx(sandbox_settings: Settings):
    from coherex.sandbox import open_sandbox

    async with await open_sandbox(sandbox_settings) as box:
        yield box
