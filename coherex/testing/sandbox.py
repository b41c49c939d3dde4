"""A local sandbox server for tests and benchmarks: real isolation, its own process, a free port.

Its own process, as in production (`coherex sandbox serve`): the server changes the mount
namespace of its spawner thread and forks sandboxes, which is best kept away from a test process
that also loads torch, runs other servers and opens many threads.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from coherex.settings import Settings


class SandboxServerProcess:
    def __init__(self, settings: Settings, log_path: Path):
        self.settings = settings
        self.port = settings.sandbox_port
        self._log = open(log_path, "w")
        env = {
            **os.environ,
            "COHEREX_DATA_DIR": str(settings.data_dir),
            "COHEREX_SANDBOX": "local",
            "COHEREX_SANDBOX_PORT": str(self.port),
            "COHEREX_SANDBOX_POOL_SIZE": str(settings.sandbox_pool_size),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coherex", "sandbox", "serve"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = log_path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> SandboxServerProcess:
        from coherex.sandbox.server.run import port_is_open

        deadline = time.monotonic() + timeout
        while not port_is_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the sandbox server did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def start_local_sandbox(data_dir: Path, pool_size: int = 2) -> tuple[SandboxServerProcess, Settings]:
    """(server, settings): stop with `server.stop()`; `settings` point the SDK at it."""
    from coherex.sandbox.server.run import free_port

    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        data_dir=data_dir, sandbox_port=free_port(), sandbox_pool_size=pool_size, sandbox_backend="local"
    )
    server = SandboxServerProcess(settings, data_dir / "sandbox-server.log").wait_ready()
    return server, settings
