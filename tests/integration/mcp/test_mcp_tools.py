"""Foreign MCP tools against /mcp: the official conformance suite's server scenarios that apply to
an install's own agents, and the MCP Inspector CLI listing and calling an agent."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from coherex.services.agents import apply_spec
from coherex.testing.fake_openai import Text

#: the suite's server scenarios that do not need its own test tools, resources or prompts
SCENARIOS = ["server-initialize", "ping", "logging-set-level", "tools-list", "dns-rebinding-protection"]
#: the rest expect the suite's own test tools (`test_simple_text`, `test_tool_with_progress`, …),
#: resources and prompts, which an install's agents are not; recorded, not asserted
FIXTURE_SCENARIOS = [
    "completion-complete",
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-with-logging",
    "tools-call-error",
    "tools-call-with-progress",
    "tools-call-sampling",
    "tools-call-elicitation",
    "json-schema-2020-12",
    "elicitation-sep1034-defaults",
    "server-sse-polling",
    "server-sse-multiple-streams",
    "elicitation-sep1330-enums",
    "resources-list",
    "resources-read-text",
    "resources-read-binary",
    "resources-templates-read",
    "resources-subscribe",
    "resources-unsubscribe",
    "prompts-list",
    "prompts-get-simple",
    "prompts-get-with-args",
    "prompts-get-embedded-resource",
    "prompts-get-with-image",
]
RESULTS = Path(__file__).resolve().parents[3] / "bench" / "results" / "mcp.json"

HELLO = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: hello, description: Greets someone}
    spec:
      instructions: Greet {{who}}.
      inputs:
        who: {type: string}
    """)


@pytest.fixture
def served_env(served_env, monkeypatch):
    """The suite sends dozens of requests in a few seconds: the key's bucket is not what is tested here."""
    from coherex.settings import reset_settings_cache

    roomy = {"COHEREX_API_RATE": "100000", "COHEREX_API_BURST": "100000"}
    for k, v in roomy.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    return {**served_env, **roomy}


def run_scenario(npm_tools, url: str, scenario: str, out: Path) -> dict:
    started = time.monotonic()
    done = subprocess.run(
        [
            npm_tools["node"],
            npm_tools["conformance"],
            "server",
            "--url",
            url,
            "--scenario",
            scenario,
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    checks = []
    for path in sorted(out.rglob("checks.json")):
        if scenario in str(path):
            checks.extend(json.loads(path.read_text()))
    return {
        "passed": done.returncode == 0,
        "seconds": round(time.monotonic() - started, 2),
        "checks": {
            c["id"]: c["status"] + (f": {c['errorMessage']}" if c.get("errorMessage") else "") for c in checks
        },
        **({} if done.returncode == 0 else {"output": (done.stdout + done.stderr)[-1500:]}),
    }


def record_results(results: dict) -> None:
    import sys

    sys.path.insert(0, str(RESULTS.parents[1]))
    from _common import machine_info

    kept = json.loads(RESULTS.read_text()).get("client") if RESULTS.exists() else None
    RESULTS.write_text(
        json.dumps(
            {
                **(
                    {"client": kept} if kept else {}
                ),  # the client scenarios' section (test_mcp_client_conformance)
                "machine": machine_info(),
                "how": "COHEREX_RECORD_MCP_RESULTS=1 pytest tests/integration/mcp/test_mcp_tools.py -k "
                "conformance "
                "(@modelcontextprotocol/conformance 0.1.16 on Node 22, against /mcp with an API key added "
                "by a proxy)",
                "server": results,
            },
            indent=2,
        )
        + "\n"
    )


async def test_conformance_server_scenarios(npm_tools, keyed_proxy, db, two_teams, tmp_path):
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        await apply_spec(s, alpha.team_id, HELLO)
    results = {
        name: run_scenario(npm_tools, f"{keyed_proxy}/mcp", name, tmp_path / name) for name in SCENARIOS
    }
    if os.environ.get("COHEREX_RECORD_MCP_RESULTS"):  # refresh the committed baseline, with the rest too
        others = {
            name: {**run_scenario(npm_tools, f"{keyed_proxy}/mcp", name, tmp_path / name), "applies": False}
            for name in FIXTURE_SCENARIOS
        }
        record_results({**{k: {**v, "applies": True} for k, v in results.items()}, **others})
    failed = {k: v for k, v in results.items() if not v["passed"]}
    assert not failed, json.dumps(failed, indent=2)


async def test_the_inspector_cli_lists_and_calls_an_agent(
    npm_tools, api, worker, keys, db, two_teams, fake_llm
):
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        await apply_spec(s, alpha.team_id, HELLO)
    fake_llm.script([Text("Hello, Ada!")])
    base = [
        npm_tools["node"],
        npm_tools["inspector"],
        f"{api.base_url}/mcp",
        "--transport",
        "http",
        "--header",
        f"Authorization: Bearer {keys[0]}",
    ]
    # its own directory: the CLI finds its package.json relative to the working directory
    cwd = Path(npm_tools["inspector"]).parent
    listed = subprocess.run(
        [*base, "--method", "tools/list"], capture_output=True, text=True, timeout=60, cwd=cwd
    )
    assert listed.returncode == 0, listed.stderr
    tools = json.loads(listed.stdout)["tools"]
    assert [t["name"] for t in tools] == ["hello"] and tools[0]["inputSchema"]["required"] == ["who"]
    called = subprocess.run(
        [*base, "--method", "tools/call", "--tool-name", "hello", "--tool-arg", "who=Ada"],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=cwd,
    )
    assert called.returncode == 0, called.stderr
    answer = json.loads(called.stdout)
    assert answer.get("isError") in (None, False) and answer["content"][0]["text"] == "Hello, Ada!"
    assert answer["structuredContent"]["status"] == "completed"
