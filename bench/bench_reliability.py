"""Fault injection: N executions through the real queue and real worker processes while the LLM
answers 429/500 or times out, sandboxed code kills itself, some rows have lost their job, the
database is restarted twice (once while the workers are starting runs, once mid-batch), a worker
is SIGKILLed mid-run and the sandbox server is killed and started again. Afterwards: every
execution final, none duplicated, no event lost, every failure with a reason, and the success
rate among runs whose faults were transient.

    python bench/bench_reliability.py --n 1000      # writes bench/results/reliability.json

`tests/reliability/test_fault_injection.py` runs the same campaign with N=150 in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: faulty}
    spec:
      instructions: Answer with the number you were given.
      inputs:
        n: {type: integer}
        fault: {type: string, default: none}
      tools:
        - use: python
      limits: {maxSteps: 4, timeoutSeconds: 60}
    """)

#: fault → share of executions. All are transient: a correct platform finishes every such run.
#: `python` runs code in the sandbox (hit when the sandbox server is killed); `orphan` rows are
#: created without a job, as when a process dies between creating a row and queueing it (or an
#: in-process run's process dies before it starts): maintenance must queue them.
FAULTS = {
    "none": 0.37,
    "llm_429": 0.11,
    "llm_500": 0.11,
    "llm_timeout": 0.07,
    "sandbox_crash": 0.07,
    "slow": 0.13,
    "python": 0.10,
    "orphan": 0.04,
}
LLM_TIMEOUT = 5.0
#: LLM requests an execution may cause per attempt (one retry of the failed call, one after the tool)
REQUESTS_PER_ATTEMPT = {
    "none": 1,
    "llm_429": 2,
    "llm_500": 2,
    "llm_timeout": 2,
    "sandbox_crash": 2,
    "slow": 1,
    "python": 2,
    "orphan": 1,
}


@dataclass
class FaultyLLM:
    """The fake LLM's behaviour, decided per execution from its inputs (`n`, `fault`)."""

    seen: Counter = field(default_factory=Counter)
    injected: Counter = field(default_factory=Counter)

    def __call__(self, request):
        from coherex.testing.fake_openai import Error, Slow, Text, ToolCall

        messages = request.body["messages"]
        user = next(m["content"] for m in messages if m["role"] == "user")
        n = int(re.search(r"- n: (\d+)", user).group(1))
        fault = re.search(r"- fault: (\w+)", user).group(1)
        self.seen[n] += 1
        first = self.seen[n] == 1
        after_tool = messages[-1]["role"] == "tool"
        if fault == "llm_429" and first:
            self.injected["llm_429"] += 1
            return Error(429, "Rate limit reached", retry_after=0.05)
        if fault == "llm_500" and first:
            self.injected["llm_500"] += 1
            return Error(500, "injected server error")
        if fault == "llm_timeout" and first:
            self.injected["llm_timeout"] += 1
            return Slow(LLM_TIMEOUT + 0.5, Text("too late"))
        if fault == "sandbox_crash" and not after_tool:
            self.injected["sandbox_crash"] += 1
            return ToolCall(
                "python",
                {"code": "import os, signal; print('bye', flush=True); os.kill(os.getpid(), signal.SIGKILL)"},
            )
        if fault == "python" and not after_tool:
            return ToolCall("python", {"code": f"import time; time.sleep(0.5); print({n} * 2)"})
        if fault == "slow" and not after_tool:
            return Slow(2.5, Text(f"answer {n}"))
        return Text(f"answer {n}")


class Workers:
    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env, self.log_dir, self.procs = env, log_dir, []

    def start(self) -> subprocess.Popen:
        log = open(self.log_dir / f"worker-{len(self.procs)}.log", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "coherex", "worker", "--concurrency", "6"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def alive(self) -> list[subprocess.Popen]:
        return [p for p in self.procs if p.poll() is None]

    def keep(self, count: int) -> int:
        """A supervisor's job: replace workers that exited. → how many were replaced."""
        missing = count - len(self.alive())
        for _ in range(missing):
            self.start()
        return max(0, missing)

    def stop(self) -> None:
        for p in self.alive():
            p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


async def campaign(n: int = 150, *, seed: int = 11, timeout: float = 600, log=print) -> dict[str, Any]:
    from coherex.runtime import Runtime
    from coherex.services.agents import apply_spec
    from coherex.settings import Settings
    from coherex.store.db import Database, Identity
    from coherex.testing.fake_openai import FakeOpenAI
    from coherex.testing.postgres import TestPostgres
    from coherex.testing.sandbox import SandboxServerProcess, start_local_sandbox

    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="coherex-reliability-"))
    pg = TestPostgres.start()  # a server of our own: this campaign restarts it
    llm_behaviour = FaultyLLM()
    sandbox, sbx_settings = start_local_sandbox(tmp / "sandbox", pool_size=2)
    workers: Workers | None = None
    started = time.monotonic()
    try:
        urls = pg.create_database()
        with FakeOpenAI() as fake_llm:
            fake_llm.always(llm_behaviour)
            env = {
                **os.environ,
                "DATABASE_URL": urls.app,
                "COHEREX_DATA_DIR": str(tmp / "data"),
                "OPENAI_BASE_URL": fake_llm.base_url,
                "OPENAI_API_KEY": fake_llm.api_key,
                "COHEREX_LLM_TIMEOUT": str(LLM_TIMEOUT),
                "COHEREX_LLM_MAX_ATTEMPTS": "4",
                "COHEREX_HEARTBEAT_SECONDS": "1",
                "COHEREX_MAINTENANCE_SECONDS": "1",
                "COHEREX_MAX_ATTEMPTS": "5",
                "COHEREX_ORPHAN_GRACE_SECONDS": "3",
                "COHEREX_SANDBOX": "local",
                "COHEREX_SANDBOX_PORT": str(sbx_settings.sandbox_port),
            }
            db = Database(urls.app, max_size=4)
            await db.open()
            try:
                async with db.session(Identity.system()) as s:
                    user = await s.users.create("reliability@example.com")
                async with db.session(Identity.user(user.id)) as s:
                    team = await s.teams.create("reliability", "Reliability")
                    agent = (await apply_spec(s, team.id, SPEC)).agent
                who = Identity.user(user.id)
                kinds = list(FAULTS)
                plan = {i: rng.choices(kinds, weights=[FAULTS[k] for k in kinds])[0] for i in range(n)}
                runtime = Runtime(db, settings=Settings(database_url=urls.app))
                executions = {}
                for i in range(n):
                    ex = await runtime.create(
                        who,
                        team.id,
                        agent,
                        trigger="api",
                        inputs={"n": i, "fault": plan[i]},
                        queue=plan[i] != "orphan",
                    )
                    executions[ex.id] = i
                log(f"{n} executions queued: {dict(Counter(plan.values()))}")

                workers = Workers(env, tmp)
                workers.start()
                workers.start()
                injected = Counter()

                async def statuses() -> Counter:
                    async with db.session(Identity.system()) as s:
                        rows = await s.executions.list(limit=n + 10)
                    return Counter(r.status for r in rows)

                async def wait_for(pred, limit: float) -> Counter:
                    deadline = time.monotonic() + limit
                    while True:
                        try:
                            c = await statuses()
                            if pred(c) or time.monotonic() > deadline:
                                return c
                        except Exception:
                            if time.monotonic() > deadline:
                                return Counter()
                        workers.keep(2)
                        await asyncio.sleep(0.3)

                async def restart_database(why: str) -> None:
                    assert pg._embedded is not None
                    pg._embedded.stop()
                    injected["database_restart"] += 1
                    log(f"database stopped {why} at {time.monotonic() - started:.1f}s")
                    await asyncio.sleep(2)
                    pg._embedded.start()
                    log(f"database started again at {time.monotonic() - started:.1f}s")
                    # the workers reconnect by themselves (coherex.jobs.run_worker); none is restarted

                # 1. restart the database at the moment the workers start claiming runs
                await wait_for(lambda c: c["running"] >= 1, 60)
                await restart_database("while runs were being started")

                # 2. SIGKILL a worker while it has runs going
                await wait_for(lambda c: c["running"] >= 3, 60)
                victim = workers.alive()[0]
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait()
                injected["worker_sigkill"] += 1
                log(f"worker {victim.pid} killed with SIGKILL at {time.monotonic() - started:.1f}s")
                workers.keep(2)

                # 3. restart the database again when about a third is done
                done = lambda c: sum(v for k, v in c.items() if k not in ("pending", "running"))  # noqa: E731
                await wait_for(lambda c: done(c) >= n // 3, timeout / 2)
                await restart_database("mid-batch")

                # 4. kill the sandbox server (every box with it) at half-way, start it again a second later
                await wait_for(lambda c: done(c) >= n // 2, timeout / 2)
                os.kill(sandbox.proc.pid, signal.SIGKILL)
                sandbox.proc.wait()
                injected["sandbox_server_killed"] += 1
                log(f"sandbox server killed at {time.monotonic() - started:.1f}s")
                await asyncio.sleep(1)
                sandbox = SandboxServerProcess(sbx_settings, tmp / "sandbox-server-2.log").wait_ready()
                log(f"sandbox server started again at {time.monotonic() - started:.1f}s")

                # 5. everything must end
                final = await wait_for(lambda c: done(c) == n, timeout)
                elapsed = time.monotonic() - started
                replaced = len(workers.procs) - 2  # workers a supervisor had to replace (the SIGKILLed one)
                workers.stop()
                log(f"final statuses after {elapsed:.1f}s: {dict(final)}")
                return await _verify(db, executions, plan, llm_behaviour, injected, replaced, elapsed, n)
            finally:
                await db.close()
    finally:
        if workers is not None:
            workers.stop()
        sandbox.stop()
        pg.stop()


async def _verify(
    db, executions: dict, plan: dict, llm: FaultyLLM, injected: Counter, replaced: int, elapsed: float, n: int
) -> dict[str, Any]:
    from coherex.store.db import Identity

    async with db.connection(Identity.system()) as conn:
        rows = await (
            await conn.execute(
                "select id, status, attempts, event_count, output, error from public.agent_executions"
            )
        ).fetchall()
        events = await (
            await conn.execute(
                "select execution_id, seq, type from public.execution_events order by execution_id, seq"
            )
        ).fetchall()
        usage = (
            await (await conn.execute("select coalesce(sum(executions), 0) from public.usage")).fetchone()
        )[0]
    seqs, status_events = defaultdict(list), Counter()
    for ex_id, seq, kind in events:
        seqs[ex_id].append(seq)
        if kind == "status":
            status_events[ex_id] += 1
    stuck = [r for r in rows if r[1] in ("pending", "running")]
    lost_events = [r[0] for r in rows if seqs[r[0]] != list(range(1, r[3] + 1))]
    duplicated = [
        r[0]
        for r in rows
        if status_events[r[0]] > 1
        or llm.seen[executions[r[0]]] > REQUESTS_PER_ATTEMPT[plan[executions[r[0]]]] * r[2]
    ]
    wrong_output = [
        r[0] for r in rows if r[1] == "completed" and r[4] != {"text": f"answer {executions[r[0]]}"}
    ]
    failed_without_reason = [
        r[0] for r in rows if r[1] not in ("completed", "pending", "running") and not r[5]
    ]
    completed = sum(1 for r in rows if r[1] == "completed")
    failures = Counter((r[5] or "")[:120] for r in rows if r[1] != "completed")
    faults = {**dict(llm.injected), **dict(injected)}
    return {
        "executions": n,
        "rows": len(rows),
        "counted_in_usage": int(usage),
        "faults_planned": dict(Counter(plan.values())),
        "faults_injected": faults,
        "faults_injected_total": sum(faults.values()),
        "workers_replaced": replaced,
        "completed": completed,
        "success_rate": round(completed / n, 5),
        "retried_executions": sum(1 for r in rows if r[2] > 1),
        "lost": n - len(rows) + len(lost_events) + len(wrong_output),
        "lost_events": len(lost_events),
        "wrong_output": len(wrong_output),
        "stuck": len(stuck),
        "duplicated": len(duplicated),
        "failed_without_reason": len(failed_without_reason),
        "failure_reasons": dict(failures.most_common(5)),
        "llm_requests": sum(llm.seen.values()),
        "seconds": round(elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import record

    results = asyncio.run(campaign(args.n, seed=args.seed, timeout=args.timeout))
    print(json.dumps(results, indent=2))
    path = record("reliability", results)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
