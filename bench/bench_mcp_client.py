"""MCP data sources: what our client adds to a tool call, and how long a stdio server takes to start
in a sandbox box.

1. Call overhead, `echo` of @modelcontextprotocol/server-everything, p50/p95 over --n calls:
   - Streamable HTTP (server on the host's loopback): the bare SDK (`streamable_http_client` +
     `ClientSession`) vs our client (`open_session`: egress-guarded httpx, result conversion,
     redaction of the source's secrets);
   - stdio: the bare SDK with the server as a host process (`stdio_client`) vs ours with the server
     inside a sandbox box (stdin/stdout through the sandbox's process API).
   - through the provider, as an agent's call runs (`integrations.service.invoke`: grant check,
     credentials from the vault, the per-source rate limiter in Postgres, the pooled session);
2. Start of a stdio server in a box (new box → `initialize` answered), --starts times each:
   - `npx -y` of a package that is not pre-installed (downloaded into the fresh box: cold);
   - `npx -y` of a pre-installed package (scripts/install_mcp_servers.sh: one registry lookup);
   - the pre-installed package's binary directly (no npx);
   - warm: a run's next call, which reuses the live session from the pool.

    python bench/bench_mcp_client.py [--n 200] [--starts 5]   # writes bench/results/mcp_client.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import percentiles, record
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from coherex.sandbox import open_sandbox
from coherex.settings import reset_settings_cache
from coherex.testing.mcp_servers import EverythingServer, require_packages
from coherex.testing.sandbox import start_local_sandbox
from coherex.tools.providers.mcp.client import open_session
from coherex.tools.providers.mcp.config import McpConfig, McpCredentials
from coherex.tools.providers.mcp.pool import SessionPool

NOT_PREINSTALLED = "npx -y @modelcontextprotocol/server-sequential-thinking@2026.8.31"


async def paired(direct, ours, n: int) -> tuple[dict, dict]:
    """Alternate the two calls, so that the machine's load (shared with other work) hits both alike."""
    for i in range(5):  # warm-up
        await direct(i)
        await ours(i)
    a: list[float] = []
    b: list[float] = []
    for i in range(n):
        for fn, samples in ((direct, a), (ours, b)) if i % 2 else ((ours, b), (direct, a)):
            t = time.perf_counter()
            await fn(i)
            samples.append((time.perf_counter() - t) * 1000)
    return percentiles(a), percentiles(b)


def echo(session):
    return lambda i: session.call_tool("echo", {"message": f"m{i}"})


async def call_overhead(url: str, opener, n: int) -> dict:
    out: dict = {}
    creds = McpCredentials(headers={"X-Bench": "k3y-not-sent-anywhere"})
    async with (
        streamable_http_client(url) as (r, w, _),
        ClientSession(r, w) as direct,
        open_session("bench", McpConfig(url=url), creds) as ours,
    ):
        await direct.initialize()
        out["http_sdk_direct"], out["http_coherex_client"] = await paired(echo(direct), echo(ours), n)
    params = StdioServerParameters(command="mcp-server-everything", args=[])
    config = McpConfig(command="npx -y @modelcontextprotocol/server-everything")
    with open(os.devnull, "w") as devnull:  # noqa: ASYNC230 -- /dev/null never blocks
        async with (
            stdio_client(params, errlog=devnull) as (r, w),
            ClientSession(r, w) as direct,
            open_session("bench", config, McpCredentials(), sandbox=opener) as ours,
        ):
            await direct.initialize()
            out["stdio_sdk_host_process"], out["stdio_coherex_in_box"] = await paired(
                echo(direct), echo(ours), n
            )
    for kind, base, mine in (
        ("http", "http_sdk_direct", "http_coherex_client"),
        ("stdio", "stdio_sdk_host_process", "stdio_coherex_in_box"),
    ):
        out[f"{kind}_added_ms"] = {
            "p50": round(out[mine]["p50_ms"] - out[base]["p50_ms"], 3),
            "p95": round(out[mine]["p95_ms"] - out[base]["p95_ms"], 3),
        }
    return out


AGENT = """\
apiVersion: coherex/v1
kind: Agent
metadata: {name: bench, description: Calls MCP tools}
spec:
  instructions: Call tools.
"""


async def provider_overhead(url: str, n: int) -> dict:
    """The whole path of an agent's MCP tool call (grant check, credentials from the vault, rate
    limiter, pooled session, result conversion) against the bare SDK, same server, same tool."""
    from coherex.integrations.service import _open, add_source, invoke
    from coherex.integrations.vault import generate_key
    from coherex.services.agents import apply_spec
    from coherex.store.db import Database, Identity
    from coherex.testing.postgres import TestPostgres
    from coherex.tools.port import ToolCall
    from coherex.tools.providers.mcp import provider as mcp

    os.environ["COHEREX_SECRET_KEY"] = generate_key()
    reset_settings_cache()
    server = TestPostgres.start()
    urls = server.create_database()
    try:
        async with Database(urls.app, max_size=4) as db:
            async with db.session(Identity.system()) as s:
                user = await s.users.create("bench@example.com")
            owner = Identity.user(user.id)
            async with db.session(owner) as s:
                team = await s.teams.create("bench", "Bench")
            source = await add_source(db, owner, team.id, "mcp", "remote", config={"url": url})
            async with db.session(owner) as s:
                agent = (await apply_spec(s, team.id, AGENT)).agent
                await s.agents.set_data_sources(agent, [(source.id, "read")])
            tools = {t.name: t for t in await mcp.PROVIDER.discover(await _open(db, source))}

            async def ours(i: int):
                call = ToolCall(db, team.id, agent.id, None, tools["echo"])
                return await invoke(call, mcp.PROVIDER, "remote", {"message": f"m{i}"})

            try:
                async with streamable_http_client(url) as (r, w, _), ClientSession(r, w) as direct:
                    await direct.initialize()
                    base, mine = await paired(echo(direct), ours, n)
            finally:
                await mcp.POOL.close_all()
    finally:
        server.drop_database(urls)
        server.stop()
    return {
        "http_sdk_direct": base,
        "http_through_provider": mine,
        "added_ms": {
            "p50": round(mine["p50_ms"] - base["p50_ms"], 3),
            "p95": round(mine["p95_ms"] - base["p95_ms"], 3),
        },
    }


async def starts(opener, k: int) -> dict:
    out: dict = {}
    cases = {
        "npx_not_preinstalled_cold": NOT_PREINSTALLED,
        "npx_preinstalled": "npx -y @modelcontextprotocol/server-everything",
        "binary_preinstalled": "mcp-server-everything",
    }
    for name, command in cases.items():
        samples = []
        for _ in range(k):
            t = time.perf_counter()
            async with open_session("bench", McpConfig(command=command), McpCredentials(), sandbox=opener):
                samples.append((time.perf_counter() - t) * 1000)
        out[name] = percentiles(samples)
    pool = SessionPool()
    config = McpConfig(command="npx -y @modelcontextprotocol/server-everything")

    def open_():
        return open_session("bench", config, McpCredentials(), sandbox=opener)

    try:
        await pool.session("run", open_)
        samples = []
        for _ in range(50):
            t = time.perf_counter()
            s = await pool.session("run", open_)
            await s.call_tool("echo", {"message": "warm"})
            samples.append((time.perf_counter() - t) * 1000)
        out["warm_pooled_session_call"] = percentiles(samples)
    finally:
        await pool.close_all()
    return out


async def main(args) -> None:
    require_packages()
    with tempfile.TemporaryDirectory(prefix="coherex-bench-mcp-") as tmp:
        server, settings = start_local_sandbox(Path(tmp) / "sandbox")
        http = EverythingServer("streamableHttp", Path(tmp) / "everything.log").wait_ready()
        os.environ["COHEREX_EGRESS_ALLOW"] = f"127.0.0.1:{http.port}"
        reset_settings_cache()

        async def opener(allow_network: bool):
            return await open_sandbox(settings, allow_network=allow_network, timeout=600)

        try:
            results = {
                "calls": await call_overhead(http.url, opener, args.n),
                "provider": await provider_overhead(http.url, args.n),
                "stdio_start_in_box": await starts(opener, args.starts),
                "load_average_at_end": os.getloadavg(),
            }
        finally:
            http.stop()
            server.stop()
    record("mcp_client", results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--starts", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
