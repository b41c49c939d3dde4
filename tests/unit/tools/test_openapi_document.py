"""An OpenAPI 3 document (the real Swagger Petstore 3) → tools, and calls against a local Petstore
server with each way of sending the source's key; bad documents say what is wrong and where."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from coherex.integrations.base import Call
from coherex.settings import reset_settings_cache
from coherex.store.models import DataSource
from coherex.testing.fake_petstore import FakePetstore, document
from coherex.tools.providers.http_api import HttpApiConfig, HttpApiCredentials
from coherex.tools.providers.openapi import (
    MAX_DOCUMENT_BYTES,
    DocumentError,
    call_operation,
    load_document,
    operations,
    parse_document,
    server_url,
    source_operations,
)


@pytest.fixture
def store(monkeypatch):
    with FakePetstore() as server:
        for k, v in server.env().items():
            monkeypatch.setenv(k, v)
        reset_settings_cache()
        yield server
    reset_settings_cache()


def source_call(store: FakePetstore, **config) -> Call:
    secret = config.pop("secret", None)
    cfg = HttpApiConfig(base_url=store.base_url, **config)
    creds = HttpApiCredentials(auth_value=secret or _secret(store, cfg))
    now = datetime.now(UTC)
    source = DataSource(
        id=uuid4(),
        team_id=uuid4(),
        name="pets",
        type="http_api",
        config=cfg.model_dump(mode="json"),
        credentials_key_id=None,
        status="active",
        last_error=None,
        failing_since=None,
        last_checked_at=None,
        created_by=None,
        created_at=now,
        updated_at=now,
    )
    return Call(source, cfg, creds)


def _secret(store: FakePetstore, cfg: HttpApiConfig) -> str:
    return f"petstore:{store.api_key}" if cfg.auth == "basic" else store.api_key


def by_name(ops):
    return {o.name: o for o in ops}


def test_the_petstore_document_becomes_one_tool_per_operation():
    ops = by_name(operations(document(), "petstore"))
    assert len(ops) == 19 and {"getPetById", "addPet", "findPetsByStatus", "deletePet"} <= set(ops)
    get, add = ops["getPetById"], ops["addPet"]
    assert (get.method, get.path, get.access) == ("GET", "/pet/{petId}", "read")
    assert add.access == "write" and ops["deletePet"].access == "write"
    assert get.description.startswith("Find pet by ID.")
    assert get.parameters["required"] == ["petId"]
    assert get.parameters["properties"]["petId"]["type"] == "integer"
    # the request body is one JSON Schema with its $refs inlined (Pet → Category, Tag)
    pet = add.parameters["properties"]["body"]
    assert add.parameters["required"] == ["body"] and pet["required"] == ["name", "photoUrls"]
    assert pet["properties"]["category"]["properties"]["name"]["type"] == "string"
    assert "$ref" not in json.dumps(add.parameters) and "xml" not in json.dumps(add.parameters)
    assert ops["findPetsByStatus"].parameters["properties"]["status"]["enum"] == [
        "available",
        "pending",
        "sold",
    ]
    # what the cache stores comes back the same
    assert type(add).from_dict(json.loads(json.dumps(add.as_dict()))) == add


def test_a_parameter_that_carries_the_key_is_not_offered_to_the_model():
    from coherex.tools.providers.openapi import hidden_parameters

    cfg = HttpApiConfig(base_url="https://pets.example/api/v3", auth_header="api_key")
    ops = by_name(operations(document(), "petstore", hidden_parameters(cfg)))
    assert "api_key" not in ops["deletePet"].parameters["properties"]
    assert "api_key" in by_name(operations(document()))["deletePet"].parameters["properties"]


def test_names_without_operation_id_recursion_and_openapi_30_nullable():
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/trees/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "get": {"responses": {"200": {"description": "ok"}}},
                "patch": {
                    "requestBody": {
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}
                    },
                    "responses": {"200": {"description": "ok"}},
                },
            }
        },
        "components": {
            "schemas": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "label": {"type": "string", "nullable": True},
                        "size": {"type": "integer", "minimum": 0, "exclusiveMinimum": True},
                        "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
                    },
                }
            }
        },
    }
    ops = by_name(operations(doc))
    assert set(ops) == {"get_trees_id", "patch_trees_id"}
    assert ops["get_trees_id"].parameters["required"] == ["id"]  # from the path item
    node = ops["patch_trees_id"].parameters["properties"]["body"]
    assert node["properties"]["label"]["type"] == ["string", "null"]
    assert node["properties"]["size"] == {"type": "integer", "exclusiveMinimum": 0}
    assert "nested as above" in node["properties"]["children"]["items"]["description"]


def _petstore_with(path: list, value) -> dict:
    doc = copy.deepcopy(document())
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


CATEGORY_REF = ["components", "schemas", "Pet", "properties", "category", "$ref"]


@pytest.mark.parametrize(
    "doc, expected",
    [
        ({"hello": "world"}, "not an OpenAPI document: it has no `openapi: 3.x` field"),
        (
            {"swagger": "2.0", "info": {"title": "x", "version": "1"}, "paths": {}},
            "Swagger 2.0 (OpenAPI 2); give an OpenAPI 3 document",
        ),
        (
            {"openapi": "3.0.0", "info": {"title": "x"}, "paths": {}},
            'not valid OpenAPI 3.0.0: "version" is a required property (at $.info)',
        ),
        (
            _petstore_with(CATEGORY_REF, "#/components/schemas/Kategory"),
            (
                "broken $ref '#/components/schemas/Kategory' "
                "(in $.components.schemas.Pet.properties.category): "
                "it points to nothing"
            ),
        ),
        (
            _petstore_with(CATEGORY_REF, "https://schemas.example/category.json"),
            "a $ref to another file or URL (https://schemas.example/category.json)",
        ),
        (
            {"openapi": "3.1.0", "info": {"title": "x", "version": "1"}, "paths": {}},
            "has no operations under `paths`",
        ),
    ],
)
def test_a_bad_document_says_what_is_wrong(doc, expected):
    with pytest.raises(DocumentError) as err:
        operations(doc, "at https://api.example/openapi.json")
    assert expected in err.value.message and "at https://api.example/openapi.json" in err.value.message


def test_a_ref_to_a_file_or_url_is_never_read(store):
    doc = _petstore_with(CATEGORY_REF, store.document_url)
    with pytest.raises(DocumentError, match="only references inside the document are followed"):
        operations(doc)
    doc = _petstore_with(CATEGORY_REF, "file:///etc/passwd#/x")
    with pytest.raises(DocumentError, match=r"another file or URL \(file:///etc/passwd"):
        operations(doc)
    assert store.document_requests == 0


def test_huge_documents_are_refused_with_the_limit():
    with pytest.raises(DocumentError, match=r"larger than 2 MB \(2,000,\d{3} bytes\)"):
        parse_document(b" " * (MAX_DOCUMENT_BYTES + 1) + b"{}", "in big.yaml")
    with pytest.raises(DocumentError, match="neither JSON nor YAML at line 1"):
        parse_document(b"{not: [json", "in bad.yaml")
    # a small document whose schemas each use the next one ten times: 10**12 nodes once inlined
    schemas = {
        f"S{i}": {
            "type": "object",
            "properties": {p: {"$ref": f"#/components/schemas/S{i + 1}"} for p in "abcdefghij"},
        }
        for i in range(12)
    }
    schemas["S12"] = {"type": "string"}
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "bomb", "version": "1"},
        "paths": {
            "/x": {
                "post": {
                    "requestBody": {
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}
                    },
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
        "components": {"schemas": schemas},
    }
    with pytest.raises(DocumentError, match=r"too large to turn into tools: .* more than 200,000 entries"):
        operations(doc)


def test_an_openapi_setting_is_a_url_never_a_path_of_the_platform():
    with pytest.raises(ValueError, match="must be the http\\(s\\) URL of an OpenAPI document"):
        HttpApiConfig(base_url="https://x.example", openapi="/etc/passwd")
    with pytest.raises(ValueError, match="must be the http\\(s\\) URL"):
        HttpApiConfig(base_url="https://x.example", openapi="file:///etc/passwd")
    with pytest.raises(ValueError, match="auth 'query' needs auth_query"):
        HttpApiConfig(base_url="https://x.example", auth="query")


async def test_the_document_is_fetched_through_the_egress_guard(store, monkeypatch):
    call = source_call(store, openapi=store.document_url, auth_header="api_key")
    ops = by_name(await source_operations(call.config, call.credentials))
    assert len(ops) == 19 and "api_key" not in ops["deletePet"].parameters["properties"]
    assert (
        server_url(await load_document(call.config, call.credentials), store.document_url) == store.base_url
    )

    monkeypatch.setenv("COHEREX_EGRESS_ALLOW", "")
    reset_settings_cache()
    with pytest.raises(DocumentError, match="not allowed: it is a loopback address.*COHEREX_EGRESS_ALLOW"):
        await load_document(call.config, call.credentials)


@pytest.mark.parametrize(
    "config, how",
    [
        ({"auth_header": "api_key"}, "header"),
        ({"auth": "bearer"}, "bearer"),
        ({"auth": "basic"}, "basic"),
        ({"auth": "query", "auth_query": "api_key"}, "query"),
    ],
)
async def test_calls_apply_the_sources_credentials(store, config, how):
    rex = store.add_pet("Rex")
    call = source_call(store, **config)
    ops = by_name(operations(document()))
    got = await call_operation(call, ops["getPetById"], {"petId": rex["id"]})
    assert got["status"] == 200 and got["body"]["name"] == "Rex" and "note" not in got
    added = await call_operation(
        call, ops["addPet"], {"body": {"name": "Tom", "photoUrls": [], "status": "pending"}}
    )
    assert added["status"] == 200 and store.pets[added["body"]["id"]]["name"] == "Tom"
    assert [r.auth for r in store.requests] == [how, how]
    assert store.requests[1].body == {"name": "Tom", "photoUrls": [], "status": "pending"}


async def test_without_the_key_the_api_refuses_and_the_model_cannot_set_it(store):
    call = source_call(store, auth="query", auth_query="api_key", secret="wrong-key-123456")
    ops = by_name(operations(document()))
    from coherex.integrations.base import ServiceError

    with pytest.raises(ServiceError, match="refused the credentials"):
        await call_operation(call, ops["getPetById"], {"petId": 1})
    # a header argument named like the source's key header is dropped; the source's key is sent
    rex = store.add_pet("Rex")
    call = source_call(store, auth_header="api_key")
    got = await call_operation(call, ops["deletePet"], {"petId": rex["id"], "api_key": "model-chosen"})
    assert got["status"] == 200 and store.requests[-1].headers["api_key"] == store.api_key


async def test_query_arrays_path_escapes_and_a_sloppy_response_is_a_note(store):
    call = source_call(store, auth="bearer")
    ops = by_name(operations(document()))
    await call_operation(call, ops["findPetsByTags"], {"tags": ["a", "b"]})
    assert store.requests[-1].raw_query == "tags=a&tags=b"  # form style, exploded (the default)
    await call_operation(call, ops["getPetById"], {"petId": "a/b"})
    assert store.requests[-1].raw_path == "/api/v3/pet/a%2Fb"  # one path segment, as sent
    from coherex.integrations.base import ServiceError

    sent = len(store.requests)
    with pytest.raises(ServiceError, match="is not allowed"):
        await call_operation(call, ops["getPetById"], {"petId": "../store/inventory"})
    assert len(store.requests) == sent
    sloppy = store.add_pet("Odd")
    store.pets[sloppy["id"]]["name"] = 42  # the provider answers with what its schema says it never does
    got = await call_operation(call, ops["getPetById"], {"petId": sloppy["id"]})
    assert got["status"] == 200 and got["body"]["name"] == 42
    assert got["note"].startswith("The response does not match the documented schema at name: 42 is not")


async def test_discovered_tools_and_calls_read_the_document_once_per_listing(store):
    from coherex.tools.providers.openapi import call_tool, discover_tools

    call = source_call(store, openapi=store.document_url, auth_header="api_key")
    tools = {t.name: t for t in await discover_tools(call)}
    assert tools["getPetById"].access == "read" and tools["addPet"].access == "write"
    assert (
        tools["getPetById"].needs_data_source and "api_key" not in tools["deletePet"].parameters["properties"]
    )
    rex = store.add_pet("Rex")
    for _ in range(2):
        got = await call_tool(call, "getPetById", {"petId": rex["id"]})
        assert got["body"]["name"] == "Rex"
    assert store.document_requests == 1
    with pytest.raises(Exception, match="no longer has the operation 'getPetByName'.*sources test pets"):
        await call_tool(call, "getPetByName", {})
    # another process (nothing remembered) reads the document again, once
    other = source_call(store, openapi=store.document_url, auth_header="api_key")
    await call_tool(other, "getPetById", {"petId": rex["id"]})
    assert store.document_requests == 2
    assert await discover_tools(source_call(store)) == []  # a plain http_api source has no document
