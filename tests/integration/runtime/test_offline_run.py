"""With no key set, the csv-analysis template runs end to end on the bundled offline model: a
well-formed tool call, the platform's analysis script in the real sandbox, then an answer — executed once,
although a worker beside it looks for dead runs every second while the CPU-bound model generates
(as under `coherex up`, where CLI runs used to be taken over and run twice)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from coherex.llm import get_llm_client
from coherex.runtime import Runtime
from coherex.settings import Settings
from coherex.store.db import Identity

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # a loaded CPU makes the 135M model slow

TEMPLATE = Path(__file__).resolve().parents[3] / "templates" / "csv-analysis.yaml"


async def test_csv_analysis_on_the_offline_model(db, db_urls, make_agent, local_sandbox, tmp_path):
    settings = local_sandbox[1].model_copy(
        update={"openai_api_key": None, "openai_base_url": None, "heartbeat_seconds": 1.0}
    )
    assert isinstance(settings, Settings) and settings.llm_offline
    runtime = Runtime(db, llm=get_llm_client(settings), settings=settings)
    agent = await make_agent(TEMPLATE.read_text())
    t = make_agent.tenant
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env.update(
        {
            "DATABASE_URL": db_urls.app,
            "COHEREX_DATA_DIR": str(tmp_path / "worker"),
            "COHEREX_HEARTBEAT_SECONDS": "1",
            "COHEREX_MAINTENANCE_SECONDS": "1",
        }
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "coherex", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        execution = await runtime.create(
            t.identity, t.team_id, agent, trigger="cli", inputs={"question": "What is the total amount?"}
        )
        final = await runtime.run(
            execution.id, files={"data.csv": b"region,amount\nnorth,10\nsouth,20\nnorth,30\n"}
        )
    finally:
        worker.terminate()
        try:  # a worker loading the offline model finishes that first (seen: 15-35 s under load)
            worker.wait(90)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
    async with db.session(Identity.system()) as s:
        events = await s.executions.events(execution.id)
    calls = [e for e in events if e.type == "tool_call"]
    # the template's first step is the platform's own analysis (csv.summarize), run in the sandbox
    assert calls and calls[0].name == "csv_summarize"
    assert any(e.type == "code" for e in events), "the code ran in the sandbox"
    assert "amount: total 60" in next(e.payload["content"] for e in events if e.type == "tool_result")
    assert final.status == "completed", final.error
    # the answer phrases the analysis: the file's real total, not a made-up figure
    assert "60" in final.output["text"], final.output["text"]
    assert final.attempts == 1 and [e.type for e in events].count("status") == 1  # run once, by this process
