"""Changing the embeddings model: a collection keeps its model until `reindex` moves it, and the
OpenAI backend goes through our real client code against the local fake OpenAI server."""

from __future__ import annotations

import pytest

from coherex.errors import UserError
from coherex.knowledge import ingest_file, knowledge_search, reindex_collection
from coherex.settings import reset_settings_cache
from coherex.store.db import Database
from coherex.testing.fake_openai import FakeOpenAI

NOTES = (
    b"# Office\n\n## Coffee\n\nThe espresso machine is on the third floor.\n\n## Parking\n\nBikes go in "
    b"the courtyard."
)


async def test_switching_to_openai_needs_a_reindex(db: Database, two_teams, embedder, monkeypatch):
    alpha, _ = two_teams
    await ingest_file(db, alpha.identity, alpha.team_id, "office", NOTES, "office.md")

    with FakeOpenAI(api_key="sk-test") as server:
        monkeypatch.setenv("COHEREX_EMBEDDINGS", "openai")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", server.api_key)
        reset_settings_cache()
        try:
            with pytest.raises(UserError, match="embedded with all-MiniLM-L6-v2") as err:
                await knowledge_search(db, alpha.identity, alpha.team_id, "office", "espresso")
            assert "coherex kb reindex --collection office" in str(err.value)

            assert await reindex_collection(db, alpha.identity, alpha.team_id, "office") == 2
            async with db.session(alpha.identity) as s:
                coll = await s.knowledge.get_collection(alpha.team_id, "office")
            assert (coll.embedding_model, coll.embedding_dim) == ("openai:text-embedding-3-small", 1536)

            await ingest_file(
                db, alpha.identity, alpha.team_id, "office", b"Lunch is served at noon.", "lunch.txt"
            )
            hits = await knowledge_search(db, alpha.identity, alpha.team_id, "office", '"espresso machine"')
            assert "third floor" in hits[0].content and hits[0].metadata["section"] == "Office > Coffee"
            bodies = [r.body for r in server.requests if r.path == "/v1/embeddings"]
            assert bodies and all(b["model"] == "text-embedding-3-small" for b in bodies)
            assert all(r.headers["authorization"] == "Bearer sk-test" for r in server.requests)
        finally:
            monkeypatch.delenv("COHEREX_EMBEDDINGS")
            reset_settings_cache()

    # back on the local model, the collection must be re-embedded again before it is searched
    with pytest.raises(UserError, match="embedded with openai:text-embedding-3-small"):
        await knowledge_search(db, alpha.identity, alpha.team_id, "office", "espresso")
    assert await reindex_collection(db, alpha.identity, alpha.team_id, "office") == 3
    [hit] = await knowledge_search(
        db, alpha.identity, alpha.team_id, "office", "where can I get coffee?", k=1
    )
    assert "espresso" in hit.content


async def test_a_wrong_api_key_is_a_clear_backend_error(db: Database, two_teams, monkeypatch):
    from coherex.errors import BackendError

    alpha, _ = two_teams
    with FakeOpenAI(api_key="sk-right") as server:
        monkeypatch.setenv("COHEREX_EMBEDDINGS", "openai")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
        reset_settings_cache()
        try:
            with pytest.raises(BackendError, match="refused the API key") as err:
                await ingest_file(db, alpha.identity, alpha.team_id, "office", NOTES, "office.md")
            assert "OPENAI_API_KEY" in str(err.value)
        finally:
            reset_settings_cache()
    async with db.session(alpha.identity) as s:
        assert await s.knowledge.get_collection(alpha.team_id, "office") is None
