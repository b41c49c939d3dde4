"""Ingest: de-duplication, replacement, sync, and bad files that leave the collection intact."""

from __future__ import annotations

from pathlib import Path

import pytest

from coherex.errors import UserError
from coherex.knowledge import SourceDocument, ingest_file, knowledge_search, sync_documents
from coherex.settings import reset_settings_cache
from coherex.store.db import Database


async def snapshot(db: Database, tenant, name: str = "library") -> list[tuple]:
    async with db.session(tenant.identity) as s:
        coll = await s.knowledge.get_collection(tenant.team_id, name)
        if coll is None:
            return []
        docs = await s.knowledge.list_documents(coll.id)
        return [
            (d.source, d.content_hash, d.status, [c.content_hash for c in await s.knowledge.chunks(d.id)])
            for d in docs
        ]


async def test_reingesting_the_same_files_adds_nothing(db: Database, library, corpus: list[Path], embedder):
    before = await snapshot(db, library)
    assert len(before) == len(corpus) and all(status == "ready" for _, _, status, _ in before)
    embedder.calls.clear()
    for path in corpus:
        result = await ingest_file(db, library.identity, library.team_id, "library", path)
        assert not result.added and result.chunks > 0
    assert await snapshot(db, library) == before
    assert embedder.calls == []  # not even parsed and embedded again


async def test_a_changed_file_replaces_its_old_version_and_reuses_unchanged_chunks(
    db: Database, two_teams, embedder
):
    alpha, _ = two_teams
    v1 = (
        "# Handbook\n\n## Holidays\n\nEveryone gets 30 days of paid holiday.\n\n## Expenses\n\nClaim "
        "within 30 days."
    )
    await ingest_file(db, alpha.identity, alpha.team_id, "handbook", v1.encode(), "handbook.md")
    v2 = v1.replace("30 days of paid holiday", "32 days of paid holiday")
    result = await ingest_file(db, alpha.identity, alpha.team_id, "handbook", v2.encode(), "handbook.md")
    assert (result.added, result.replaced, result.chunks, result.reused_embeddings) == (True, 1, 2, 1)
    [(source, _, _, chunks)] = await snapshot(db, alpha, "handbook")
    assert source == "handbook.md" and len(chunks) == 2
    [hit] = await knowledge_search(
        db, alpha.identity, alpha.team_id, "handbook", "how many holiday days", k=1
    )
    assert "32 days" in hit.content


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("empty.txt", b"", "empty.txt is empty"),
        ("blank.md", b"  \n\n \t\n", "blank.md is empty"),
        (
            "corrupt.pdf",
            b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\nthis is not a pdf\n%%EOF",
            "not a readable PDF",
        ),
        ("truncated.docx", b"PK\x03\x04" + b"\x00" * 200, "not a supported file"),
        ("notes.pdf", b"Just some plain notes, not a PDF at all.", "extension .pdf but its content is text"),
        ("image.png", bytes(range(256)) * 8, "content is binary"),
    ],
)
async def test_bad_files_get_a_clear_error_and_the_collection_is_intact(
    db: Database, library, filename, content, message
):
    before = await snapshot(db, library)
    with pytest.raises(UserError, match=message):
        await ingest_file(db, library.identity, library.team_id, "library", content, filename)
    assert await snapshot(db, library) == before


async def test_a_pdf_named_txt_is_refused(db: Database, library, corpus: list[Path]):
    pdf = next(p for p in corpus if p.suffix == ".pdf").read_bytes()
    with pytest.raises(UserError, match=r"notes.txt has the extension .txt but its content is a PDF"):
        await ingest_file(db, library.identity, library.team_id, "library", pdf, "notes.txt")


async def test_an_oversized_file_is_refused_before_it_is_read(
    db: Database, library, tmp_path: Path, monkeypatch
):
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as f:  # sparse: 200 MB on paper, nothing on disk
        f.truncate(200 * 1024 * 1024)
    before = await snapshot(db, library)
    with pytest.raises(UserError, match=r"huge.txt is 200.0 MB; the limit is 50 MB") as err:
        await ingest_file(db, library.identity, library.team_id, "library", huge)
    assert "COHEREX_KB_MAX_FILE_MB" in str(err.value)
    assert await snapshot(db, library) == before

    monkeypatch.setenv("COHEREX_KB_MAX_FILE_MB", "0.001")
    reset_settings_cache()
    try:
        with pytest.raises(UserError, match="the limit is 0 MB"):
            await ingest_file(db, library.identity, library.team_id, "library", b"x" * 2000, "small.txt")
    finally:
        monkeypatch.delenv("COHEREX_KB_MAX_FILE_MB")
        reset_settings_cache()


async def test_a_failed_first_ingest_creates_no_collection(db: Database, two_teams, embedder):
    alpha, _ = two_teams
    with pytest.raises(UserError):
        await ingest_file(db, alpha.identity, alpha.team_id, "fresh", b"", "empty.txt")
    async with db.session(alpha.identity) as s:
        assert await s.knowledge.get_collection(alpha.team_id, "fresh") is None


async def test_invalid_collection_name(db: Database, two_teams, embedder):
    alpha, _ = two_teams
    with pytest.raises(UserError, match="not a valid collection name"):
        await ingest_file(db, alpha.identity, alpha.team_id, "My Docs!", b"hello", "a.txt")


async def test_sync_adds_updates_and_prunes_documents(db: Database, two_teams, embedder):
    alpha, _ = two_teams
    docs = [
        SourceDocument(
            "github:acme/site/docs/install.md",
            "Install",
            "# Install\n\nRun `pip install acme`.",
            {"repo": "acme/site"},
        ),
        SourceDocument(
            "github:acme/site/docs/deploy.md",
            "Deploy",
            "# Deploy\n\nPush to the main branch.",
            {"repo": "acme/site"},
        ),
    ]
    first = await sync_documents(
        db, alpha.identity, alpha.team_id, "acme-docs", docs, prune_prefix="github:acme/site/"
    )
    assert [r.added for r in first] == [True, True]
    again = await sync_documents(
        db, alpha.identity, alpha.team_id, "acme-docs", docs, prune_prefix="github:acme/site/"
    )
    assert [r.added for r in again] == [False, False]

    changed = [
        SourceDocument(
            docs[0].source, "Install", "# Install\n\nRun `uv pip install acme`.", {"repo": "acme/site"}
        )
    ]
    await sync_documents(
        db, alpha.identity, alpha.team_id, "acme-docs", changed, prune_prefix="github:acme/site/"
    )
    state = await snapshot(db, alpha, "acme-docs")
    assert [s for s, *_ in state] == ["github:acme/site/docs/install.md"]
    [hit] = await knowledge_search(
        db, alpha.identity, alpha.team_id, "acme-docs", "how to install", k=1, filters={"repo": "acme/site"}
    )
    assert "uv pip install" in hit.content and hit.title == "Install" and hit.metadata["section"] == "Install"
