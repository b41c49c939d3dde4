"""Files attached in the chat: an empty one is refused with a message that says so.

Chainlit's upload route (`POST /project/file`) fails on an empty file with a server error (a
`ValueError` and its traceback in the log) that the browser shows as "Upload failed".
`EmptyUploadMiddleware` answers such an upload itself, with a 400 whose `detail` Chainlit's
front end shows next to the file.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

#: bigger request bodies pass through unread (Chainlit refuses them by its own size limit)
_MAX_BUFFERED = 64 * 1024 * 1024


class EmptyUploadMiddleware:
    def __init__(self, app: Any, prefix: str = "/chat") -> None:
        self.app, self.path = app, prefix.rstrip("/") + "/project/file"

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False) and len(body) <= _MAX_BUFFERED
        whole = not more
        replay = _replay(body, receive, more_body=not whole)
        empty = await _empty_file(scope, body) if whole else None
        if empty is None:
            await self.app(scope, replay, send)
            return
        detail = f"{empty} is empty: there is nothing in it to use. Attach the file with its content."
        await JSONResponse({"detail": detail}, status_code=400)(scope, replay, send)


async def _empty_file(scope: dict, body: bytes) -> str | None:
    """The name of the uploaded file when it has no content, else None."""
    form = await Request(scope, _replay(body, _never, more_body=False)).form()
    try:
        upload = form.get("file")
        if upload is None or not hasattr(upload, "read"):
            return None
        return (upload.filename or "the file") if not await upload.read(1) else None
    finally:
        await form.close()


def _replay(body: bytes, receive: Any, *, more_body: bool) -> Any:
    """A `receive` that hands `body` back first, then goes on with the original one (the rest of the
    body when it was not all read, else the client's disconnect when it comes)."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more_body}
        return await receive()

    return replay


async def _never() -> dict:
    return {"type": "http.disconnect"}
