"""An empty file attached in the chat is refused with a message that says it is empty (Chainlit's
own route failed with a server error, shown as "Upload failed"); other uploads pass untouched."""

from __future__ import annotations

from fastapi import FastAPI, UploadFile
from fastapi.testclient import TestClient

from coherex.chat.uploads import EmptyUploadMiddleware


def test_the_web_process_says_an_empty_attachment_is_empty(caplog):
    from coherex.api.app import create_app

    client = TestClient(create_app(chat=True))
    r = client.post(
        "/chat/project/file", params={"session_id": "any"}, files={"file": ("sales.csv", b"", "text/csv")}
    )
    assert r.status_code == 400
    assert r.json()["detail"].startswith("sales.csv is empty")
    assert "Traceback" not in caplog.text


def test_a_file_with_content_reaches_the_route_whole():
    inner = FastAPI()

    @inner.post("/chat/project/file")
    async def upload(file: UploadFile) -> dict:
        return {"name": file.filename, "size": len(await file.read())}

    client = TestClient(EmptyUploadMiddleware(inner, prefix="/chat"))
    data = b"region,amount\n" + b"north,17\n" * 200_000  # several receive() chunks
    r = client.post("/chat/project/file", files={"file": ("sales.csv", data, "text/csv")})
    assert r.status_code == 200 and r.json() == {"name": "sales.csv", "size": len(data)}
