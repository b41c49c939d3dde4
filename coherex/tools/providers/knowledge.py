"""`knowledge.search` and `knowledge.answer`: the team's knowledge base, read in the database under
the run's identity (row-level security keeps other teams' documents out)."""

from __future__ import annotations

from typing import Any

from coherex.spec.catalogue import ToolInfo
from coherex.tools.port import Provider, ToolCall, ToolFailed, action
from coherex.tools.schema import integer, params, string


@action(
    ToolInfo(
        "knowledge.search",
        "knowledge",
        "Semantic search over the team's knowledge base; returns the best matching passages "
        "with their document titles.",
        uses_collection=True,
        parameters=params(
            {
                "query": string("what to look for, in plain words"),
                "top_k": integer("number of passages", 1, 50),
            },
            ["query"],
        ),
    )
)
async def search(call: ToolCall, args: dict[str, Any]) -> Any:
    from coherex.knowledge import knowledge_search

    run = call.run
    if run is None:
        raise ToolFailed("knowledge.search runs only inside an agent run.")
    query = args.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ToolFailed("knowledge.search needs a `query` string.")
    collection = call.ref.collection if call.ref else None
    if not collection:  # refused when a spec is validated now; versions saved before may lack it
        raise ToolFailed(
            f"This agent's {call.tool.name} names no collection to search: add "
            "`collection: <name>` to the tool in the spec and save a new version."
        )
    hits = await knowledge_search(
        run.db, run.identity, call.team_id, collection, query, int(args.get("top_k") or 5)
    )
    return run.citations.add(hits)


@action(
    ToolInfo(
        "knowledge.answer",
        "knowledge",
        "Answer a question from the team's knowledge base: searches it and returns the sentences of the "
        "best passages that answer it, with [n] citations and their documents (extractive: the documents' "
        "own words).",
        uses_collection=True,
        parameters=params({"question": string("the question; by default the run's `question` input")}),
    )
)
async def answer(call: ToolCall, args: dict[str, Any]) -> str:
    """Retrieval plus an extractive answer (coherex/runtime/extractive.py): no model writes it."""
    from coherex.runtime.extractive import extract_answer

    inputs = call.run.execution.inputs if call.run else {}
    question = args.get("question") or inputs.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ToolFailed("knowledge.answer needs a question: give the run a `question` input.")
    passages = await search.run(call, {"query": question, "top_k": 5})
    found = extract_answer(question, passages)
    # plain text: the answer first, as any model (the offline one too) repeats it best
    return found["answer"] + ("\n\nSources: " + "; ".join(found["sources"]) if found["sources"] else "")


PROVIDER = Provider("knowledge", (search, answer))
