"""OpenAPI operations that send files (multipart/form-data, a one-file body) and cookies: the model
names files of its run (uploads, what its code saved in the real local sandbox), the platform sends
their content; a cookie that carries the source's secret comes from its credentials, never from the
model. Real runtime, database and sandbox; the fake Petstore over HTTP checks what arrives."""

from __future__ import annotations

import base64
import json
import os

import pytest

from coherex.errors import UserError
from coherex.integrations import add_source, check_source
from coherex.runtime import Runtime
from coherex.settings import reset_settings_cache
from coherex.store.db import Identity
from coherex.testing.fake_openai import Text, ToolCall
from coherex.testing.fake_petstore import FakePetstore

from .test_openapi_agent import spec

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))  # not text: every byte must arrive as it was


@pytest.fixture
def store(monkeypatch):
    with FakePetstore() as server:
        monkeypatch.setenv("COHEREX_SECRET_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())
        monkeypatch.setenv("COHEREX_EGRESS_ALLOW", f"127.0.0.1:{server.port}")
        reset_settings_cache()
        yield server
    reset_settings_cache()


async def _results(db, execution_id):
    async with db.session(Identity.system()) as s:
        return [e.payload for e in await s.executions.events(execution_id) if e.type == "tool_result"]


async def _source(db, t, name, document_url, store, **config):
    await add_source(
        db,
        t.identity,
        t.team_id,
        "http_api",
        name,
        config={"base_url": store.base_url, "openapi": document_url, "auth_header": "api_key", **config},
        credentials={"auth_value": store.api_key},
    )
    source, check = await check_source(db, t.identity, t.team_id, name)
    assert check.ok, check.summary
    return {tool["name"]: tool for tool in source.tools}


async def test_a_multipart_upload_sends_files_the_code_saved_and_uploads_by_name(
    db, llm, make_agent, fake_llm, store, local_sandbox
):
    _, settings = local_sandbox
    t = make_agent.tenant
    tools = await _source(db, t, "extras", store.extras_url, store)
    body = tools["uploadPetPhotos"]["parameters"]["properties"]["body"]
    assert body["properties"]["photo"]["type"] == "string"  # a name: the model never writes bytes
    assert "name of a file of this run" in body["properties"]["photo"]["description"]
    assert body["properties"]["more"]["items"]["type"] == "string"

    rex = store.add_pet("Rex")
    agent = await make_agent(
        spec(
            "- use: python\n- use: openapi\n  dataSource: extras\n  tools: [uploadPetPhotos]\n"
            "  access: write\n"
        )
    )
    save = f"open('chart.png', 'wb').write({PNG!r})"
    upload = {
        "petId": rex["id"],
        "body": {
            "photo": "chart.png",
            "more": ["notes.txt"],
            "caption": "Rex at home",
            "meta": {"year": 2026},
        },
    }
    fake_llm.script(
        [
            ToolCall("python", {"code": save}),
            ToolCall("extras_uploadPetPhotos", upload),
            ToolCall("extras_uploadPetPhotos", {"petId": rex["id"], "body": {"photo": "missing.png"}}),
            ToolCall("extras_uploadPetPhotos", {"petId": rex["id"], "body": {"photo": "../../etc/passwd"}}),
            Text("Uploaded."),
        ]
    )
    runtime = Runtime(db, llm=llm, settings=settings)
    ex = await runtime.create(t.identity, t.team_id, agent)
    final = await runtime.run(ex.id, files={"notes.txt": b"good boy"})
    assert final.status == "completed", final.error

    (sent,) = store.uploads  # one multipart request arrived, with the key, the files and the fields
    assert sent["files"] == {
        "photo": [("chart.png", "image/png", PNG)],
        "more": [("notes.txt", "text/plain", b"good boy")],
    }
    assert sent["fields"] == {"caption": "Rex at home", "meta": '{"year": 2026}'}
    assert [r.auth for r in store.requests if r.path.endswith("/photos")] == ["header"]
    results = await _results(db, ex.id)
    assert results[1]["ok"] and "chart.png, notes.txt" in results[1]["content"]
    missing = results[2]
    assert not missing["ok"] and "There is no file 'missing.png' in this run" in missing["content"]
    assert "chart.png" in missing["content"] and "notes.txt" in missing["content"]  # what there is
    assert not results[3]["ok"] and "is not a file name of this run" in results[3]["content"]
    assert len(store.uploads) == 1  # neither bad call reached the server


async def test_a_one_file_body_is_an_upload_of_the_run_without_a_sandbox(
    db, runtime, make_agent, fake_llm, store
):
    t = make_agent.tenant
    tools = await _source(db, t, "pets", store.document_url, store)
    assert "name of a file" in tools["uploadFile"]["parameters"]["properties"]["body"]["description"]
    rex = store.add_pet("Rex")
    agent = await make_agent(
        spec("- use: openapi\n  dataSource: pets\n  tools: [uploadFile]\n  access: write\n")
    )
    fake_llm.script(
        [
            ToolCall("pets_uploadFile", {"petId": rex["id"], "body": "rex.png"}),
            ToolCall("pets_uploadFile", {"petId": rex["id"], "body": "tom.png"}),
            Text("Done."),
        ]
    )
    ex = await runtime.create(t.identity, t.team_id, agent)
    final = await runtime.run(ex.id, files={"rex.png": PNG})
    assert final.status == "completed", final.error
    assert store.uploads == [{"fields": {}, "files": {"body": [("", "", PNG)]}}]
    upload = next(r for r in store.requests if r.path.endswith("/uploadImage"))
    assert upload.headers["content-type"] == "application/octet-stream" and upload.auth == "header"
    ok, missing = await _results(db, ex.id)
    assert ok["ok"] and f"{len(PNG)} bytes" in ok["content"]
    assert (
        not missing["ok"]
        and "There is no file 'tom.png' in this run. Its files: rex.png." in missing["content"]
    )


async def test_a_session_cookie_comes_from_the_credentials_and_the_model_sets_only_its_cookies(
    db, runtime, make_agent, fake_llm, store
):
    t = make_agent.tenant
    with pytest.raises(UserError, match="auth_cookie"):
        await _source(db, t, "broken", store.extras_url, store, auth="cookie")
    tools = await _source(db, t, "mine", store.extras_url, store, auth="cookie", auth_cookie="session_id")
    # the secret cookie is the source's: not a parameter; the other cookie is the model's
    assert set(tools["getMyOrders"]["parameters"]["properties"]) == {"lang"}
    agent = await make_agent(spec("- use: openapi\n  dataSource: mine\n  tools: [getMyOrders]\n"))
    fake_llm.script(
        [
            ToolCall("mine_getMyOrders", {"lang": "de"}),
            ToolCall("mine_getMyOrders", {"session_id": "stolen"}),
            ToolCall("mine_getMyOrders", {"lang": "de; session_id=stolen"}),
            Text("You have no orders."),
        ]
    )
    ex = await runtime.create(t.identity, t.team_id, agent)
    final = await runtime.run(ex.id)
    assert final.status == "completed", final.error
    orders = [r for r in store.requests if r.path == "/store/mine"]
    assert [(r.auth, r.headers["cookie"]) for r in orders] == [
        ("cookie", f"lang=de; session_id={store.api_key}")  # only the first call was sent
    ]
    ok, own, injected = await _results(db, ex.id)
    assert ok["ok"] and '"lang": "de"' in ok["content"]
    assert not own["ok"] and "no argument 'session_id'" in own["content"]
    assert not injected["ok"] and "cannot be sent as a cookie" in injected["content"]
    assert store.api_key not in json.dumps([r.body for r in fake_llm.chat_requests])
