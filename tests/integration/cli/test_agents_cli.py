"""`coherex agents …` against a real database: apply → versions → show → diff → export."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parents[3] / "templates"


def coherex(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coherex", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def spec_file(tmp_path) -> Path:
    path = tmp_path / "csv-analysis.yaml"
    shutil.copy(TEMPLATES / "csv-analysis.yaml", path)
    return path


def test_apply_versions_show_diff_export(cli_env, spec_file, tmp_path):
    first = coherex(cli_env, "agents", "apply", str(spec_file))
    assert first.returncode == 0, first.stderr
    assert "created agent csv-analysis (version 1)" in first.stdout

    same = coherex(cli_env, "agents", "apply", str(spec_file))
    assert "unchanged (still version 1)" in same.stdout

    text = spec_file.read_text()
    spec_file.write_text(text.replace("description: ", "description: Revised. ", 1))
    second = coherex(cli_env, "agents", "apply", str(spec_file), "-m", "reword")
    assert second.returncode == 0 and "→ version 2" in second.stdout

    listing = coherex(cli_env, "agents", "list")
    assert "csv-analysis" in listing.stdout and " 2 " in listing.stdout

    history = coherex(cli_env, "agents", "versions", "csv-analysis")
    assert "1" in history.stdout and "2 (current)" in history.stdout and "reword" in history.stdout

    v1 = coherex(cli_env, "agents", "show", "csv-analysis", "--version", "1").stdout
    v2 = coherex(cli_env, "agents", "show", "csv-analysis").stdout
    assert "Revised." not in v1 and "Revised." in v2

    diff = coherex(cli_env, "agents", "diff", "csv-analysis", "1", "2").stdout
    assert "--- csv-analysis v1" in diff and "+++ csv-analysis v2" in diff
    assert any(line.startswith("+") and "Revised." in line for line in diff.splitlines())

    out = tmp_path / "exported.yaml"
    assert coherex(cli_env, "agents", "export", "csv-analysis", "-o", str(out)).returncode == 0
    assert coherex(cli_env, "validate", str(out)).returncode == 0
    assert "Revised." in out.read_text()

    missing = coherex(cli_env, "agents", "show", "csv-analysis", "--version", "9")
    assert (
        missing.returncode == 1 and "has no version 9" in missing.stderr and "Traceback" not in missing.stderr
    )


def test_apply_refuses_unknown_data_source_and_stores_nothing(cli_env, tmp_path):
    path = tmp_path / "digest.yaml"
    shutil.copy(TEMPLATES / "email-digest.yaml", path)
    res = coherex(cli_env, "agents", "apply", str(path))
    assert res.returncode == 1
    assert "spec.tools[0].dataSource" in res.stderr and "work-mail" in res.stderr
    assert "Traceback" not in res.stderr
    assert "No agents yet" in coherex(cli_env, "agents", "list").stdout


def test_unknown_agent_is_a_clear_message(cli_env):
    res = coherex(cli_env, "agents", "versions", "ghost")
    assert res.returncode == 1 and "Agent 'ghost' was not found" in res.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (("kb", "search", "hello"), "Missing option '--collection'"),
        (("agents", "frobnicate"), "No such command 'frobnicate'"),
        (("run", "--bogus", "x"), "No such option: --bogus"),
    ],
)
def test_usage_errors_say_what_is_wrong(args, message):
    """A mistyped command is the user's mistake, not 'a bug in Coherex'."""
    res = subprocess.run([sys.executable, "-m", "coherex", *args], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert message in res.stderr and "--help" in res.stderr
    assert "bug in Coherex" not in res.stderr and "Traceback" not in res.stderr
