"""Sandbox start latency, as the runtime sees it: create -> first stdout line of `print(1)`.

Through the unmodified E2B SDK against the local server: from the warm pool, cold (pool size
0) and with network (always cold: slirp4netns and the box's nftables filter are set up per box),
side by side with a bare `python -c pass` spawn measured in the same run.
Targets: warm p50 < 20 ms, cold p50 < 60 ms. Writes bench/results/sandbox.json.

    python bench/bench_sandbox.py [--n 60] [--against DIR [--rounds 2]]

`--against DIR` measures another checkout of the project (e.g. `git worktree add --detach DIR
751ecba`, the commit of the recorded baseline) side by side: the two trees run in turns, each in
its own process, and the result keeps both with their ratios to the bare spawn of the same turn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coherex.sandbox import open_sandbox
from coherex.sandbox.server.isolation import Interpreter
from coherex.sandbox.server.run import ServerThread, free_port, local_api_key
from coherex.settings import Settings


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))], 2)


def summary(xs: list[float]) -> dict:
    return {
        "n": len(xs),
        "p50_ms": pct(xs, 50),
        "p95_ms": pct(xs, 95),
        "mean_ms": round(statistics.mean(xs), 2),
    }


async def starts(settings: Settings, n: int, pause: float, network: bool = False) -> list[float]:
    out = []
    for _ in range(n):
        first = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        box = await open_sandbox(settings, allow_network=network)

        def on_stdout(_: str) -> None:
            if not first.done():
                first.set_result(time.perf_counter())

        await box.run_code("print(1)", on_stdout=on_stdout)
        out.append((await first - t0) * 1000)
        await box.kill()
        await asyncio.sleep(pause)  # let the pool refill, as between real runs
    return out


def bare_spawns(n: int) -> list[float]:
    exe = Interpreter.current().executable
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run([exe, "-c", "pass"], check=True)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def run_mode(pool: int, n: int, data: Path, network: bool = False) -> list[float]:
    port = free_port()
    settings = Settings(data_dir=data, sandbox_port=port, sandbox_pool_size=pool, sandbox_backend="local")
    server = ServerThread(settings, port=port, api_key=local_api_key(settings, create=True)).start()
    try:
        time.sleep(1.0)  # pool filled, font cache built
        asyncio.run(starts(settings, 3, 0.15))  # warm up the SDK's connection pool
        return asyncio.run(starts(settings, n, 0.15 if pool else 0.02, network))
    finally:
        server.stop()


def measure(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="cx-bench-") as tmp:
        return {
            "bare_python_c_pass": summary(bare_spawns(n)),
            "warm_pool": summary(run_mode(2, n, Path(tmp))),
            "cold": summary(run_mode(0, n, Path(tmp))),
            "cold_network": summary(run_mode(0, n, Path(tmp), network=True)),
        }


def side_by_side(other: Path, n: int, rounds: int) -> dict:
    """This tree and `other` in turns (each turn a fresh process of its own tree's bench)."""
    here = Path(__file__).resolve().parents[1]
    turns: dict[str, list[dict]] = {"this": [], "other": []}
    for _ in range(rounds):
        for key, tree in (("other", other.resolve()), ("this", here)):
            subprocess.run(
                [sys.executable, "bench/bench_sandbox.py", "--n", str(n)],
                cwd=tree,
                env={**os.environ, "PYTHONPATH": str(tree)},
                check=True,
                stdout=subprocess.DEVNULL,
            )
            turns[key].append(
                json.loads((tree / "bench" / "results" / "sandbox.json").read_text())["results"]
            )

    def ratios(turn: dict) -> dict:
        bare = turn["bare_python_c_pass"]["p50_ms"]
        return {k: round(turn[k]["p50_ms"] / bare, 3) for k in ("warm_pool", "cold") if k in turn}

    return {
        "other_tree_commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=other, capture_output=True, text=True
        ).stdout.strip(),
        "p50_over_bare_spawn": {k: [ratios(t) for t in v] for k, v in turns.items()},
        "turns": turns,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--against", type=Path, help="another checkout to measure side by side")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    n = args.n
    compared = side_by_side(args.against, n, args.rounds) if args.against else None
    results = compared["turns"]["this"][-1] if compared else measure(n)
    record = {
        "benchmark": "sandbox create -> first stdout line of print(1), through the e2b SDK",
        "targets": {"warm_p50_ms": 20, "cold_p50_ms": 60},
        "met": {"warm": results["warm_pool"]["p50_ms"] < 20, "cold": results["cold"]["p50_ms"] < 60},
        "results": results,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "kernel": platform.release(),
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
            "note": "shared 2-core machine; compare with bare_python_c_pass from the same run",
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if compared:
        record["side_by_side"] = compared
    out = Path(__file__).parent / "results" / "sandbox.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
