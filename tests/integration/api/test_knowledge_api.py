"""Knowledge over the HTTP API: inline and queued uploads (with progress), search, bad files."""

from __future__ import annotations

TEXT = (
    "# Expenses\n\nClaim travel expenses within 30 days using the expense form. Receipts are required "
    "for every item above 25 euros.\n\n# Holidays\n\nEveryone has 28 days of paid holiday a year.\n"
)


async def test_queued_upload_reports_progress_then_is_searchable(api, keys, drain):
    alpha, _ = keys
    async with api.client(alpha) as c:
        r = await c.post(
            "/api/knowledge/upload",
            data={"collection": "handbook", "background": "true"},
            files={"file": ("handbook.md", TEXT.encode(), "text/markdown")},
        )
        assert r.status_code == 202, r.text
        upload_id = r.json()["upload_id"]
        assert (await c.get(f"/api/knowledge/uploads/{upload_id}")).json()["status"] == "queued"

        bad = await c.post(
            "/api/knowledge/upload",
            data={"collection": "handbook", "background": "true"},
            files={"file": ("broken.pdf", b"%PDF-1.4 garbage", "application/pdf")},
        )
        bad_id = bad.json()["upload_id"]
        await drain()

        done = (await c.get(f"/api/knowledge/uploads/{upload_id}")).json()
        assert done["status"] == "done" and done["document_id"] and done["error"] is None
        failed = (await c.get(f"/api/knowledge/uploads/{bad_id}")).json()
        assert failed["status"] == "failed" and "broken.pdf" in failed["error"]

        hits = (
            await c.post(
                "/api/knowledge/search",
                json={"collection": "handbook", "query": "how long do I have to claim travel costs?"},
            )
        ).json()
        assert "30 days" in hits[0]["content"]

        inline = await c.post(
            "/api/knowledge/upload",
            data={"collection": "handbook"},
            files={"file": ("handbook.md", TEXT.encode(), "text/markdown")},
        )
        assert inline.status_code == 200 and inline.json()["added"] is False  # same content: stored once


async def test_another_team_cannot_see_an_upload(api, keys):
    alpha, bravo = keys
    async with api.client(alpha) as c:
        upload_id = (
            await c.post(
                "/api/knowledge/upload",
                data={"collection": "handbook", "background": "true"},
                files={"file": ("a.txt", b"hello", "text/plain")},
            )
        ).json()["upload_id"]
    async with api.client(bravo) as c:
        assert (await c.get(f"/api/knowledge/uploads/{upload_id}")).status_code == 404
