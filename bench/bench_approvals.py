"""Human approval: time from a person's decision to the resumed tool call, with real parts.

A real worker process (its own Postgres queue, the real runtime and Slack client) runs agents whose
`slack.post_message` has `approval: always`; the fake LLM answers instantly. Each run pauses
(`waiting_approval`, no worker held); then, one run at a time, the bench approves its call through
`coherex.runtime.approvals.decide` (what the API, CLI and dashboard call) and measures:

- decide_ms: the decision's transaction (conditional update, audit, event, re-queue with its job);
- decision_to_call_ms: from the start of the decision to the fake Slack receiving the post — the
  job being picked up (procrastinate's LISTEN/NOTIFY), the claim, the resume from stored state, and
  the call itself;
- pause_ms: from queueing a run to it waiting for approval (for reference).

Runs are decided 1.05 s apart: the Slack source's own rate limit (1 call/s, burst 5) would otherwise
be what is measured (decisions back to back gave p50 ~940 ms, the limiter's wait).
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import percentiles, record  # noqa: E402

from coherex.integrations.service import add_source  # noqa: E402
from coherex.runtime import Runtime  # noqa: E402
from coherex.runtime.approvals import decide  # noqa: E402
from coherex.services.agents import apply_spec  # noqa: E402
from coherex.settings import reset_settings_cache  # noqa: E402
from coherex.store.db import Database, Identity  # noqa: E402
from coherex.testing.fake_openai import FakeOpenAI, Text, ToolCall  # noqa: E402
from coherex.testing.fake_saas import FakeSaaS  # noqa: E402
from coherex.testing.postgres import TestPostgres  # noqa: E402

RUNS = int(os.environ.get("BENCH_APPROVAL_RUNS", "40"))
#: the Slack integration allows 1 call/s per source (burst 5); closer decisions measure that limiter
SLACK_SPACING = 1.05
SPEC = """\
apiVersion: coherex/v1
kind: Agent
metadata: {name: poster}
spec:
  instructions: Post the update.
  tools:
    - use: slack.post_message
      dataSource: team-slack
      access: write
      approval: always
"""


def reply(request):
    """A post first; once the model has the tool's result, the answer."""
    messages = request.body["messages"]
    if messages[-1]["role"] == "tool":
        return Text("Posted.")
    return ToolCall("slack_post_message", {"channel": "#ops", "text": messages[1]["content"][-40:]})


async def _wait(predicate, timeout: float = 60.0, step: float = 0.002):
    deadline = time.monotonic() + timeout
    while not (result := await predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError("the bench waited too long")
        await asyncio.sleep(step)
    return result


async def main() -> None:
    server = TestPostgres.start()
    urls = server.create_database()
    worker = None
    try:
        with FakeOpenAI() as llm, FakeSaaS() as saas:
            llm.always(reply)
            env = {
                **os.environ,
                **saas.env(),
                "DATABASE_URL": urls.app,
                "OPENAI_BASE_URL": llm.base_url,
                "OPENAI_API_KEY": llm.api_key,
                "COHEREX_DATA_DIR": "/tmp/coherex-bench-data",
                "COHEREX_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            }
            os.environ.update(env)
            reset_settings_cache()
            ops = saas.slack.add_channel("ops")
            async with Database(urls.app, max_size=4) as db:
                async with db.session(Identity.system()) as s:
                    user = await s.users.create("bench@example.com")
                owner = Identity.user(user.id)
                async with db.session(owner) as s:
                    team = await s.teams.create("bench", "Bench")
                await add_source(
                    db, owner, team.id, "slack", "team-slack", credentials={"bot_token": saas.slack_token}
                )
                async with db.session(owner) as s:
                    agent = (await apply_spec(s, team.id, SPEC)).agent
                worker = subprocess.Popen(
                    [sys.executable, "-m", "coherex", "worker", "-c", "4"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                runtime = Runtime(db)
                pause_ms, decide_ms, to_call_ms = [], [], []
                for _i in range(RUNS):
                    started = time.perf_counter()
                    ex = await runtime.create(owner, team.id, agent, trigger="api", queue=True)

                    async def waiting():
                        async with db.session(Identity.system()) as s:
                            rows = await s.approvals.of_execution(ex.id)
                        return rows[0] if rows else None

                    approval = await _wait(waiting)
                    pause_ms.append((time.perf_counter() - started) * 1000)
                    before = len(saas.slack.messages[ops])
                    t0 = time.perf_counter()
                    await decide(db, owner, approval.id, "approve")
                    decide_ms.append((time.perf_counter() - t0) * 1000)

                    async def posted():
                        return len(saas.slack.messages[ops]) > before

                    await _wait(posted)
                    to_call_ms.append((time.perf_counter() - t0) * 1000)
                    await asyncio.sleep(
                        SLACK_SPACING
                    )  # below the source's rate limit: measure no waiting in it
                await _wait(lambda: _all_done(db, team.id), step=0.05)  # every run completed
                assert len(saas.slack.messages[ops]) == RUNS, "a call was lost or made twice"
                record(
                    "approvals",
                    {
                        "runs": RUNS,
                        "worker_concurrency": 4,
                        "posts": len(saas.slack.messages[ops]),
                        "decide": percentiles(decide_ms),
                        "decision_to_call": percentiles(to_call_ms),
                        "queue_to_waiting": percentiles(pause_ms),
                    },
                )
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        server.drop_database(urls)
        server.stop()
        reset_settings_cache()


async def _all_done(db, team_id) -> bool:
    async with db.session(Identity.system()) as s:
        rows = await s.executions.list(team_id=team_id, limit=RUNS + 1)
    return all(r.status == "completed" for r in rows)


if __name__ == "__main__":
    asyncio.run(main())
