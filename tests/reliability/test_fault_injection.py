"""The bounded fault-injection run for CI: 150 executions through the real queue with two worker
processes while LLM 429/500/timeouts, self-killing sandbox code, rows without a job, a SIGKILLed
worker, two database restarts (one while runs are being started) and a killed sandbox server are
injected, and runs that wait for approval are approved or rejected meanwhile, some as the database
stops (the campaign lives in bench/bench_reliability.py, which runs it with 1 000)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_reliability.py"


def _campaign():
    spec = importlib.util.spec_from_file_location("bench_reliability", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_reliability"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.campaign


# Generous bounds (the campaign waits for states, never for fixed times): on a loaded 2-core
# machine the same campaign takes 4-5 times as long as on an idle one.
@pytest.mark.timeout(480)
async def test_150_executions_survive_every_injected_fault():
    results = await _campaign()(150, timeout=420)
    assert results["rows"] == 150
    assert results["stuck"] == 0, results
    assert results["duplicated"] == 0, results
    assert results["lost"] == 0 and results["lost_events"] == 0, results
    assert results["counted_in_usage"] == 150  # quotas saw each run exactly once
    assert results["failed_without_reason"] == 0, results
    assert results["success_rate"] == 1.0, results  # every fault is transient
    faults = results["faults_injected"]
    assert (
        faults["worker_sigkill"] == 1
        and faults["database_restart"] == 2
        and faults["sandbox_server_killed"] == 1
    )
    assert min(faults.get(k, 0) for k in ("llm_429", "llm_500", "llm_timeout", "sandbox_crash")) > 0, faults
    assert results["faults_planned"]["orphan"] > 0 and results["faults_planned"]["python"] > 0
    # approvals: every run paused once and got the planned decision; an approved post was made
    # exactly once, a rejected one never, and the rejected call is not shown as a successful one
    runs = results["approval_runs"]
    assert runs["approve"] > 0 and runs["reject"] > 0, runs
    assert results["approval_duplicated"] == 0 and results["approval_wrong_decision"] == 0, results
    posts = results["approved_posts"]
    assert posts["twice_or_more"] == 0 and results["approved_lost"] == 0, results
    assert posts["once"] + posts["never"] == runs["approve"], results
    assert posts["never"] <= results["approved_outcome_unknown"], results  # said so, never silent
    assert results["approved_not_acknowledged"] == 0, results
    assert results["rejected_posted"] == 0 and results["rejected_shown_as_success"] == 0, results
    assert faults["decisions_as_database_stopped"] > 0, faults  # some decisions met the restart
