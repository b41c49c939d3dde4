"""Running the local sandbox server: in the foreground (`coherex sandbox serve`) or in a thread."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import socket
import threading
from pathlib import Path

from coherex.sandbox.errors import SandboxUnavailable
from coherex.settings import Settings

log = logging.getLogger(__name__)


E2B_KEY = re.compile(r"e2b_[0-9a-f]+")


def api_key_file(settings: Settings) -> Path:
    return settings.data_path / "sandbox" / "api_key"


def local_api_key(settings: Settings, *, create: bool) -> str | None:
    """The key the local server requires: E2B_API_KEY when given, else one kept in the data dir."""
    if settings.e2b_api_key is not None:
        return settings.e2b_api_key.get_secret_value()
    path = api_key_file(settings)
    if path.exists():
        key = path.read_text().strip()
        # E2B's format (the SDK refuses any other key before a request); older local keys are replaced
        if E2B_KEY.fullmatch(key) or not create:
            return key
        path.unlink()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "e2b_" + secrets.token_hex(20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    return key


def port_is_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


async def serve(settings: Settings, *, port: int, api_key: str, stop: asyncio.Event | None = None) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    from coherex.sandbox.server.app import QuietAborts, SandboxServer
    from coherex.sandbox.server.boxes import BoxFactory
    from coherex.sandbox.server.isolation import Limits

    if port_is_open(port):
        raise SandboxUnavailable(
            f"port {port} is already in use on 127.0.0.1",
            hint="choose another with --port or COHEREX_SANDBOX_PORT",
        )
    factory = BoxFactory(
        settings.data_path, settings.sandbox_pool_size, Limits(root_bytes=settings.sandbox_root_mb << 20)
    )
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]  # never on other interfaces: boxes run code on this host
    config.accesslog = None
    config.errorlog = log
    if not any(isinstance(f, QuietAborts) for f in log.filters):
        log.addFilter(QuietAborts())  # a cell's stream cut on purpose is not an error
    config.keep_alive_timeout = 75
    stop = stop or asyncio.Event()
    await hypercorn_serve(SandboxServer(api_key, factory), config, shutdown_trigger=stop.wait, mode="asgi")


class ServerThread:
    """A server on its own event loop in a background thread (tests, `coherex sandbox exec`)."""

    def __init__(self, settings: Settings, *, port: int, api_key: str):
        self.settings, self.port, self.api_key = settings, port, api_key
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"sandbox-server-{port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            await serve(self.settings, port=self.port, api_key=self.api_key, stop=self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:
            self._error = exc

    def start(self, timeout: float = 60) -> ServerThread:
        self._thread.start()
        waited = 0.0
        while not port_is_open(self.port):
            if not self._thread.is_alive() or waited > timeout:
                raise SandboxUnavailable(f"the local sandbox server did not start: {self._error}")
            self._thread.join(0.02)
            waited += 0.02
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
