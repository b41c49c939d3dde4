"""The knowledge base: ingest (parse, chunk), embed, hybrid search.

    result = await ingest_file(db, identity, team_id, "handbook", Path("guide.pdf"))
    hits = await knowledge_search(db, identity, team_id, "handbook", "how do I claim expenses?", k=5)

Data-source sync (GitHub Markdown, Slack history) hands `SourceDocument`s to `sync_documents`.
"""

from coherex.knowledge.ingest import (
    IngestResult,
    Progress,
    SourceDocument,
    ingest_file,
    reindex_collection,
    sync_documents,
)
from coherex.knowledge.search import SearchHit, knowledge_search

__all__ = [
    "IngestResult",
    "Progress",
    "SearchHit",
    "SourceDocument",
    "ingest_file",
    "knowledge_search",
    "reindex_collection",
    "sync_documents",
]
