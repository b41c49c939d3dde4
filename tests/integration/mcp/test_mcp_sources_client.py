"""MCP servers as data sources, the client layer: real third-party servers from npm (server-everything,
server-filesystem, server-memory) over stdio inside a real sandbox box, and server-everything over
Streamable HTTP and SSE through the egress guard."""

from __future__ import annotations

import asyncio
import json

import pytest

from coherex.integrations.base import ServiceError
from coherex.sandbox import open_sandbox
from coherex.settings import reset_settings_cache
from coherex.testing.mcp_servers import EVERYTHING, FILESYSTEM, MEMORY, EverythingServer, require_packages
from coherex.tools.providers.mcp.client import McpServerDown, open_session
from coherex.tools.providers.mcp.config import McpConfig, McpCredentials
from coherex.tools.providers.mcp.pool import SessionPool

pytestmark = pytest.mark.timeout(300)
SECRET = "tok-3b1f9c0d7e2a4f58"


@pytest.fixture(scope="module")
def servers_installed():
    require_packages()


@pytest.fixture
def boxes(local_sandbox, servers_installed):
    """A sandbox opener (the provider's), remembering the boxes it opened."""
    _, settings = local_sandbox
    opened = []

    async def opener(allow_network: bool):
        box = await open_sandbox(settings, allow_network=allow_network, timeout=600)
        opened.append(box)
        return box

    opener.opened = opened
    return opener


@pytest.fixture
def allow_loopback(monkeypatch):
    def allow(port: int) -> None:
        monkeypatch.setenv("COHEREX_EGRESS_ALLOW", f"127.0.0.1:{port}")
        reset_settings_cache()

    yield allow
    reset_settings_cache()


@pytest.fixture(params=["streamableHttp", "sse"])
def everything_http(request, tmp_path, servers_installed):
    server = EverythingServer(request.param, tmp_path / "everything.log").wait_ready()
    yield server
    server.stop()


async def test_everything_over_stdio_runs_in_the_box_with_its_env_from_the_vault(boxes, local_sandbox):
    creds = McpCredentials(env={"EVERYTHING_TOKEN": SECRET})
    async with open_session("everything", McpConfig(command=EVERYTHING), creds, sandbox=boxes) as s:
        tools = {t.name: t for t in await s.list_tools()}
        assert tools["echo"].read_only and not tools["gzip-file-as-resource"].read_only
        assert tools["echo"].input_schema["properties"]["message"]["type"] == "string"

        assert (await s.call_tool("echo", {"message": "hello box"})).text == "Echo: hello box"
        image = await s.call_tool("get-tiny-image", {})
        assert image.images and image.images[0][0] == "image/png"
        assert image.images[0][1].startswith(b"\x89PNG")
        structured = await s.call_tool("get-structured-content", {"location": "New York"})
        assert {"temperature", "conditions"} <= set(structured.data)
        resource = await s.call_tool("get-resource-reference", {"resourceType": "Text", "resourceId": 1})
        assert resource.resources and resource.resources[0]["uri"].endswith("/1")
        assert resource.resources[0].get("text")

        # the server's process environment: the box's, plus what the source gave it; not the host's.
        # The token reached the server; what the model reads of it is redacted.
        env = json.loads((await s.call_tool("get-env", {})).text)
        assert env["HOME"] == "/home/user" and env["EVERYTHING_TOKEN"] == "[redacted]"
        assert not {"DATABASE_URL", "COHEREX_DATA_DIR", "COHEREX_EGRESS_ALLOW"} & set(env)

        unknown = await s.call_tool("no-such-tool", {})  # an MCP error result: the tool's error, told
        assert unknown.is_error and "no-such-tool" in unknown.text
    server, _ = local_sandbox
    assert SECRET not in server.log_path.read_text()  # the token reached the box, not the logs
    for box in boxes.opened:  # closing the session killed its box
        assert not await box.is_running()


async def test_everything_over_http_through_the_egress_guard(everything_http, allow_loopback):
    config = McpConfig(url=everything_http.url)
    with pytest.raises(ServiceError, match="COHEREX_EGRESS_ALLOW"):  # loopback is the platform's own
        async with open_session("everything", config, McpCredentials()):
            pass
    allow_loopback(everything_http.port)
    async with open_session("everything", config, McpCredentials()) as s:
        assert "echo" in {t.name for t in await s.list_tools()}
        assert (await s.call_tool("echo", {"message": "over http"})).text == "Echo: over http"
        assert (await s.call_tool("get-tiny-image", {})).images


async def test_filesystem_and_memory_over_stdio_keep_state_within_a_session(boxes):
    async with open_session("fs", McpConfig(command=FILESYSTEM), McpCredentials(), sandbox=boxes) as s:
        tools = {t.name: t for t in await s.list_tools()}
        assert tools["read_text_file"].read_only and not tools["write_file"].read_only
        await s.call_tool("write_file", {"path": "/home/user/notes.txt", "content": "box-local note"})
        assert (
            await s.call_tool("read_text_file", {"path": "/home/user/notes.txt"})
        ).text == "box-local note"
        outside = await s.call_tool("read_text_file", {"path": "/etc/hostname"})
        assert outside.is_error and "denied" in outside.text.lower()  # the server's own allow-list
    # its package dir is read-only in the box (/usr): its store goes to the box's home
    memory_env = McpCredentials(env={"MEMORY_FILE_PATH": "/home/user/memory.jsonl"})
    async with open_session("memory", McpConfig(command=MEMORY), memory_env, sandbox=boxes) as s:
        entity = {"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]}
        assert not (await s.call_tool("create_entities", {"entities": [entity]})).is_error
        found = await s.call_tool("search_nodes", {"query": "Ada"})
        assert found.data["entities"][0]["observations"] == ["wrote the first program"]


async def test_a_server_killed_mid_call_is_a_backend_error_and_the_pool_starts_a_new_one(boxes):
    pool = SessionPool()
    config = McpConfig(command=EVERYTHING)

    def open_():
        return open_session("everything", config, McpCredentials(), sandbox=boxes)

    try:
        s = await pool.session("run-1", open_)
        assert await pool.session("run-1", open_) is s  # the run's calls share one server
        call = asyncio.create_task(
            s.call_tool("trigger-long-running-operation", {"duration": 30, "steps": 30})
        )
        await asyncio.sleep(1)
        await boxes.opened[-1].commands.run("pkill -9 -f server-everything || kill -9 -1", timeout=10)
        with pytest.raises(
            McpServerDown, match="went away while asked to run 'trigger-long-running-operation'"
        ):
            await asyncio.wait_for(call, 60)
        again = await pool.session("run-1", open_)
        assert again is not s and (await again.call_tool("echo", {"message": "back"})).text == "Echo: back"
    finally:
        await pool.close_all()
