"""The official MCP conformance suite's client scenarios against our MCP client (the code MCP data
sources use): initialization, tool calls and every authorization scenario.

COHEREX_RECORD_MCP_RESULTS=1 refreshes the "client" section of bench/results/mcp.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parents[3] / "bench" / "results" / "mcp.json"
CLIENT = f"{sys.executable} -m coherex.tools.providers.mcp.conformance_client"

# tools, initialization and authorization: each must pass
REQUIRED = [
    "initialize",
    "tools_call",
    "sse-retry",
    "auth/metadata-default",
    "auth/metadata-var1",
    "auth/metadata-var2",
    "auth/metadata-var3",
    "auth/basic-cimd",
    "auth/scope-from-www-authenticate",
    "auth/scope-from-scopes-supported",
    "auth/scope-omitted-when-undefined",
    "auth/scope-step-up",
    "auth/scope-retry-limit",
    "auth/token-endpoint-auth-basic",
    "auth/token-endpoint-auth-post",
    "auth/token-endpoint-auth-none",
    "auth/pre-registration",
    "auth/2025-03-26-oauth-endpoint-fallback",
    "auth/resource-mismatch",
    "auth/offline-access-scope",
    "auth/offline-access-not-supported",
    "auth/client-credentials-basic",
    "auth/client-credentials-jwt",
]
# known not to pass, and why (also written to the results file)
EXPECTED_FAILURES = {
    "auth/2025-03-26-oauth-metadata-backcompat": (
        "The mcp SDK (1.30.0) checks that the authorization server metadata names the expected issuer "
        "(RFC 8414 section 3.3, SEP-2468); this 2025-03-26 legacy server publishes issuer .../oauth at "
        "the resource's origin, so the SDK stops the flow (OAuthFlowError: issuer mismatch). We keep "
        "the SDK's check rather than accept metadata for another issuer."
    ),
    "auth/cross-app-access-complete-flow": (
        "Extension (enterprise cross-app access, ID-JAG token exchange + JWT bearer grant): needs an "
        "identity provider's ID token for the user, which a data source does not have; not supported."
    ),
    "elicitation-sep1034-client-defaults": (
        "Not tools/initialization/authorization: elicitation asks a person mid-call; agents run "
        "unattended, so the client declares no elicitation capability."
    ),
}


def run_client_scenario(npm_tools, scenario: str, out: Path, env: dict[str, str]) -> dict:
    started = time.monotonic()
    done = subprocess.run(
        [
            npm_tools["node"],
            npm_tools["conformance"],
            "client",
            "--command",
            CLIENT,
            "--scenario",
            scenario,
            "--timeout",
            "120000",  # the client is a Python process: its start takes seconds on a loaded machine
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    checks = []
    for path in sorted(out.rglob("checks.json")):
        checks.extend(json.loads(path.read_text()))
    bad = {c["id"]: c["status"] for c in checks if c["status"] in ("FAILURE", "WARNING")}
    return {
        "passed": done.returncode == 0,
        "seconds": round(time.monotonic() - started, 2),
        "checks": len(checks),
        **({"not_passed": bad} if bad else {}),
        **({} if done.returncode == 0 else {"output": (done.stdout + done.stderr)[-800:]}),
    }


def record(results: dict) -> None:
    sys.path.insert(0, str(RESULTS.parents[1]))
    from _common import machine_info

    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data["client"] = {
        "machine": machine_info(),
        "how": "COHEREX_RECORD_MCP_RESULTS=1 pytest tests/integration/mcp/test_mcp_client_conformance.py "
        "(@modelcontextprotocol/conformance 0.1.16 on Node 22; client: python -m "
        "coherex.tools.providers.mcp.conformance_client, mcp SDK 1.30.0)",
        "scenarios": results,
    }
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


@pytest.fixture
def client_env(tmp_path):
    root = Path(__file__).resolve().parents[3]
    return {
        **os.environ,
        "PYTHONPATH": f"{root}:{os.environ.get('PYTHONPATH', '')}",
        "COHEREX_DATA_DIR": str(tmp_path / "data"),
        "COHEREX_EGRESS_ALLOW": "127.0.0.0/8,::1,localhost",  # the suite's servers are on loopback
    }


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_conformance_client_scenarios(npm_tools, tmp_path, client_env):
    names = REQUIRED + (list(EXPECTED_FAILURES) if os.environ.get("COHEREX_RECORD_MCP_RESULTS") else [])
    # two at a time: each scenario is mostly a client process starting and a few local requests
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {
            name: pool.submit(
                run_client_scenario, npm_tools, name, tmp_path / name.replace("/", "_"), client_env
            )
            for name in names
        }
        results = {name: run.result() for name, run in runs.items()}
    if os.environ.get("COHEREX_RECORD_MCP_RESULTS"):
        for name, why in EXPECTED_FAILURES.items():
            results[name]["why"] = why
        record({k: {**v, "required": k in REQUIRED} for k, v in results.items()})
    failed = {k: v for k, v in results.items() if k in REQUIRED and not v["passed"]}
    assert not failed, json.dumps(failed, indent=2)
