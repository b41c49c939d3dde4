"""/api/registry: pull, inspect and push over HTTP with an API key (the team's registry login only)."""

from __future__ import annotations

import pytest

from coherex.distribution import service
from coherex.services.agents import apply_spec
from coherex.testing.api import ApiServer

from .conftest import PASSWORD, TEMPLATES, USER, docker_login


@pytest.fixture
def api(oci_env):
    with ApiServer() as server:
        yield server


async def test_pull_inspect_push_over_http(db, two_teams, keys, oci_env, registry, api):
    alpha, bravo = two_teams
    async with db.session(alpha.identity) as s:
        await apply_spec(s, alpha.team_id, (TEMPLATES / "csv-analysis.yaml").read_text())
    await service.login(db, alpha.identity, alpha.team_id, registry.host, USER, PASSWORD)
    ref = f"{registry.host}/acme/csv-api"
    async with api.client(keys[0]) as http:
        r = await http.post("/api/registry/push", json={"agent": "csv-analysis", "ref": ref})
        assert r.status_code == 200, r.text
        pushed = r.json()
    assert pushed["ref"] == f"{ref}:1" and pushed["pinned"] == f"{ref}@{pushed['digest']}"

    docker_login(oci_env, registry.host, USER, PASSWORD)  # the server's own Docker file is never used
    async with api.client(keys[1]) as http:
        r = await http.get("/api/registry/inspect", params={"ref": pushed["ref"]})
        assert r.status_code == 403 and "needs a login" in r.json()["error"]["message"]
        await service.login(db, bravo.identity, bravo.team_id, registry.host, USER, PASSWORD)
        r = await http.get("/api/registry/inspect", params={"ref": pushed["ref"]})
        assert r.status_code == 200 and r.json()["digest"] == pushed["digest"]
        assert (
            r.json()["config"]["tools"] == ["csv.summarize", "python"]
            and r.json()["signature"]["summary"] == "unsigned"
        )
        r = await http.post("/api/registry/pull", json={"ref": f"{ref}:404"})
        assert r.status_code == 404 and "has no tag '404'" in r.json()["error"]["message"]
        r = await http.post("/api/registry/pull", json={"ref": pushed["pinned"]})
        assert r.status_code == 200, r.text
        assert r.json()["agent"] == "csv-analysis" and r.json()["created_agent"]
        r = await http.post("/api/registry/pull", json={"ref": pushed["pinned"]})
        assert r.json()["already_pulled"] and r.json()["version"] == 1
        r = await http.get("/api/agents")
        assert [a["name"] for a in r.json()] == ["csv-analysis"]
