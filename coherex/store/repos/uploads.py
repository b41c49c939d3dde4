"""Queued knowledge uploads (large files ingested by a worker)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from coherex.store.models import Row
from coherex.store.repos._base import Repo, require

_COLS = (
    "id, team_id, collection, filename, size_bytes, status, stage, done, total, error, document_id, "
    "created_by, created_at, updated_at"
)


class Upload(Row):
    id: UUID
    team_id: UUID
    collection: str
    filename: str
    size_bytes: int
    status: str
    stage: str
    done: int
    total: int
    error: str | None
    document_id: UUID | None
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime


class UploadRepo(Repo):
    async def create(self, team_id: UUID, collection: str, filename: str, data: bytes) -> Upload:
        return require(
            await self._one(
                Upload,
                "insert into public.knowledge_uploads (team_id, collection, filename, size_bytes, data, "
                f"created_by) values (%s, %s, %s, %s, %s, %s) returning {_COLS}",
                (team_id, collection, filename, len(data), data, self.identity.user_id),
            ),
            "upload",
        )

    async def get(self, upload_id: UUID) -> Upload | None:
        return await self._one(
            Upload, f"select {_COLS} from public.knowledge_uploads where id = %s", (upload_id,)
        )

    async def claim(self, upload_id: UUID) -> tuple[Upload, bytes] | None:
        """queued → processing, once; with the bytes to ingest."""
        row = await self._one(
            Upload,
            f"update public.knowledge_uploads set status = 'processing' where id = %s and status = 'queued' "
            f"returning {_COLS}",
            (upload_id,),
        )
        if row is None:
            return None
        data = await self._scalar("select data from public.knowledge_uploads where id = %s", (upload_id,))
        return row, bytes(data)

    async def progress(self, upload_id: UUID, stage: str, done: int, total: int) -> None:
        await self._exec(
            "update public.knowledge_uploads set stage = %s, done = %s, total = %s where id = %s",
            (stage, done, total, upload_id),
        )

    async def finish(
        self, upload_id: UUID, *, document_id: UUID | None = None, error: str | None = None
    ) -> None:
        """Done or failed; the bytes are dropped either way."""
        await self._exec(
            "update public.knowledge_uploads set status = %s, error = %s, document_id = %s, data = null "
            "where id = %s",
            ("failed" if error else "done", error, document_id, upload_id),
        )
