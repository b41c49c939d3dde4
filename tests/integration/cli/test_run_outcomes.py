"""What `coherex run | logs | ps` tell about a run whose Python call failed and whose answer did
not recover, and a file given with `--file` reaching the run as the spec's `file` input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from coherex.testing.fake_openai import FakeOpenAI, Text, ToolCall

SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: csv-check}
    spec:
      instructions: Analyse the CSV file {{file}} in your working directory.
      inputs:
        file: {type: string, default: data.csv}
      tools:
        - use: python
      limits: {maxSteps: 5}
    """)


@pytest.fixture
def env(cli_env, local_sandbox):
    _, settings = local_sandbox
    with FakeOpenAI() as server:
        # the CLI finds the test sandbox server through its data dir and port
        yield (
            server,
            {
                **cli_env,
                "OPENAI_BASE_URL": server.base_url,
                "OPENAI_API_KEY": server.api_key,
                "COHEREX_DATA_DIR": str(settings.data_path),
                "COHEREX_SANDBOX_PORT": str(settings.sandbox_port),
                "COHEREX_SANDBOX": "local",
            },
        )


def coherex(env, *args):
    return subprocess.run(
        [sys.executable, "-m", "coherex", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_a_failed_python_call_and_an_answer_that_restates_it_is_not_a_success(env, tmp_path):
    server, env = env
    spec = tmp_path / "agent.yaml"
    spec.write_text(SPEC)
    server.script(
        [
            ToolCall("python", {"code": "import pandas as pd\nprint(pd.read_csv('data.csv'"}),
            Text('I called: python({"code": "import pandas as pd"})'),
        ]
    )
    run = coherex(env, "run", str(spec), "--json")
    assert run.returncode == 3, run.stderr  # completed with errors
    execution = json.loads(run.stdout)["execution"]
    assert execution["outcome"] == "completed_with_errors" and execution["tool_errors"] == 1

    logs = coherex(env, "logs", execution["id"][:8])
    assert logs.returncode == 0, logs.stderr
    failed = [line for line in logs.stdout.splitlines() if "✗" in line]
    assert failed and "python" in failed[0] and "SyntaxError" in failed[0]
    assert "completed with errors" in logs.stdout and "1 tool call failed" in logs.stdout
    assert "SyntaxError" in logs.stdout.split("the answer came after a failed tool call:")[1]

    ps = coherex(env, "ps", "-a")
    [row] = [line for line in ps.stdout.splitlines() if execution["id"][:12] in line]
    assert "completed with errors" in row


def test_a_file_given_with_the_run_is_the_file_it_reads(env, tmp_path):
    server, env = env
    spec = tmp_path / "agent.yaml"
    spec.write_text(SPEC)
    sales = tmp_path / "sales.csv"
    sales.write_text("region,amount\nnorth,17\nsouth,25\n")
    server.script(
        [ToolCall("python", {"code": "print(open('sales.csv').read())"}), Text("North sold 17, south 25.")]
    )
    run = coherex(env, "run", str(spec), "--file", str(sales), "--json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["execution"]["inputs"] == {"file": "sales.csv"}  # not the template's data.csv
    assert "Analyse the CSV file sales.csv" in server.chat_requests[0].body["messages"][0]["content"]
    stdout = "".join(e["payload"]["text"] for e in data["events"] if e["type"] == "stdout")
    assert "north,17" in stdout


def test_run_and_logs_show_a_sub_agents_steps_under_the_step_that_called_it(env, tmp_path):
    server, env = env
    helper, boss = tmp_path / "helper.yaml", tmp_path / "boss.yaml"
    helper.write_text(
        "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: helper}\nspec: {instructions: Help.}\n"
    )
    boss.write_text(
        "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: boss}\n"
        "spec:\n  instructions: Delegate.\n  tools:\n    - use: agent\n      agent: helper\n"
    )
    assert coherex(env, "agents", "apply", str(helper)).returncode == 0
    server.script([ToolCall("helper", {}), Text("helper answer 42"), Text("The boss says 42.")])
    run = coherex(env, "run", str(boss))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    link = next(i for i, line in enumerate(lines) if "↳ agent helper v1" in line)
    inner = next(i for i, line in enumerate(lines) if "helper answer 42" in line)
    assert link < inner and lines[inner].startswith("    ")  # indented under the tool step
    execution_id = lines[0].split()[1]  # "execution <id> · boss v1"
    logs = coherex(env, "logs", execution_id)
    assert logs.returncode == 0, logs.stderr
    out = logs.stdout
    assert out.index("↳ agent helper v1") < out.index("helper answer 42") < out.index("The boss says 42.")
    [inner_llm] = [line for line in out.splitlines() if "helper answer 42" in line]
    assert inner_llm.startswith("    ") and "llm" in inner_llm
