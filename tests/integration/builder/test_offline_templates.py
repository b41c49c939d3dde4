"""On the offline model, the data template gives the right answer: the builder picks csv-analysis
from a request with a schedule phrase, and a test run on an uploaded CSV — the platform's own
analysis in the real sandbox, phrased by the bundled 135M model — names the file's real figures,
within 30 s on 2 idle cores."""

from __future__ import annotations

import os
import resource
import time

import pytest

from coherex.builder import BuilderSession
from coherex.llm import get_llm_client
from coherex.runtime import Runtime
from coherex.store.db import Identity

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

#: the 1-minute load average under which 2 cores count as idle
IDLE_LOAD = 1.5
SALES = b"region,amount\nnorth,1250\nsouth,830\nwest,415\nnorth,745\n"


async def test_every_morning_csv_summary_on_the_offline_model(db, two_teams, local_sandbox):
    alpha, _ = two_teams
    settings = local_sandbox[1].model_copy(
        update={"openai_api_key": None, "openai_base_url": None, "chat_timezone": "Europe/Berlin"}
    )
    llm = get_llm_client(settings)  # loads the model once, before the clock starts
    builder = BuilderSession(
        db,
        alpha.identity,
        alpha.team_id,
        llm=llm,
        settings=settings,
        team_name="Alpha",
        runtime=Runtime(db, llm=llm, settings=settings),
    )
    turn = await builder.send("Every morning at 8, summarise the CSV I upload")
    assert turn.error is None and builder.draft is not None and builder.draft.valid
    spec = builder.draft.spec
    assert (spec.metadata.labels or {}).get("template") == "csv-analysis"
    (schedule,) = [t.schedule for t in spec.spec.triggers or [] if t.schedule]
    assert (schedule.cron, schedule.timezone) == ("0 8 * * *", "Europe/Berlin")  # the person's time zone
    assert "every day at 08:00 (Europe/Berlin)" in turn.text and turn.duration_ms < 5000

    await builder.add_file("sales.csv", SALES)
    started, cpu_before = time.perf_counter(), _cpu_seconds()
    run = await builder.test_run()
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_before
    assert run.status == "completed", run.error
    async with db.session(Identity.system()) as s:
        events = await s.executions.events(run.id)
    calls = [e.name for e in events if e.type == "tool_call"]
    assert calls[0] == "csv_summarize"  # the tool name the model sees
    summary = next(e.payload["content"] for e in events if e.type == "tool_result")
    assert "amount: total 3240" in summary and "amount by region: north 1995, south 830, west 415" in summary
    answer = run.output["text"]
    assert any(figure in answer for figure in ("3240", "1995", "830", "415", "810")), answer
    load = os.getloadavg()[0]
    print(f"\ntest run: {seconds:.1f} s wall, {cpu:.1f} s CPU, load {load:.1f}; answer: {answer!r}")
    # "under 30 s on 2 idle cores": checked when the machine is idle enough to say so (on a shared,
    # loaded machine the 135M model's threads wait for the cores and the wall time says nothing)
    if load < IDLE_LOAD:
        assert seconds < 30, f"the test run took {seconds:.1f} s on an idle machine"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def test_a_question_is_answered_from_the_documents_on_the_offline_model(db, two_teams, local_sandbox):
    """knowledge-qa: retrieval plus an extractive answer with citations, made by the platform."""
    from coherex.knowledge import ingest_file

    alpha, _ = two_teams
    await ingest_file(
        db,
        alpha.identity,
        alpha.team_id,
        "policies",
        b"# Refunds\n\nCustomers can ask for a refund within 30 days of purchase.\n\n"
        b"# Office\n\nOur office is in Lisbon and opens at 9.\n",
        "policies.md",
    )
    settings = local_sandbox[1].model_copy(update={"openai_api_key": None, "openai_base_url": None})
    llm = get_llm_client(settings)
    builder = BuilderSession(
        db,
        alpha.identity,
        alpha.team_id,
        llm=llm,
        settings=settings,
        team_name="Alpha",
        runtime=Runtime(db, llm=llm, settings=settings),
    )
    await builder.send("What is our refund policy?")
    assert builder.draft.spec.metadata.labels["template"] == "knowledge-qa"
    run = await builder.test_run()
    assert run.status == "completed", run.error
    async with db.session(Identity.system()) as s:
        events = await s.executions.events(run.id)
    assert [e.name for e in events if e.type == "tool_call"][0] == "knowledge_answer"
    found = next(e.payload["content"] for e in events if e.type == "tool_result")
    assert (
        found.startswith("Customers can ask for a refund within 30 days of purchase. [1]")
        and "Lisbon" not in found
    )
    assert run.output["sources"] and run.output["sources"][0]["source"] == "policies.md"  # the run cites it
    # the 135M model's own closing text is not relied on: it often echoes its tool call instead of
    # the answer (seen: "I called: knowledge_answer({})"); the answer above is the platform's
    print(f"\nanswer: {run.output['text']!r}")
