"""Real third-party MCP servers from npm, for tests and benchmarks.

`scripts/install.sh --test` installs the pinned packages globally (under /usr, which every sandbox
box mounts read-only), so `npx -y <package>` in a box finds them after one registry lookup instead of
downloading them, and `mcp-server-everything` runs on the host as the remote server of the HTTP tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

PACKAGES = {
    "@modelcontextprotocol/server-everything": "2026.8.31",
    "@modelcontextprotocol/server-filesystem": "2026.8.31",
    "@modelcontextprotocol/server-memory": "2026.8.31",
}
EVERYTHING = "npx -y @modelcontextprotocol/server-everything"
FILESYSTEM = "npx -y @modelcontextprotocol/server-filesystem /home/user"
MEMORY = "npx -y @modelcontextprotocol/server-memory"


def require_packages() -> None:
    missing = [p for p in PACKAGES if shutil.which("mcp-server-" + p.rsplit("-", 1)[-1]) is None]
    if missing:
        raise RuntimeError(
            f"the MCP test servers {', '.join(missing)} are not installed: run `scripts/install.sh --test`"
        )


class EverythingServer:
    """`mcp-server-everything streamableHttp|sse` on the host, on a free loopback port."""

    def __init__(self, mode: str, log_path: Path):
        from coherex.sandbox.server.run import free_port

        require_packages()
        self.port = free_port()
        self.mode = mode
        self._log = open(log_path, "w")  # noqa: SIM115 -- open while the server runs
        self.proc = subprocess.Popen(
            ["mcp-server-everything", mode],
            env={**os.environ, "PORT": str(self.port)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = log_path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/" + ("mcp" if self.mode == "streamableHttp" else "sse")

    def wait_ready(self, timeout: float = 90) -> EverythingServer:
        from coherex.sandbox.server.run import port_is_open

        deadline = time.monotonic() + timeout  # generous: node starts slowly on a loaded machine
        while not port_is_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"mcp-server-everything did not start:\n{self.log_path.read_text()[-2000:]}"
                )
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
