"""The real web process (`coherex web`: API + chat, what `make run` serves) on a free port, for
browser tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebProcess:
    """`with WebProcess(env, log_path) as web: web.url` — env on top of os.environ (a value None
    leaves that variable out)."""

    def __init__(self, env: dict[str, str | None], log_path: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
        self.env.pop("CHAINLIT_AUTH_SECRET", None)  # the platform makes its own (data dir)
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> WebProcess:
        self._log = open(self.log_path, "w")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "coherex", "web", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError(
                        f"coherex web did not start:\n{self.log_path.read_text()[-3000:]}"
                    ) from None
                time.sleep(0.2)

    def __exit__(self, *exc) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text()
