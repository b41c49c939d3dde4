"""A small real corpus goes in; hand-written questions get the right passage first."""

from __future__ import annotations

import pytest

from coherex.errors import NotFound
from coherex.knowledge import ingest_file, knowledge_search
from coherex.store.db import Database

# (question, file the answer is in, words the passage must contain)
QUESTIONS = [
    (
        "Which amendment protects people against unreasonable searches of their homes?",
        "bill_of_rights.md",
        "unreasonable searches and seizures",
    ),
    ("Can the army house soldiers in my home in peacetime?", "bill_of_rights.md", "No Soldier shall"),
    ("Are cruel punishments and excessive bail allowed?", "bill_of_rights.md", "Excessive bail"),
    ("What is all warfare based on?", "art_of_war.html", "All warfare is based on deception"),
    ("Does a country gain anything from a long drawn-out war?", "art_of_war.html", "prolonged warfare"),
    ("How many moons does the red planet have?", "planets.csv", "Phobos and Deimos"),
    ("Why did the fox decide the grapes were sour?", "fables.pdf", "The Grapes are sour"),
    ("What did the grasshopper spend his summer doing?", "more_fables.docx", "singing"),
    (
        "Which speech says government of the people, by the people, for the people shall not perish?",
        "gettysburg.txt",
        "shall not perish from the earth",
    ),
    (
        "What happened to the boy who kept lying about a wolf?",
        "more_fables.docx",
        "A liar will not be believed",
    ),
]


async def test_the_right_passage_ranks_first(db: Database, library):
    wrong = []
    for question, source, phrase in QUESTIONS:
        hits = await knowledge_search(db, library.identity, library.team_id, "library", question, k=3)
        top = hits[0]
        if top.source != source or phrase not in top.content:
            wrong.append(f"{question!r}: got {top.source} {top.content[:80]!r}")
    assert not wrong, "\n".join(wrong)


async def test_hits_carry_document_metadata_and_highlight(db: Database, library):
    [hit] = await knowledge_search(
        db, library.identity, library.team_id, "library", "sour grapes the fox could not reach", k=1
    )
    assert (hit.title, hit.source, hit.metadata["page"]) == ("Fables of Aesop", "fables.pdf", 2)
    assert "**Grapes**" in hit.highlight or "**grapes**" in hit.highlight
    assert hit.similarity is not None and 0 < hit.similarity <= 1 and hit.score > 0

    [amendment] = await knowledge_search(
        db, library.identity, library.team_id, "library", "quartering soldiers", k=1
    )
    assert amendment.metadata["section"] == "The Bill of Rights > Amendment III"


async def test_keyword_syntax_and_metadata_filters(db: Database, library):
    hits = await knowledge_search(
        db, library.identity, library.team_id, "library", '"speedy and public trial"', k=2
    )
    assert "speedy and public trial" in hits[0].content

    only_pdf = await knowledge_search(
        db,
        library.identity,
        library.team_id,
        "library",
        "war and soldiers",
        k=5,
        filters={"source": "fables.pdf"},
    )
    assert only_pdf and {h.source for h in only_pdf} == {"fables.pdf"}


async def test_unknown_collection_is_named(db: Database, library):
    with pytest.raises(NotFound, match="no collection 'nope'.*"):
        await knowledge_search(db, library.identity, library.team_id, "nope", "anything")


async def test_other_team_never_sees_the_chunks(db: Database, library, two_teams):
    alpha, bravo = two_teams
    # bravo cannot name alpha's collection, not even with alpha's team id ...
    with pytest.raises(NotFound):
        await knowledge_search(db, bravo.identity, alpha.team_id, "library", "warfare deception")
    # ... and a same-named collection of its own holds only its own documents
    await ingest_file(
        db, bravo.identity, bravo.team_id, "library", b"Bravo's own note about deception in war.", "bravo.txt"
    )
    hits = await knowledge_search(
        db, bravo.identity, bravo.team_id, "library", "All warfare is based on deception"
    )
    assert [h.source for h in hits] == ["bravo.txt"]
    # the repository under bravo's identity cannot read alpha's rows even when given alpha's collection
    async with db.session(alpha.identity) as s:
        alpha_coll = await s.knowledge.get_collection(alpha.team_id, "library")
        alpha_docs = await s.knowledge.list_documents(alpha_coll.id)
    async with db.session(bravo.identity) as s:
        assert await s.knowledge.search(alpha_coll, "deception", [0.05] * 384, k=10) == []
        assert await s.knowledge.list_documents(alpha_coll.id) == []
        assert await s.knowledge.chunks(alpha_docs[0].id) == []
