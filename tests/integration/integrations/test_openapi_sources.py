"""`coherex sources add http_api NAME --openapi URL|FILE` against the local Petstore 3 server."""

from __future__ import annotations

import json

import pytest

from coherex.cli import main
from coherex.settings import reset_settings_cache
from coherex.testing.fake_petstore import DOCUMENT_PATH, FakePetstore


@pytest.fixture
def store(settings_env, monkeypatch):
    with FakePetstore() as server:
        monkeypatch.setenv(
            "COHEREX_EGRESS_ALLOW", f"{settings_env['COHEREX_EGRESS_ALLOW']},127.0.0.1:{server.port}"
        )
        reset_settings_cache()
        yield server
    reset_settings_cache()


def test_add_from_a_url_or_a_file_and_refuse_a_bad_document(cli_env, store, tmp_path, capsys):
    key = ["--secret", f"auth_value={store.api_key}", "--config", "auth_header=api_key"]
    assert main(["sources", "add", "http_api", "pets", "--openapi", store.document_url, *key, "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["operations"] == 19 and added["status"] == "active", added
    assert "It offers 19 tool(s): updatePet, addPet" in added["check"]
    # the base URL came from the document's (relative) server; the check sent the key there
    assert [(r.path, r.auth) for r in store.requests] == [("/", "header")]

    # a file: its content is stored (the platform never reads a path), the base URL given
    local = ["--base-url", store.base_url]
    assert (
        main(["sources", "add", "http_api", "pets-file", "--openapi", str(DOCUMENT_PATH), *local, *key]) == 0
    )
    assert "Its OpenAPI document has 19 operation(s)" in capsys.readouterr().out

    bad = tmp_path / "swagger.json"
    bad.write_text(json.dumps({"swagger": "2.0", "info": {"title": "old", "version": "1"}, "paths": {}}))
    broken = tmp_path / "broken.yaml"
    text = DOCUMENT_PATH.read_text().replace("#/components/schemas/Category", "#/components/schemas/Categry")
    broken.write_text(text)
    for path, expected in [
        (bad, f"The document in {bad} is Swagger 2.0 (OpenAPI 2)"),
        (broken, "has a broken $ref '#/components/schemas/Categry' (in $.components.schemas.Pet.properties"),
        (tmp_path / "nope.yaml", "no such file"),
    ]:
        assert main(["sources", "add", "http_api", "bad", "--openapi", str(path), *local, *key]) == 1
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err
    assert main(["sources", "add", "slack", "s", "--openapi", str(DOCUMENT_PATH)]) == 1
    assert "settings of http_api sources" in capsys.readouterr().err

    assert main(["sources", "list", "--json"]) == 0
    assert sorted(s["name"] for s in json.loads(capsys.readouterr().out)) == ["pets", "pets-file"]


async def test_a_document_url_the_egress_guard_refuses_is_refused_when_added(world):
    from coherex.errors import UserError
    from coherex.integrations import add_source

    with pytest.raises(UserError, match=r"169\.254\.169\.254:80 .*not allowed: it is a link-local address"):
        await add_source(
            world.db,
            world.admin,
            world.team_id,
            "http_api",
            "meta",
            config={"base_url": world.saas.url, "openapi": "http://169.254.169.254/latest/openapi.json"},
        )


async def test_operations_run_through_the_grant_rate_limit_and_audit_path(world, store):
    from coherex.errors import PermissionDenied
    from coherex.integrations import add_source
    from coherex.integrations.service import invoke, open_source
    from coherex.store.db import Identity
    from coherex.tools.port import ToolCall
    from coherex.tools.providers.openapi import PROVIDER

    await add_source(
        world.db,
        world.admin,
        world.team_id,
        "http_api",
        "pets",
        config={"base_url": store.base_url, "openapi": store.document_url, "auth": "bearer"},
        credentials={"auth_value": store.api_key},
    )
    clerk, viewer = (
        await world.agent("clerk", {"pets": "write"}),
        await world.agent("viewer", {"pets": "read"}),
    )
    async with world.db.session(Identity.system()) as s:
        source = await s.sources.get_by_name(world.team_id, "pets")
    tools = {t.name: t for t in await PROVIDER.discover(await open_source(world.db, source))}
    rex = store.add_pet("Rex")

    def call(agent, name):
        return ToolCall(world.db, world.team_id, agent, None, tools[name])

    got = await invoke(call(clerk, "getPetById"), PROVIDER, "pets", {"petId": rex["id"]})
    assert got["status"] == 200 and got["body"]["name"] == "Rex"
    added = await invoke(call(clerk, "addPet"), PROVIDER, "pets", {"body": {"name": "Tom", "photoUrls": []}})
    assert added["status"] == 200 and added["body"]["name"] == "Tom"
    assert [(r.method, r.path, r.auth) for r in store.requests] == [
        ("GET", f"/pet/{rex['id']}", "bearer"),
        ("POST", "/pet", "bearer"),
    ]
    assert store.api_key not in str(got) + str(added)

    # a write tool with a read grant is refused before anything is sent
    with pytest.raises(PermissionDenied, match="declared `access: read` on 'pets'; addPet needs write"):
        await invoke(call(viewer, "addPet"), PROVIDER, "pets", {"body": {"name": "Eve", "photoUrls": []}})
    with pytest.raises(
        Exception, match="Invalid arguments for getPetById: \\(arguments\\): 'petId' is a required"
    ):
        await invoke(call(viewer, "getPetById"), PROVIDER, "pets", {})
    assert len(store.requests) == 2
    assert (await invoke(call(viewer, "getPetById"), PROVIDER, "pets", {"petId": rex["id"]}))["status"] == 200
    async with world.db.session(world.admin) as s:
        audit = await s.audit.list(world.team_id)
    writes = [a for a in audit if a.action == "tool.addPet"]
    assert [w.details["outcome"] for w in writes] == ["ok"] and writes[0].details["agent_id"] == str(clerk)
