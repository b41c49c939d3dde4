"""The wheel is a working install: built from the tree, installed into a fresh virtual environment
outside the repository, its `coherex` finds the templates, the prompts and the migrations it
carries (coherex/resources.py) from any directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from coherex.store.embedded import free_port

ROOT = Path(__file__).resolve().parents[3]
# what a checkout has beside the sources: build output, caches, data; never part of a wheel
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", ".coherex", ".files", "test-artifacts", ".venv"
)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv with the wheel installed (the heavy dependencies come from this
    interpreter's site-packages: --system-site-packages, then the wheel with --no-deps)."""
    base = tmp_path_factory.mktemp("wheel")
    # a copy of the tree, so the build's own build/ dir neither lands in the checkout nor leaks
    # stale files of an earlier build into this one
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=_NOT_SOURCES)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", base / "dist", src])
    (wheel,) = (base / "dist").glob("coherex-*.whl")
    venv = base / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", venv])
    run(
        [
            venv / "bin" / "python",
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--force-reinstall",
            wheel,
        ]
    )
    return venv / "bin"


def run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs)
    assert out.returncode == 0, f"{cmd} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture
def outside(tmp_path, installed) -> dict:
    """Where the installed `coherex` runs: an empty directory outside the repository, an own data
    dir and port, and nothing pointing back at the checkout (PYTHONPATH)."""
    # (CHAINLIT_APP_ROOT: set in this process by any earlier test that imported the web app)
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DATABASE_URL", "CHAINLIT_APP_ROOT")
    }
    env.update(COHEREX_DATA_DIR=str(tmp_path / "data"), COHEREX_DB_PORT=str(free_port()))
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    return {"cwd": cwd, "env": env}


def coherex(installed: Path, outside: dict, *args: str) -> str:
    return run([installed / "coherex", *args], **outside).stdout


@contextmanager
def web(installed: Path, outside: dict, port: int):
    """`coherex web` of the install on `port`; yields a GET function once it answers."""
    log = open(outside["cwd"] / "web.log", "w")
    proc = subprocess.Popen(
        [installed / "coherex", "web", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        **outside,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(f"{base}/api/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, (outside["cwd"] / "web.log").read_text()
                assert time.monotonic() < deadline, "coherex web did not answer within 90 s"
                time.sleep(0.5)
        yield lambda path: httpx.get(base + path, timeout=30)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_the_installed_package_is_the_wheel_not_the_checkout(installed, outside):
    where = run(
        [installed / "python", "-c", "import coherex.resources as r; print(r.__file__); print(r.root())"],
        **outside,
    ).stdout.split()
    venv = installed.parent
    assert all(Path(p).is_relative_to(venv) for p in where), where
    bundle = Path(where[1])
    for name in ("chat_app.py", "dashboard_app.py", ".chainlit/config.toml", "public/logo_dark.svg"):
        assert (bundle / name).is_file(), f"{name} is not in the wheel"
    for prompt in (ROOT / "prompts").glob("*.md"):
        assert (bundle / "prompts" / prompt.name).read_text() == prompt.read_text()


def test_templates_list_and_validate_from_outside_the_repo(installed, outside):
    listed = coherex(installed, outside, "templates", "list")
    names = sorted(p.stem for p in (ROOT / "templates").glob("*.yaml"))
    assert len(names) >= 6
    assert [line.split()[0] for line in listed.splitlines() if line.strip()] == names

    spec = outside["cwd"] / "agent.yaml"
    spec.write_text(coherex(installed, outside, "templates", "show", "csv-analysis"))
    assert spec.read_text() == (ROOT / "templates" / "csv-analysis.yaml").read_text()
    assert coherex(installed, outside, "validate", "agent.yaml").strip() == "agent.yaml: valid"


def test_db_start_migrate_and_the_chat_from_outside_the_repo(installed, outside):
    migrations = sorted(p.name for p in (ROOT / "supabase" / "migrations").glob("*.sql"))
    try:
        started = coherex(installed, outside, "db", "start")
        assert outside["env"]["COHEREX_DB_PORT"] in started
        applied = coherex(installed, outside, "db", "migrate").splitlines()
        assert [line.removeprefix("applied ") for line in applied[:-1]] == migrations
        assert applied[-1] == f"{len(migrations)} migration(s) applied."
        again = coherex(installed, outside, "db", "migrate")
        assert "up to date" in again
        # the chat (chat_app.py, .chainlit/, public/ of the wheel): Chainlit's default name would
        # be "Assistant", and without public/ the logo is Chainlit's PNG
        port = free_port()
        with web(installed, outside, port) as get:
            page = get("/chat/")
            assert page.status_code == 200 and "<title>Coherex</title>" in page.text
            logo = get("/chat/logo?theme=dark")
            assert logo.status_code == 200 and logo.headers["content-type"].startswith("image/svg")
        # the chat's uploads go to the data dir, never into the installed package
        bundle = Path(
            run(
                [installed / "python", "-c", "import coherex.resources as r; print(r.root())"], **outside
            ).stdout.strip()
        )
        assert not (bundle / ".files").exists()
        assert (Path(outside["env"]["COHEREX_DATA_DIR"]) / "chat" / ".files").is_dir()
    finally:
        subprocess.run([installed / "coherex", "db", "stop"], timeout=120, capture_output=True, **outside)
