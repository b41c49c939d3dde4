"""Fault injection: N executions through the real queue and real worker processes while the LLM
answers 429/500 or times out, sandboxed code kills itself, some rows have lost their job, the
database is restarted twice (once while the workers are starting runs, once mid-batch), a worker
is SIGKILLed mid-run and the sandbox server is killed and started again. Some runs post to (fake)
Slack through a tool that needs approval: they wait, and are approved or rejected by a person
(`decide`, as the API does) while all of this goes on — some decisions are sent the moment the
database stops. Afterwards: every execution final, none duplicated, no event lost, every failure
with a reason, the success rate among runs whose faults were transient, every approved post made
exactly once and no rejected one made (nor shown as a successful call).

    python bench/bench_reliability.py --n 1000      # writes bench/results/reliability.json

`tests/reliability/test_fault_injection.py` runs the same campaign with N=150 in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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
#: the agent of the `approve`/`reject` runs: its Slack post waits for a person
GATED_SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: gated}
    spec:
      instructions: Post the number you were given to #ops.
      inputs:
        n: {type: integer}
        fault: {type: string, default: none}
      tools:
        - use: slack.post_message
          dataSource: team-slack
          access: write
          approval: always
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
    "approve": 0.05,  # waits for approval, approved: posts once
    "reject": 0.04,  # waits for approval, rejected: posts nothing, the model is told
}
APPROVAL_FAULTS = ("approve", "reject")
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
    "approve": 2,
    "reject": 2,
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
            # well past the client's timeout: on a loaded machine its timer fires late, and an answer
            # only 0.5 s late was once read as the answer ("too late" as the run's output)
            return Slow(LLM_TIMEOUT * 3, Text("too late"))
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
        if fault in APPROVAL_FAULTS and not after_tool:
            return ToolCall("slack_post_message", {"channel": "#ops", "text": f"post {n}"})
        if fault in APPROVAL_FAULTS and "rejected" in messages[-1]["content"]:
            return Text(f"rejected {n}")
        return Text(f"answer {n}")


def expected_output(n: int, fault: str) -> dict[str, str]:
    return {"text": f"rejected {n}" if fault == "reject" else f"answer {n}"}


class Decider:
    """A person deciding the waiting calls as planned (approve or reject, as `decide` does for the API
    and the chat). Each call is decided after it waited a moment; the calls of `held` runs wait for
    the mid-batch database restart, whose start they meet."""

    def __init__(self, db, who, team_id, executions: dict, plan: dict, held: set):
        self.db, self.who, self.team_id = db, who, team_id
        self.executions, self.plan, self.held = executions, plan, held
        self.decided: set = set()
        self.stats: Counter = Counter()

    async def choose(self, *, min_wait: float = 0.5, include_held: bool = False) -> list:
        """The waiting calls to decide now."""
        from datetime import UTC, datetime

        async with self.db.session(self.who) as s:
            pending = await s.approvals.pending(self.team_id)
        return [
            a
            for a in pending
            if a.id not in self.decided
            and (datetime.now(UTC) - a.created_at).total_seconds() >= min_wait
            and (include_held or self.executions[a.execution_id] not in self.held)
        ]

    async def decide(self, chosen: list) -> None:
        """Decide them at once; a decision the database's going away broke is tried again later."""
        from coherex.errors import Conflict
        from coherex.runtime.approvals import decide

        tries = []
        for a in chosen:
            i = self.executions[a.execution_id]
            action = self.plan[i]
            tries.append(
                decide(self.db, self.who, a.id, action, message=f"not {i}" if action == "reject" else None)
            )
        for a, outcome in zip(chosen, await asyncio.gather(*tries, return_exceptions=True), strict=False):
            if isinstance(outcome, Conflict):  # an earlier try committed before its connection broke
                self.stats["decision_already_made"] += 1
            elif isinstance(outcome, BaseException):
                self.stats["decision_interrupted"] += 1
                continue  # tried again on the next round
            else:
                self.stats["decided"] += 1
            self.decided.add(a.id)

    async def run(self) -> None:
        while True:
            try:
                await self.decide(await self.choose())
            except Exception:  # noqa: BLE001 (the database is down: the person tries again in a moment)
                self.stats["decision_rounds_failed"] += 1
            await asyncio.sleep(0.5)


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
    from coherex.integrations.service import add_source
    from coherex.runtime import Runtime
    from coherex.services.agents import apply_spec
    from coherex.settings import Settings, reset_settings_cache
    from coherex.store.db import Database, Identity
    from coherex.testing.fake_openai import FakeOpenAI
    from coherex.testing.fake_saas import FakeSaaS
    from coherex.testing.postgres import TestPostgres
    from coherex.testing.sandbox import SandboxServerProcess, start_local_sandbox

    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="coherex-reliability-"))
    pg = TestPostgres.start()  # a server of our own: this campaign restarts it
    llm_behaviour = FaultyLLM()
    sandbox, sbx_settings = start_local_sandbox(tmp / "sandbox", pool_size=2)
    workers: Workers | None = None
    decider_task: asyncio.Task | None = None
    saved_environ = dict(os.environ)
    started = time.monotonic()
    try:
        urls = pg.create_database()
        with FakeOpenAI() as fake_llm, FakeSaaS() as saas:
            fake_llm.always(llm_behaviour)
            ops = saas.slack.add_channel("ops")
            # the fake Slack's URLs and a vault key, for the workers and for storing the Slack source here
            os.environ.update(
                saas.env(), COHEREX_SECRET_KEY=base64.urlsafe_b64encode(os.urandom(32)).decode()
            )
            reset_settings_cache()
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
                await add_source(
                    db, who, team.id, "slack", "team-slack", credentials={"bot_token": saas.slack_token}
                )
                async with db.session(who) as s:
                    gated = (await apply_spec(s, team.id, GATED_SPEC)).agent
                kinds = list(FAULTS)
                plan = {i: rng.choices(kinds, weights=[FAULTS[k] for k in kinds])[0] for i in range(n)}
                runtime = Runtime(db, settings=Settings(database_url=urls.app))
                executions = {}
                for i in range(n):
                    ex = await runtime.create(
                        who,
                        team.id,
                        gated if plan[i] in APPROVAL_FAULTS else agent,
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
                # every other approval run waits to be decided until the database stops mid-batch
                gated_runs = [i for i in range(n) if plan[i] in APPROVAL_FAULTS]
                held = set(gated_runs[: n // 3 : 2])
                decider = Decider(db, who, team.id, executions, plan, held)
                decider_task = asyncio.create_task(decider.run())

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

                async def restart_database(why: str, decide_held: bool = False) -> None:
                    assert pg._embedded is not None
                    burst = None
                    if decide_held:  # a person clicks Approve/Reject on what waits as the database stops
                        chosen = await decider.choose(min_wait=0, include_held=True)
                        injected["decisions_as_database_stopped"] += len(chosen)
                        burst = asyncio.create_task(decider.decide(chosen))
                        await asyncio.sleep(0.02)  # the decisions are under way
                    await asyncio.to_thread(pg._embedded.stop)
                    if burst is not None:
                        await burst
                        decider.held.clear()
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
                def done(c):
                    return sum(v for k, v in c.items() if k not in ("pending", "running", "waiting_approval"))

                # (with one of the held approvals waiting, if any)
                await wait_for(
                    lambda c: done(c) >= n // 3 and (c["waiting_approval"] or not held), timeout / 2
                )
                await restart_database("mid-batch", decide_held=True)

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
                decider_task.cancel()
                log(f"final statuses after {elapsed:.1f}s: {dict(final)}")
                posts = Counter(m["text"] for m in saas.slack.messages.get(ops, []))
                results = await _verify(db, executions, plan, llm_behaviour, injected, replaced, elapsed, n)
                if results["wrong_output"]:
                    log(f"wrong outputs: {results['wrong_output_examples']}")
                return {**results, **await _verify_approvals(db, executions, plan, posts, decider)}
            finally:
                if decider_task is not None:
                    decider_task.cancel()
                await db.close()
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)
        reset_settings_cache()
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
                "select execution_id, seq, type, name from public.execution_events order by execution_id, seq"
            )
        ).fetchall()
        usage = (
            await (await conn.execute("select coalesce(sum(executions), 0) from public.usage")).fetchone()
        )[0]
    seqs, status_events = defaultdict(list), Counter()
    for ex_id, seq, kind, name in events:
        seqs[ex_id].append(seq)
        if kind == "status" and name != "waiting_approval":  # a pause is not an end
            status_events[ex_id] += 1
    stuck = [r for r in rows if r[1] in ("pending", "running", "waiting_approval")]
    lost_events = [r[0] for r in rows if seqs[r[0]] != list(range(1, r[3] + 1))]
    duplicated = [
        r[0]
        for r in rows
        if status_events[r[0]] > 1
        # (a pause starts the attempt count again; approval runs are checked by what they posted)
        or (
            plan[executions[r[0]]] not in APPROVAL_FAULTS
            and llm.seen[executions[r[0]]] > REQUESTS_PER_ATTEMPT[plan[executions[r[0]]]] * r[2]
        )
    ]
    wrong_output = [
        r[0]
        for r in rows
        if r[1] == "completed" and r[4] != expected_output(executions[r[0]], plan[executions[r[0]]])
    ]
    failed_without_reason = [
        r[0] for r in rows if r[1] not in ("completed", "pending", "running", "waiting_approval") and not r[5]
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
        "wrong_output_examples": [
            {"fault": plan[executions[r[0]]], "output": r[4], "attempts": r[2]}
            for r in rows
            if r[0] in set(wrong_output[:5])
        ],
        "stuck": len(stuck),
        "duplicated": len(duplicated),
        "failed_without_reason": len(failed_without_reason),
        "failure_reasons": dict(failures.most_common(5)),
        "llm_requests": sum(llm.seen.values()),
        "seconds": round(elapsed, 1),
    }


async def _verify_approvals(
    db, executions: dict, plan: dict, posts: Counter, decider: Decider
) -> dict[str, Any]:
    """Approval runs: each paused once, was decided as planned, and an approved post happened exactly
    once (a rejected one never, and no rejected call is shown as a successful one)."""
    from coherex.store.db import Identity

    async with db.connection(Identity.system()) as conn:
        approvals = await (
            await conn.execute("select execution_id, status, result from public.execution_approvals")
        ).fetchall()
        results = await (
            await conn.execute(
                "select execution_id, payload from public.execution_events where type = 'tool_result'"
            )
        ).fetchall()
        pauses = await (
            await conn.execute(
                "select execution_id, count(*) from public.execution_events "
                "where type = 'status' and name = 'waiting_approval' group by execution_id"
            )
        ).fetchall()
    by_run: dict[int, list] = defaultdict(list)
    for ex_id, status, result in approvals:
        by_run[executions[ex_id]].append((status, result))
    ok_results: dict[int, list[bool]] = defaultdict(list)
    unknown: set[int] = set()  # a crash between the call and storing its result: said, not guessed
    for ex_id, payload in results:
        ok_results[executions[ex_id]].append(bool(payload.get("ok")))
        if "whether it took effect is unknown" in str(payload.get("content")):
            unknown.add(executions[ex_id])
    paused = {executions[ex_id]: count for ex_id, count in pauses}
    gated = [i for i in plan if plan[i] in APPROVAL_FAULTS]
    wanted = {"approve": "approved", "reject": "rejected"}
    return {
        "approval_runs": dict(Counter(plan[i] for i in gated)),
        # one approval row and one pause per run (a step that paused twice would ask twice)
        "approval_duplicated": sum(1 for i in gated if len(by_run[i]) != 1 or paused.get(i, 0) != 1),
        "approval_wrong_decision": sum(1 for i in gated if [st for st, _ in by_run[i]] != [wanted[plan[i]]]),
        "approved_posts": {
            "once": sum(1 for i in gated if plan[i] == "approve" and posts[f"post {i}"] == 1),
            "never": sum(1 for i in gated if plan[i] == "approve" and posts[f"post {i}"] == 0),
            "twice_or_more": sum(1 for i in gated if plan[i] == "approve" and posts[f"post {i}"] > 1),
        },
        # at most once is the promise where a crash falls between the call and storing its result;
        # the run then says the outcome is unknown instead of calling again
        "approved_outcome_unknown": sum(1 for i in gated if plan[i] == "approve" and i in unknown),
        "approved_lost": sum(
            1 for i in gated if plan[i] == "approve" and posts[f"post {i}"] == 0 and i not in unknown
        ),
        "approved_not_acknowledged": sum(
            1 for i in gated if plan[i] == "approve" and ok_results[i] != [True] and i not in unknown
        ),
        "rejected_posted": sum(1 for i in gated if plan[i] == "reject" and posts[f"post {i}"] > 0),
        "rejected_shown_as_success": sum(
            1 for i in gated if plan[i] == "reject" and ok_results[i] != [False]
        ),
        "decisions": dict(decider.stats),
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
