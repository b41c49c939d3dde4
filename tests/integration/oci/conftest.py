"""Fixtures: a real registry (Debian's docker-registry, htpasswd auth), settings that let the
egress guard reach it and the fake SaaS, a vault key of the tests' own."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from coherex.settings import reset_settings_cache
from coherex.testing.registry import LocalRegistry

USER, PASSWORD = "alice", "s3cret-registry-pw"
TEMPLATES = Path(__file__).resolve().parents[3] / "templates"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with LocalRegistry(tmp_path_factory.mktemp("registry"), users={USER: PASSWORD}) as reg:
        yield reg


@pytest.fixture
def oci_env(cli_env, registry, saas, tmp_path, monkeypatch):
    """Environment (also for `coherex` subprocesses): the registry and the fake SaaS allowed, no
    Docker credential file unless a test writes one."""
    env = {
        **saas.env(),
        "COHEREX_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "COHEREX_EGRESS_ALLOW": f"{saas.env()['COHEREX_EGRESS_ALLOW']},{registry.host}",
        "DOCKER_CONFIG": str(tmp_path / "docker"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    yield {**cli_env, **env}
    reset_settings_cache()


def docker_login(env: dict[str, str], host: str, user: str, password: str) -> None:
    """Write a Docker credential file like `docker login` does (inline auths entry)."""
    import json

    path = Path(env["DOCKER_CONFIG"]) / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
