"""With no key set, the builder's whole flow runs on the bundled offline model: a request in plain
words → a valid draft (from the template library) → a completed test run in the real sandbox."""

from __future__ import annotations

import pytest

from coherex.builder import BuilderSession
from coherex.llm import get_llm_client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


async def test_describe_to_completed_test_run_offline(db, two_teams, local_sandbox):
    alpha, _ = two_teams
    settings = local_sandbox[1].model_copy(update={"openai_api_key": None, "openai_base_url": None})
    assert settings.llm_offline
    builder = BuilderSession(
        db, alpha.identity, alpha.team_id, llm=get_llm_client(settings), settings=settings, team_name="Alpha"
    )
    await builder.send("Analyse a CSV file I upload and tell me the total of the amount column")
    assert builder.draft is not None and builder.draft.valid, builder.draft
    assert any(t["use"] == "python" for t in builder.draft.data["spec"].get("tools", []))
    await builder.add_file("data.csv", b"region,amount\nnorth,10\nsouth,20\nnorth,30\n")
    execution = await builder.test_run()
    assert execution.status == "completed", execution.error
