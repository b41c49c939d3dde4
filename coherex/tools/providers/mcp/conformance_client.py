"""The client under test of the official MCP conformance suite: our MCP client code, driven as a
Coherex data source would drive it.

    npx @modelcontextprotocol/conformance client \
        --command "python -m coherex.tools.providers.mcp.conformance_client"

The suite appends the server's URL, names the scenario in MCP_CONFORMANCE_SCENARIO and gives
scenario data (pre-registered client credentials, ...) in MCP_CONFORMANCE_CONTEXT. The client
connects (OAuth where the server asks for it: discovery, registration, PKCE, tokens kept in an
in-memory stand-in for the vault), lists the tools and calls them. The suite's servers listen on
this machine's loopback, which the egress guard refuses unless allowed: this entry allows loopback
for itself (only when COHEREX_EGRESS_ALLOW is unset), exactly as an operator would.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any
from urllib.parse import parse_qs, urlsplit

# the tool arguments the suite's servers expect, by tool name
ARGUMENTS: dict[str, dict[str, Any]] = {"add_numbers": {"a": 5, "b": 3}}
CLIENT_METADATA_URL = "https://conformance-test.local/client-metadata.json"


async def run(url: str, scenario: str, context: dict[str, Any]) -> None:
    from coherex import egress
    from coherex.tools.providers.mcp.client import open_session
    from coherex.tools.providers.mcp.config import McpConfig, McpCredentials, OAuthState

    credentials = McpCredentials()
    if scenario.startswith("auth/"):
        grant = "client_credentials" if "client-credentials" in scenario else "authorization_code"
        secret = context.get("client_secret")
        credentials.oauth = OAuthState(
            grant=grant,
            client_id=context.get("client_id"),
            client_secret=secret or None,
            private_key=context.get("private_key_pem") or None,
            signing_algorithm=context.get("signing_algorithm") or "RS256",
            # the URL the suite expects as client id (it does not fetch it)
            client_metadata_url=CLIENT_METADATA_URL,
        )
    code: dict[str, str | None] = {}

    async def redirect_handler(authorization_url: str) -> None:
        # the suite's authorization server answers at once with a redirect carrying the code
        async with egress.async_client(follow_redirects=False, timeout=10) as client:
            r = await client.get(authorization_url)
        query = parse_qs(urlsplit(r.headers.get("location", "")).query)
        code["code"] = (query.get("code") or [None])[0]
        code["state"] = (query.get("state") or [None])[0]

    async def callback_handler() -> tuple[str, str | None]:
        if not code.get("code"):
            raise RuntimeError("the authorization server gave no code")
        return code["code"] or "", code.get("state")

    async def save(changed: McpCredentials) -> None:
        print(
            f"credentials saved (oauth: {bool(changed.oauth and changed.oauth.access_token)})",
            file=sys.stderr,
        )

    handlers = {
        "redirect_handler": redirect_handler,
        "callback_handler": callback_handler,
        "redirect_uri": "http://localhost:3000/callback",
    }
    async with open_session(
        "conformance", McpConfig(url=url), credentials, save=save, oauth_handlers=handlers
    ) as session:
        print(f"connected to {session.server_name}", file=sys.stderr)
        tools = await session.list_tools()
        print(f"tools: {[t.name for t in tools]}", file=sys.stderr)
        for tool in tools:
            result = await session.call_tool(tool.name, ARGUMENTS.get(tool.name, {}))
            print(f"{tool.name} -> error={result.is_error} {result.text[:200]}", file=sys.stderr)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: conformance_client SERVER_URL", file=sys.stderr)
        return 2
    os.environ.setdefault("COHEREX_EGRESS_ALLOW", "127.0.0.0/8,::1,localhost")
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    print(f"scenario {scenario}, context keys {sorted(context)}", file=sys.stderr)
    try:
        asyncio.run(run(argv[-1], scenario, context))
    except Exception as exc:  # noqa: BLE001 -- the suite reads the exit code and stderr
        print(f"failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
