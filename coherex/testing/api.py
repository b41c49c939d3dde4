"""The real HTTP API (FastAPI + uvicorn, with its lifespan) on a free port, for tests."""

from __future__ import annotations

import httpx

from coherex.testing._server import BackgroundServer


class ApiServer:
    def __init__(self):
        from coherex.api.app import create_app

        self._server = BackgroundServer(create_app(chat=False), "coherex-api", lifespan="on")
        self.port = self._server.port
        self.base_url = self._server.base_url

    def __enter__(self) -> ApiServer:
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30)
