"""`coherex run | ps | logs | stop` as a person uses them, with the fake OpenAI server as the model."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from coherex.testing.fake_openai import FakeOpenAI, Slow, Text, ToolCall

SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: cli-demo}
    spec:
      instructions: Say hello to {{who}}.
      inputs:
        who: {type: string, default: world}
      limits: {maxSteps: 5}
    """)


@pytest.fixture
def llm_env(cli_env):
    with FakeOpenAI() as server:
        yield server, {**cli_env, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": server.api_key}


def coherex(env, *args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "coherex", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_run_streams_each_step_as_it_happens(llm_env, tmp_path):
    server, env = llm_env
    spec = tmp_path / "agent.yaml"
    spec.write_text(SPEC)
    server.script([ToolCall("missing_tool", {"x": 1}), Slow(3, Text("Hello, Ada!"))])
    proc = subprocess.Popen(
        [sys.executable, "-m", "coherex", "run", str(spec), "--input", "who=Ada"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "missing_tool" in line and "✗" in line:
            # the failed tool call is on screen while the model's next answer is still 3 s away
            assert proc.poll() is None
            break
    out = "".join(lines) + proc.stdout.read()
    proc.wait(30)
    # the answer came after a failed tool call nothing fixed: not a plain success (exit code 3)
    assert proc.returncode == 3, proc.stderr.read()
    assert "Hello, Ada!" in out and "completed with errors" in out
    assert "Say hello to Ada." in server.chat_requests[0].body["messages"][0]["content"]


def test_run_failure_exits_nonzero_with_the_reason(llm_env, tmp_path):
    server, env = llm_env
    spec = tmp_path / "agent.yaml"
    spec.write_text(SPEC)
    server.always(ToolCall("missing_tool", {}))
    res = coherex(env, "run", str(spec))
    assert res.returncode == 1
    assert "limits.maxSteps" in res.stderr and "Traceback" not in res.stderr


def test_run_json_ps_and_logs(llm_env, tmp_path):
    server, env = llm_env
    spec = tmp_path / "agent.yaml"
    spec.write_text(SPEC)
    server.script([Text("hi")])
    res = coherex(env, "run", str(spec), "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    ex_id = data["execution"]["id"]
    assert data["execution"]["status"] == "completed"
    assert [e["type"] for e in data["events"]] == ["llm_call", "status"]

    ps = coherex(env, "ps", "-a")
    assert ex_id[:12] in ps.stdout and "completed" in ps.stdout
    assert "No running executions" in coherex(env, "ps").stdout

    logs = coherex(env, "logs", ex_id[:8])
    assert "llm" in logs.stdout and "completed" in logs.stdout
    lines = coherex(env, "logs", ex_id, "--json").stdout.splitlines()
    assert [json.loads(x)["seq"] for x in lines] == [1, 2]

    bad = coherex(env, "logs", "not-an-id")
    assert bad.returncode == 1 and "is not an execution id" in bad.stderr


def test_logs_print_every_step_of_a_long_run(llm_env, db_urls, tmp_path):
    """More steps than one read of the database returns (1,000): all are printed, in order."""
    import psycopg

    server, env = llm_env
    spec = tmp_path / "agent.yaml"
    spec.write_text(SPEC)
    server.script([Text("hi")])
    ex_id = json.loads(coherex(env, "run", str(spec), "--json").stdout)["execution"]["id"]
    with psycopg.connect(db_urls.admin, autocommit=True) as conn:  # a long run's log steps
        conn.execute(
            "insert into public.execution_events (execution_id, team_id, seq, type, name, payload) "
            "select x.id, x.team_id, g, 'log', 'progress', jsonb_build_object('step', g) "
            "from public.agent_executions x, generate_series(3, 1502) g where x.id = %s",
            (ex_id,),
        )
    lines = coherex(env, "logs", ex_id, "--json").stdout.splitlines()
    assert [json.loads(x)["seq"] for x in lines] == list(range(1, 1503))


def test_stop_cancels_a_running_execution_and_logs_follow_sees_it(llm_env, tmp_path):
    server, env = llm_env
    spec = tmp_path / "agent.yaml"
    spec.write_text(SPEC)
    server.script([Slow(20, Text("never shown"))])
    runner = subprocess.Popen(
        [sys.executable, "-m", "coherex", "run", str(spec)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ex_id = None
    deadline = time.monotonic() + 60  # a generous bound: on a loaded 2-core machine Python starts slowly
    while ex_id is None and time.monotonic() < deadline:
        listed = json.loads(coherex(env, "ps", "--json").stdout)
        running = [r for r in listed if r["status"] == "running"]
        ex_id = running[0]["id"] if running else None
    assert ex_id, "the run never showed up as running"
    follower = subprocess.Popen(
        [sys.executable, "-m", "coherex", "logs", "-f", ex_id],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stopped = coherex(env, "stop", ex_id)
    assert stopped.returncode == 0 and "stop requested" in stopped.stdout
    assert runner.wait(10) == 1
    assert "cancelled" in runner.stdout.read()
    follower.wait(10)
    assert "cancelled" in follower.stdout.read()
