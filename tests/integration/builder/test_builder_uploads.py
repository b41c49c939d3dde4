"""Uploads for a data-analysis draft go into the sandbox of its test runs (the real local sandbox),
and the spec's `file` input names the upload."""

from __future__ import annotations

import pytest

from coherex.builder import BuilderSession
from coherex.runtime import Runtime
from coherex.testing.fake_openai import Text, ToolCall

SALES = b"product,amount\nwidgets,10\ngadgets,20\ngizmos,30\n"


@pytest.fixture
def sandbox_builder(db, two_teams, llm, local_sandbox):
    alpha, _ = two_teams
    settings = local_sandbox[1]
    return BuilderSession(
        db,
        alpha.identity,
        alpha.team_id,
        llm=llm,
        team_name="Alpha",
        settings=settings,
        runtime=Runtime(db, llm=llm, settings=settings),
    )


async def test_a_csv_dropped_for_a_python_draft_reaches_the_test_run(db, sandbox_builder, fake_llm, ui):
    builder = sandbox_builder
    assert not builder.takes_file("sales.csv")  # no draft yet: uploads go to the knowledge base
    fake_llm.script([ToolCall("use_template", {"name": "csv-analysis"}), Text("Drop your CSV here.")])
    turn = await builder.send("Analyse my sales CSV", ui)
    assert turn.error is None and builder.draft.name == "csv-analysis"

    assert builder.takes_file("sales.csv") and builder.takes_file("Q3 Numbers.XLSX")
    assert not builder.takes_file("handbook.pdf") and not builder.takes_file("notes.md")
    assert await builder.add_file("uploads/sales.csv", SALES) == "sales.csv"
    # the person sees the spec now reads this file
    assert builder.draft.spec.spec.inputs["file"].default == "sales.csv"
    assert "default: sales.csv" in builder.draft.yaml and builder.unsaved

    code = "import pandas as pd\ndf = pd.read_csv('sales.csv')\nprint('total', df.amount.sum())"
    fake_llm.script([ToolCall("python", {"code": code}), Text("Total sales are 60.")])
    run = await builder.test_run(ui=ui)
    assert run.status == "completed" and run.output == {"text": "Total sales are 60."}
    stdout = [e.payload["text"] for e in ui.run_events if e.type == "stdout"]
    assert stdout and stdout[0].strip() == "total 60"
    # the run's instructions name the uploaded file
    assert "sales.csv" in fake_llm.chat_requests[-2].body["messages"][0]["content"]
    # the saved version carries it too
    async with db.session(builder.identity) as s:
        version = await s.agents.require_version(builder.agent)
    assert version.spec["spec"]["inputs"]["file"]["default"] == "sales.csv"


async def test_a_draft_without_python_takes_no_files(sandbox_builder, fake_llm, ui):
    fake_llm.script([ToolCall("use_template", {"name": "knowledge-qa"}), Text("Upload your handbook.")])
    await sandbox_builder.send("Answer questions from our handbook", ui)
    assert sandbox_builder.draft is not None
    assert not sandbox_builder.takes_file("handbook.csv")
