"""Broken spec files through the real CLI: exit 1, the path and the problem named, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.spec.conftest import VALID

BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9)
)

# (case, file content, text the output must contain: path and problem)
CASES: list[tuple[str, bytes | str, list[str]]] = [
    (
        "syntax_error",
        "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: x\n",
        ["line 4", "expected ',' or '}'"],
    ),
    ("billion_laughs", BILLION_LAUGHS, ["line", "alias bomb"]),
    ("deep_nesting", "spec: " + "[" * 200 + "]" * 200 + "\n", ["line 1", "nested deeper than 50"]),
    ("binary_file", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4, ["binary"]),
    ("invalid_utf8", b"apiVersion: coherex/v1\nkind: \xff\xfe\n", ["not valid UTF-8"]),
    ("empty_file", "", ["file is empty"]),
    ("only_comments", "# nothing here\n", ["no content"]),
    ("list_not_mapping", "- apiVersion: coherex/v1\n- kind: Agent\n", ["must be a mapping", "found a list"]),
    (
        "unknown_field",
        VALID.replace("      access: read\n", "      acess: read\n"),
        ["spec.tools[0].acess", "unknown field 'acess'", "did you mean 'access'"],
    ),
    (
        "wrong_type",
        VALID.replace("maxSteps: 20", "maxSteps: many"),
        ["spec.limits.maxSteps", "valid integer", "'many'"],
    ),
    (
        "bad_cron",
        VALID.replace("0 8 * * 1-5", "0 8 * * mon-funday"),
        ["spec.triggers[0].schedule.cron", "not a valid five-field cron"],
    ),
    (
        "unknown_timezone",
        VALID.replace("Europe/Berlin", "Europe/Atlantis"),
        ["spec.triggers[0].schedule.timezone", "unknown time zone 'Europe/Atlantis'"],
    ),
    (
        "negative_limits",
        VALID.replace("maxSteps: 20", "maxSteps: -5\n    maxCostUsd: -1"),
        ["spec.limits.maxSteps", "greater than or equal to 1", "spec.limits.maxCostUsd"],
    ),
    (
        "unknown_tool",
        VALID.replace("use: slack.post_message", "use: slack.post_msg"),
        ["spec.tools[1].use", "unknown tool 'slack.post_msg'", "slack.post_message"],
    ),
    (
        "write_tool_read_access",
        VALID.replace("access: write", "access: read"),
        ["spec.tools[1].access", "slack.post_message changes data", "access: write"],
    ),
    (
        "bad_name",
        VALID.replace("name: inbox-digest", "name: Inbox Digest!"),
        ["metadata.name", "'Inbox Digest!' is not a valid name", "lowercase"],
    ),
    (
        "wrong_api_version",
        VALID.replace("coherex/v1", "coherex/v2"),
        ["apiVersion", "must be 'coherex/v1'", "'coherex/v2'"],
    ),
    ("wrong_kind", VALID.replace("kind: Agent", "kind: Pod"), ["kind", "must be 'Agent'"]),
    ("huge_file", VALID + "# " + "x" * (1024 * 1024) + "\n", ["too large"]),
    (
        "missing_data_source",
        VALID.replace("      dataSource: team-slack\n", ""),
        ["spec.tools[1].dataSource", "needs a data source"],
    ),
    (
        "duplicate_tool",
        VALID.replace(
            "  triggers:",
            "    - use: slack.post_message\n      dataSource: team-slack\n      access: write\n  triggers:",
        ),
        ["spec.tools[2]", "duplicate tool 'slack.post_message'"],
    ),
    (
        "duplicate_key",
        VALID.replace("kind: Agent\n", "kind: Agent\nkind: Agent\n"),
        ["line 3", "duplicate key 'kind'"],
    ),
    ("recursive_alias", "a: &x [1, *x]\n", ["recursive"]),
    (
        "input_default_type",
        VALID.replace("  tools:", "  inputs:\n    days: {type: integer, default: seven}\n  tools:"),
        ["spec.inputs.days.default", "not of type integer"],
    ),
    (
        "missing_instructions",
        VALID.replace("  instructions: |\n    Summarise the unread mail.\n", ""),
        ["spec.instructions", "required field is missing"],
    ),
    ("json_syntax", '{"apiVersion": "coherex/v1",\n "kind": }', ["line 2, column 10", "Expecting value"]),
]


@pytest.mark.parametrize("case,content,expected", CASES, ids=[c[0] for c in CASES])
def test_broken_spec_is_refused_with_a_clear_message(cli, tmp_path: Path, case: str, content, expected):
    path = tmp_path / (f"{case}.json" if case.startswith("json") else f"{case}.yaml")
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = cli("validate", str(path))
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{path}:" in result.err
    for text in expected:
        assert text in result.err, f"{text!r} not in:\n{result.err}"


def test_every_problem_is_reported_at_once(cli, tmp_path: Path):
    broken = (
        VALID.replace("name: inbox-digest", "name: Bad_Name")
        .replace("Europe/Berlin", "Nowhere/City")
        .replace("use: slack.post_message", "use: slack.post")
        .replace("maxSteps: 20", "maxSteps: 0")
    )
    path = tmp_path / "agent.yaml"
    path.write_text(broken)
    result = cli("validate", str(path))
    assert result.code == 1
    for where in (
        "metadata.name",
        "spec.triggers[0].schedule.timezone",
        "spec.tools[1].use",
        "spec.limits.maxSteps",
    ):
        assert f"{path}: {where}:" in result.err


def test_json_output_lists_problems_for_machines(cli, tmp_path: Path):
    import json

    path = tmp_path / "agent.yaml"
    path.write_text(VALID.replace("access: write", "access: read"))
    result = cli("validate", "--json", str(path))
    assert result.code == 1
    data = json.loads(result.out)
    problem = data[str(path)]["problems"][0]
    assert data[str(path)]["valid"] is False
    assert problem["path"] == "spec.tools[1].access" and problem["severity"] == "error" and problem["hint"]


def test_one_bad_file_fails_the_run_but_every_file_is_checked(cli, tmp_path: Path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(VALID)
    bad.write_text("")
    result = cli("validate", str(good), str(bad), str(tmp_path / "missing.yaml"))
    assert result.code == 1
    assert f"{good}: valid" in result.out
    assert f"{bad}: file is empty" in result.err
    assert "missing.yaml: no such file" in result.err


def test_console_script_refuses_an_alias_bomb(tmp_path: Path):
    """The real process, as a user runs it."""
    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS)
    proc = subprocess.run(
        [sys.executable, "-m", "coherex", "validate", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1
    assert "alias bomb" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
