"""One way to run an ASGI app on a free 127.0.0.1 port in a background thread (test servers)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


class BackgroundServer:
    """`start()` returns once the server accepts connections; `stop()` shuts it down."""

    def __init__(self, app: Any, name: str, *, lifespan: str = "off"):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Streaming answers are many small writes: without NODELAY each may wait ~40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        self._sock = sock
        self.port: int = sock.getsockname()[1]
        self.name = name
        self._server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan=lifespan, timeout_graceful_shutdown=1)
        )
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=name, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


class ServedApp:
    """Base for fake services: `with Fake() as f:` serves `f._app()` on a free port until the block ends."""

    server_name = "test-server"
    port: int = 0

    def _app(self) -> Any:
        raise NotImplementedError

    def start(self):
        self._server = BackgroundServer(self._app(), self.server_name).start()
        self.port = self._server.port
        return self

    def stop(self) -> None:
        if getattr(self, "_server", None) is not None:
            self._server.stop()
        self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
