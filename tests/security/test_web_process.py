"""The real web process (`coherex web`, API and chat) against unauthenticated exhaustion and
cross-site use (issue 16, findings 6 and 8).

- A 1 GiB body streamed to `/api/hooks/<any id>` (no credentials needed) is refused with 413 after
  about 1 MB: the server answers while the client is still sending, its peak memory stays flat and
  it keeps serving. A Content-Length over the limit is refused before any body is sent.
- A multipart upload without credentials is refused with 401 before its body is read.
- Chainlit's routes answer CORS only for COHEREX_PUBLIC_URL, and a WebSocket from another site
  carrying the chat's cookie is refused at the handshake.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from coherex.store.db import DatabaseUrls

ROOT = Path(__file__).resolve().parents[2]
GIB = 1 << 30
CHUNK = 1 << 16


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def web(pg_server, tmp_path_factory):
    """`coherex web` (API + chat) on a free port, on its own migrated database."""
    urls: DatabaseUrls = pg_server.create_database()
    tmp = tmp_path_factory.mktemp("web")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": urls.app,
        "COHEREX_DATA_DIR": str(tmp / "data"),
        "COHEREX_PUBLIC_URL": base,
        "COHEREX_API_RATE": "1000",
        "COHEREX_API_BURST": "1000",
    }
    env.pop("CHAINLIT_AUTH_SECRET", None)
    log = open(tmp / "web.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "coherex", "web", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, (tmp / "web.log").read_text()
        try:
            if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "coherex web did not start: " + (tmp / "web.log").read_text()
        time.sleep(0.2)
    yield proc, port
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    pg_server.drop_database(urls)


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _stream(
    port: int, head: str, body_bytes: int, chunked: bool = True, preamble: bytes = b""
) -> tuple[int, int, float]:
    """Send a request head (and a chunk `preamble`), then up to `body_bytes` of body in chunks while
    watching for an answer. Returns (status, bytes of body sent before the answer, seconds until it)."""
    started = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            head.encode() + (f"{len(preamble):x}\r\n".encode() + preamble + b"\r\n" if preamble else b"")
        )
        piece = b"x" * CHUNK
        frame = f"{CHUNK:x}\r\n".encode() + piece + b"\r\n" if chunked else piece
        try:
            while sent < body_bytes:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server answered before reading the rest
                sock.sendall(frame)
                sent += CHUNK
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered and closed: read what it said
        sock.settimeout(30)
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split()[1]), sent, elapsed


def test_a_1_gib_webhook_body_is_refused_after_the_limit_and_memory_stays_flat(web):
    proc, port = web
    peak_before = _peak_rss_mib(proc.pid)
    head = (
        f"POST /api/hooks/{uuid.uuid4()} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    status, sent, elapsed = _stream(port, head, GIB)
    assert status == 413
    assert sent < 64 << 20, (
        f"the server let {sent >> 20} MiB through before answering"
    )  # ~1 MB + socket buffers
    assert elapsed < 20
    assert _peak_rss_mib(proc.pid) - peak_before < 64, "the web process's memory grew with the body"
    # a declared length over the limit: refused before a byte of body is sent
    head = (
        f"POST /api/hooks/{uuid.uuid4()} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {GIB}\r\n\r\n"
    )
    status, _, elapsed = _stream(port, head, 0, chunked=False)
    assert status == 413 and elapsed < 10
    assert proc.poll() is None and httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200


def test_an_upload_without_credentials_is_refused_before_its_body_is_read(web):
    proc, port = web
    peak_before = _peak_rss_mib(proc.pid)
    head = (
        f"POST /api/knowledge/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: multipart/form-data; boundary=XyZ\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    part = (
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
    )  # then 1 GiB of file content
    status, sent, elapsed = _stream(port, head, GIB, preamble=part)
    assert status == 401 and sent < 64 << 20 and elapsed < 20, (status, sent >> 20, elapsed)
    assert _peak_rss_mib(proc.pid) - peak_before < 64
    assert proc.poll() is None


def test_chainlit_cors_and_websockets_are_for_the_own_origin_only(web):
    _, port = web
    own, evil = f"http://127.0.0.1:{port}", "http://evil.example"
    cookie = {"access_token": "a-session-cookie"}
    with httpx.Client(base_url=own, cookies=cookie) as c:
        foreign = c.get("/chat/auth/config", headers={"Origin": evil})
        assert "access-control-allow-origin" not in foreign.headers, foreign.headers
        preflight = c.options(
            "/chat/project/settings",
            headers={
                "Origin": evil,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.headers.get("access-control-allow-origin") != evil
        ours = c.get("/chat/auth/config", headers={"Origin": own})
        assert ours.headers.get("access-control-allow-origin") == own
    # a cross-site WebSocket to the chat's socket.io with the cookie: refused at the handshake
    for origin, refused in ((evil, True), (own, False)):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                (
                    "GET /chat/ws/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: "
                    f"127.0.0.1:{port}\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                    f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: {origin}\r\n"
                    "Cookie: access_token=a-session-cookie\r\n\r\n"
                ).encode()
            )
            status = int(sock.recv(4096).split()[1])
        assert (status == 403) is refused, (origin, status)
