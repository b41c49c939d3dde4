"""E2B's own SDK test suites against the local sandbox server: per-suite pass counts, sync and async.

Fetches nothing: give it checkouts of e2b-dev/E2B and/or e2b-dev/code-interpreter (kept outside
this repository, never committed). It starts a local sandbox server on a free port, points the
suites at it with E2B_API_KEY / E2B_API_URL / E2B_SANDBOX_URL, skips the tests that need a cloud
feature (SKIPS below, each with its reason) through a small pytest plugin written to a temp dir,
and writes bench/results/e2b_conformance.json.

    python bench/e2b_conformance.py --e2b /tmp/e2bconf-suites/E2B \\
        --code-interpreter /tmp/e2bconf-suites/code-interpreter [--k EXPR] [--out FILE]

The suites run as they are (their own conftest.py and fixtures); their test dependencies
(pytest-asyncio, python-dotenv, ...) must be installed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (substring of the test's node id, reason): tests that need E2B's cloud, or a language the local
# sandbox does not offer. Everything else counts as a test that reaches the server.
SKIPS: list[tuple[str, str]] = [
    ("template_sync/", "template builds (E2B cloud build service)"),
    ("template_async/", "template builds (E2B cloud build service)"),
    ("/template/", "template builds (E2B cloud build service)"),
    ("volume_", "volumes (E2B cloud storage)"),
    ("secret_", "secrets (E2B cloud secret store)"),
    ("snapshot", "snapshots / pause (E2B cloud VM snapshots)"),
    ("auto_resume", "pause and resume (E2B cloud VM snapshots)"),
    ("test_pause", "pause and resume (E2B cloud VM snapshots)"),
    ("test_resume", "pause and resume (E2B cloud VM snapshots)"),
    ("test_fork", "fork (E2B cloud VM snapshots)"),
    ("test_network.py", "egress rules / network config (E2B cloud network policy)"),
    ("test_metrics", "metrics (E2B cloud telemetry)"),
    ("env_vars/test_r.py", "R is not offered by the local sandbox (python, javascript, bash)"),
    ("env_vars/test_java.py", "Java is not offered by the local sandbox (python, javascript, bash)"),
    ("env_vars/test_deno.py", "Deno is not offered by the local sandbox (python, javascript, bash)"),
    ("languages/test_deno.py", "Deno is not offered by the local sandbox (python, javascript, bash)"),
    ("test_r_kernel", "R is not offered by the local sandbox (python, javascript, bash)"),
    ("test_java_kernel", "Java is not offered by the local sandbox (python, javascript, bash)"),
    ("typescript", "TypeScript is not offered by the local sandbox (Node 20 has no type stripping)"),
    ("test_import", "npm: imports download packages (the local sandbox is offline by default)"),
    ("supervisord", "the code-interpreter template's process supervisor (template internals)"),
    ("systemd", "the code-interpreter template's process supervisor (template internals)"),
    ("supervision", "the code-interpreter template's process supervisor (template internals)"),
]

PLUGIN = """
import asyncio, inspect, json, os
import pytest

SKIPS = json.loads(os.environ["E2BCONF_SKIPS"])
RESULTS = {}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for pattern, reason in SKIPS:
            if pattern in item.nodeid:
                item.add_marker(pytest.mark.skip(reason="e2bconf: " + reason))
                break


def _mode(item):
    fn = getattr(item, "obj", None)
    fixtures = getattr(item, "fixturenames", ())
    is_async = inspect.iscoroutinefunction(fn) or "async_sandbox" in fixtures or "/async" in item.nodeid
    return "async" if is_async else "sync"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    entry = RESULTS.setdefault(item.nodeid, {"mode": _mode(item), "outcome": "passed", "reason": ""})
    if rep.skipped:
        entry["outcome"] = "skipped"
        entry["reason"] = str(rep.longrepr[-1]) if isinstance(rep.longrepr, tuple) else ""
    elif rep.failed:
        entry["outcome"] = "failed" if rep.when == "call" else "error"
        entry["reason"] = (rep.longreprtext or "").strip().splitlines()[-1][:300] if rep.longreprtext else ""


def pytest_sessionfinish(session, exitstatus):
    with open(os.environ["E2BCONF_REPORT"], "w") as f:
        json.dump(RESULTS, f, indent=1)
"""


def run_suite(tests_dir: Path, env: dict, plugin_dir: Path, report: Path, k: str | None) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(tests_dir),
        "-q",
        "-p",
        "e2bconf_plugin",
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_mode=auto",
        f"--basetemp={plugin_dir / 'pytest'}",
        "--rootdir",
        str(tests_dir),
    ]
    if k:
        cmd += ["-k", k]
    env = {
        **env,
        "PYTHONPATH": os.pathsep.join([str(plugin_dir), env.get("PYTHONPATH", "")]),
        "E2BCONF_REPORT": str(report),
    }
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=tests_dir.parent, capture_output=True, text=True)
    results = json.loads(report.read_text()) if report.exists() else {}
    if not results:
        raise SystemExit(
            f"the suite in {tests_dir} did not run:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    counts: dict = {}
    for nodeid, r in results.items():
        c = counts.setdefault(r["mode"], {"passed": 0, "failed": 0, "error": 0, "skipped": 0, "failures": []})
        c[r["outcome"]] += 1
        if r["outcome"] in ("failed", "error"):
            c["failures"].append({"test": nodeid, "why": r["reason"]})
    for c in counts.values():
        reaching = c["passed"] + c["failed"] + c["error"]
        c["reaching_server"] = reaching
        c["pass_rate"] = round(c["passed"] / reaching, 3) if reaching else None
    return {"path": str(tests_dir), "seconds": round(time.monotonic() - t0, 1), **counts}


def git_commit(path: Path) -> str | None:
    out = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--e2b", type=Path, help="checkout of e2b-dev/E2B (its packages/python-sdk/tests run)")
    ap.add_argument(
        "--code-interpreter", type=Path, help="checkout of e2b-dev/code-interpreter (python/tests)"
    )
    ap.add_argument("--k", help="pytest -k expression, to run a part")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "e2b_conformance.json")
    args = ap.parse_args()
    suites = {}
    if args.e2b:
        suites["e2b"] = args.e2b / "packages" / "python-sdk" / "tests"
    if args.code_interpreter:
        suites["code-interpreter"] = args.code_interpreter / "python" / "tests"
    if not suites:
        ap.error("give --e2b and/or --code-interpreter (checkouts of the E2B repositories)")
    for name, path in suites.items():
        if not path.is_dir():
            ap.error(f"{name}: {path} is not a directory (expected a checkout of the repository)")

    from coherex.testing.sandbox import start_local_sandbox

    with tempfile.TemporaryDirectory(prefix="e2bconf-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "e2bconf_plugin.py").write_text(PLUGIN)
        server, settings = start_local_sandbox(tmp_path / "data", pool_size=2)
        try:
            key = (tmp_path / "data" / "sandbox" / "api_key").read_text().strip()
            env = {
                **os.environ,
                "E2B_API_KEY": key,
                "E2B_API_URL": server.url,
                "E2B_SANDBOX_URL": server.url,
                "E2BCONF_SKIPS": json.dumps(SKIPS),
            }
            env.pop("E2B_DEBUG", None)
            results = {
                name: run_suite(path, env, tmp_path, tmp_path / f"{name}.json", args.k)
                for name, path in suites.items()
            }
        finally:
            server.stop()
    record = {
        "benchmark": "E2B's own SDK test suites, unmodified, against the local sandbox server",
        "sdk": {"e2b": _version("e2b"), "e2b-code-interpreter": _version("e2b-code-interpreter")},
        "sources": {name: {"path": str(path), "commit": git_commit(path)} for name, path in suites.items()},
        "suites": results,
        "skip_list": [{"match": p, "reason": r} for p, r in SKIPS],
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    for name, res in results.items():
        for mode in ("sync", "async"):
            if mode in res:
                c = res[mode]
                print(f"{name} {mode}: {c['passed']}/{c['reaching_server']} passed, {c['skipped']} skipped")


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
