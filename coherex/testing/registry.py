"""A real OCI registry for tests and benchmarks: Debian's `docker-registry` (CNCF distribution 2.8)
on a free 127.0.0.1 port, with htpasswd (bcrypt) auth, storing blobs under a directory.

    with LocalRegistry(tmp_path, users={"alice": "s3cret"}) as reg:
        reg.host            # "127.0.0.1:PORT", for references like f"{reg.host}/acme/agent:1"
        reg.blob_path(digest)   # the file holding a blob, to corrupt it in a test

Needs `docker-registry` and `htpasswd` (apache2-utils) on PATH (scripts/apt-packages-test.txt).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx


class LocalRegistry:
    def __init__(self, directory: Path, users: dict[str, str] | None = None):
        for tool in ("docker-registry", "htpasswd"):
            if shutil.which(tool) is None:
                raise RuntimeError(f"{tool} is not installed (see scripts/apt-packages-test.txt)")
        self.directory = Path(directory)
        self.storage = self.directory / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.users = dict(users or {})
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> LocalRegistry:
        auth = ""
        if self.users:
            htpasswd = self.directory / "htpasswd"
            lines = []
            for user, password in self.users.items():
                out = subprocess.run(
                    ["htpasswd", "-Bbn", "-C", "4", user, password],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                lines.append(out.strip())
            htpasswd.write_text("\n".join(lines) + "\n")
            auth = f"auth:\n  htpasswd:\n    realm: coherex-test\n    path: {htpasswd}\n"
        config = self.directory / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
            f"http:\n  addr: {self.host}\n  secret: coherex-test-secret\n" + auth
        )
        self._log = open(self.directory / "registry.log", "wb")
        self._proc = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(f"http://{self.host}/v2/", timeout=1)
                return self
            except httpx.TransportError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"docker-registry did not start: {(self.directory / 'registry.log').read_text()}"
                    ) from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        self._proc = None
        if getattr(self, "_log", None):
            self._log.close()

    def blob_path(self, digest: str) -> Path:
        """Where distribution's filesystem driver keeps a blob's bytes."""
        algo, hexa = digest.split(":", 1)
        return self.storage / "docker/registry/v2/blobs" / algo / hexa[:2] / hexa / "data"

    def blob_files(self) -> list[Path]:
        return sorted((self.storage / "docker/registry/v2/blobs").rglob("data"))

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
