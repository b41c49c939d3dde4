"""Import from CrewAI and Letta on real files: valid specs, and warnings for what has no equivalent."""

from __future__ import annotations

from pathlib import Path

import pytest

from coherex.spec import to_yaml, validate
from coherex.spec.importers.crewai import import_crewai
from coherex.spec.importers.letta import import_letta
from tests.unit.spec.conftest import FIXTURES

CREW = FIXTURES / "crewai" / "latest-ai-development"
LETTA = sorted((FIXTURES / "letta").glob("*.af"))


def test_crewai_project_becomes_one_valid_spec_per_agent():
    result = import_crewai(CREW)
    assert [s.name for s in result.specs] == ["researcher", "reporting-analyst", "formatter"]
    researcher = result.specs[0]
    assert validate(to_yaml(researcher)).ok
    instructions = researcher.spec.instructions
    assert "You are the {{topic}} Senior Data Researcher." in instructions
    assert (
        "## research_task" in instructions and "Expected output: A list with 10 bullet points" in instructions
    )
    assert set(researcher.spec.inputs) == {"topic", "date"}
    assert "{topic}" not in instructions.replace("{{topic}}", "")
    assert any("output/research.json" in w for w in result.warnings)
    assert any("crew.py" in w for w in result.warnings)
    assert any(
        "reporting-analyst: task reporting_task uses the result of research_task" in w
        for w in result.warnings
    )


@pytest.mark.parametrize("path", LETTA, ids=[p.stem for p in LETTA])
def test_letta_agent_file_becomes_a_valid_spec(path: Path):
    result = import_letta(path)
    assert len(result.specs) == 1
    spec = result.specs[0]
    assert validate(to_yaml(spec)).ok
    assert spec.spec.model is not None and spec.spec.instructions.strip()
    assert result.warnings


def test_letta_memory_blocks_model_and_tools_are_mapped():
    result = import_letta(FIXTURES / "letta" / "deep_research_agent.af")  # encoded once
    spec = result.specs[0]
    assert spec.name == "deep-thought-research-agent"
    assert spec.spec.model.name == "claude-sonnet-4-5-20250929"
    assert (
        "## Memory: persona" in spec.spec.instructions
        and "## Memory: research_plan" in spec.spec.instructions
    )
    assert any("web_search" in w for w in result.warnings)
    assert any("served by anthropic" in w for w in result.warnings)


def test_letta_tool_rules_become_instructions():
    result = import_letta(FIXTURES / "letta" / "outreach_workflow_agent.af")  # encoded twice
    instructions = result.specs[0].spec.instructions
    assert "Call retrieve_candidate first." in instructions
    assert "if it returns True, call send_email" in instructions
    assert any("custom tool 'send_email'" in w for w in result.warnings)


def test_import_commands_write_files_and_list_warnings(cli, tmp_path: Path):
    result = cli("import", "crewai", str(CREW), "-o", str(tmp_path))
    assert result.code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "formatter.yaml",
        "reporting-analyst.yaml",
        "researcher.yaml",
    ]
    assert "warning:" in result.err
    result = cli("import", "letta", str(LETTA[0]), "-o", str(tmp_path))
    assert result.code == 0, result.output
    assert cli("validate", *map(str, tmp_path.iterdir())).code == 0
    again = cli("import", "letta", str(LETTA[0]), "-o", str(tmp_path))
    assert again.code == 1 and "would overwrite" in again.err


def test_import_of_bad_input_is_a_clear_error(cli, tmp_path: Path):
    not_af = tmp_path / "agent.af"
    not_af.write_text("{not json")
    result = cli("import", "letta", str(not_af))
    assert result.code == 1 and "not a Letta agent file" in result.err and "Traceback" not in result.output
    result = cli("import", "crewai", str(tmp_path))
    assert result.code == 1 and "no agents.yaml found" in result.err
