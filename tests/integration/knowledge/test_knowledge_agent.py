"""An agent answering from the knowledge base (RAG): the `knowledge.search` tool returns numbered
passages, the model is asked to cite them as [n], and the run's output lists the sources — in the
API's output, the CLI and the chat. The LLM is the fake OpenAI server; search and embeddings are real."""

from __future__ import annotations

import json

import pytest

from coherex.llm.openai_client import OpenAIClient
from coherex.runtime import Runtime
from coherex.runtime.citations import format_sources
from coherex.services.agents import apply_spec
from coherex.store.db import Identity
from coherex.testing.fake_openai import FakeOpenAI, Text, ToolCall

SPEC = """\
apiVersion: coherex/v1
kind: Agent
metadata: {name: constitution-helper, description: Answers questions about the Bill of Rights}
spec:
  model: {name: gpt-4o-mini}
  instructions: Answer the question from the library, citing it.
  inputs:
    question: {type: string}
  tools:
    - use: knowledge.search
      collection: library
"""


@pytest.fixture
def fake_llm():
    with FakeOpenAI() as server:
        yield server


async def _run(db, library, fake_llm, question: str):
    async with db.session(library.identity) as s:
        agent = (await apply_spec(s, library.team_id, SPEC)).agent
    runtime = Runtime(db, llm=OpenAIClient(api_key=fake_llm.api_key, base_url=fake_llm.base_url))
    ex = await runtime.create(library.identity, library.team_id, agent, inputs={"question": question})
    return await runtime.run(ex.id)


async def test_answers_cite_the_passages_they_use(db, library, fake_llm):
    fake_llm.script(
        [
            ToolCall("knowledge_search", {"query": "soldiers quartered in a house in time of peace"}),
            ToolCall("knowledge_search", {"query": "excessive bail"}),
            Text("No: in peacetime no soldier may be quartered in a house without the owner's consent [1]."),
        ]
    )
    final = await _run(db, library, fake_llm, "Can the army house soldiers in my home in peacetime?")
    assert final.status == "completed", final.error

    system = fake_llm.chat_requests[0].body["messages"][0]["content"]
    assert "cite the ones your answer uses as [n]" in system
    first = json.loads(fake_llm.chat_requests[1].body["messages"][-1]["content"])
    assert first[0]["ref"] == 1 and "No Soldier shall" in first[0]["text"]
    assert first[0]["source"] == "bill_of_rights.md"
    # a passage found again by the second search keeps its number; new ones continue the count
    second = json.loads(fake_llm.chat_requests[2].body["messages"][-1]["content"])
    seen: dict[str, int] = {}
    for passage in first + second:
        assert seen.setdefault(passage["text"], passage["ref"]) == passage["ref"]
    assert sorted(set(seen.values())) == list(range(1, len(seen) + 1))

    assert final.output["text"].endswith("[1].")
    [source] = final.output["sources"]  # only what the answer cites
    assert source["ref"] == 1 and source["cited"] and source["source"] == "bill_of_rights.md"
    assert (
        source["title"] == "The Bill of Rights" and source["section"] == "The Bill of Rights > Amendment III"
    )
    assert format_sources(final.output["sources"]).splitlines() == [
        "**Sources**",
        "- [1] The Bill of Rights — Amendment III (bill_of_rights.md)",
    ]
    # the output is what the API returns
    async with db.session(Identity.system()) as s:
        stored = await s.executions.get(final.id)
    assert stored.output["sources"][0]["chunk_id"] == source["chunk_id"]


async def test_an_answer_citing_nothing_still_lists_what_it_read(db, library, fake_llm):
    fake_llm.script(
        [
            ToolCall("knowledge_search", {"query": "what is all warfare based on"}),
            Text("All warfare is based on deception."),
        ]
    )
    final = await _run(db, library, fake_llm, "What is all warfare based on?")
    sources = final.output["sources"]
    assert sources and not any(s["cited"] for s in sources)
    assert [s["ref"] for s in sources] == list(range(1, len(sources) + 1))
    assert any(s["source"] == "art_of_war.html" for s in sources)
    assert format_sources(sources).startswith("**Passages read** (none cited)")


async def test_agents_without_knowledge_get_no_citation_rule_or_sources(db, library, fake_llm):
    fake_llm.script([Text("Hello.")])
    async with db.session(library.identity) as s:
        agent = (
            await apply_spec(
                s,
                library.team_id,
                SPEC.replace("  tools:\n    - use: knowledge.search\n      collection: library\n", ""),
            )
        ).agent
    runtime = Runtime(db, llm=OpenAIClient(api_key=fake_llm.api_key, base_url=fake_llm.base_url))
    ex = await runtime.create(library.identity, library.team_id, agent, inputs={"question": "hi"})
    final = await runtime.run(ex.id)
    assert final.output == {"text": "Hello."}
    assert "[n]" not in fake_llm.chat_requests[0].body["messages"][0]["content"]
