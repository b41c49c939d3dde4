"""Hostile or runaway code is contained with a clear error, and the platform is unharmed."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

import coherex
from coherex.sandbox import SandboxNotFound, health, open_sandbox

from .conftest import FAKE_SECRET

PROJECT = str(Path(coherex.__file__).resolve().parents[1])


@pytest.fixture(autouse=True)
async def platform_unharmed(sandbox_settings):
    """After each test the server still answers and hands out working sandboxes."""
    yield
    assert (await health(sandbox_settings))["ok"]
    async with await open_sandbox(sandbox_settings) as box:
        assert (await box.run_code("6 * 7")).text == "42"


@pytest.mark.parametrize(
    "path", [str(Path.home() / ".bashrc"), f"{PROJECT}/pyproject.toml", "/etc/shadow", "/etc/passwd"]
)
async def test_host_files_are_not_visible(sbx, path):
    result = await sbx.run_code(f"open({path!r}).read()")
    assert result.error is not None
    assert result.error["name"] in ("FileNotFoundError", "PermissionError")


async def test_root_holds_only_the_read_only_interpreter(sbx):
    result = await sbx.run_code("import os\nsorted(os.listdir('/root')), open(os.__file__ + 'x', 'w')")
    assert result.error is not None and result.error["name"] in ("OSError", "PermissionError")
    assert "Read-only file system" in result.error["value"] or "Permission denied" in result.error["value"]


async def test_platform_environment_and_secrets_are_absent(sbx):
    code = (
        "import os, subprocess\n"
        "seen = repr(dict(os.environ))\n"
        "for pid in ('1', 'self'):\n"
        "    try:\n"
        "        seen += open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace')\n"
        "    except OSError as e:\n"
        "        seen += repr(e)\n"
        "seen += subprocess.run(['env'], capture_output=True, text=True).stdout\n"
        "seen"
    )
    result = await sbx.run_code(code)
    assert result.error is None, result.error
    assert FAKE_SECRET not in result.text
    assert "COHEREX_TEST_FAKE_SECRET" not in result.text
    assert "E2B_API_KEY" not in result.text and "e2b_" not in result.text


async def test_no_host_processes_visible(sbx):
    result = await sbx.run_code("import os\nsorted(int(p) for p in os.listdir('/proc') if p.isdigit())[:3]")
    assert result.text is not None and result.text.startswith("[1, 2")


@pytest.fixture
def host_listener():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(srv.accept()[0]), daemon=True).start()
    yield srv.getsockname()[1], accepted
    srv.close()


async def test_host_ports_are_unreachable_with_network_off(sbx, host_listener):
    port, accepted = host_listener
    result = await sbx.run_code(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)")
    assert result.error is not None and result.error["name"] == "ConnectionRefusedError"
    assert accepted == []
    outside = await sbx.run_code("import socket\nsocket.create_connection(('10.0.0.1', 80), timeout=2)")
    assert outside.error is not None and outside.error["name"] in ("OSError", "TimeoutError")


async def test_host_loopback_is_unreachable_with_network_on_too(sandbox_settings, host_listener):
    """A box with network has a loopback of its own (tests/security/test_sandbox_network.py has the rest)."""
    port, accepted = host_listener
    async with await open_sandbox(sandbox_settings, allow_network=True) as box:
        result = await box.run_code(
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=5)"
        )
        assert result.error is not None and result.error["name"] == "ConnectionRefusedError"
    assert accepted == []


async def test_fork_bomb_hits_the_process_limit(sbx):
    result = await sbx.run_code("import os\nwhile True:\n    os.fork()", timeout=60)
    assert result.error is not None
    assert result.error["name"] == "BlockingIOError"  # fork: Resource temporarily unavailable


async def test_allocating_10_gb_is_stopped(sbx):
    result = await sbx.run_code("x = bytearray(10 * 1024**3)\nlen(x)", timeout=60)
    assert result.error is not None
    assert result.error["name"] in ("MemoryError", "SandboxStopped")
    if result.error["name"] == "SandboxStopped":
        assert "out of memory" in result.error["value"]


async def test_infinite_loop_is_interrupted_at_the_timeout_and_the_sandbox_survives(sbx):
    await sbx.run_code("kept = 'still here'")
    result = await sbx.run_code("while True:\n    pass", timeout=1.5)
    assert result.error is not None and result.error["name"] == "TimeoutError"
    assert "1.5 s" in result.error["value"]
    assert (await sbx.run_code("kept")).text == "still here"


async def test_code_ignoring_the_interrupt_gets_its_sandbox_killed(sbx):
    result = await sbx.run_code(
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass", timeout=1
    )
    assert result.error is not None and result.error["name"] == "TimeoutError"
    with pytest.raises(SandboxNotFound, match="not running"):
        for _ in range(100):  # the server kills it after a short grace period
            await sbx.run_code("1")


async def test_writing_5_gb_to_disk_fails_with_a_clear_error(sbx):
    code = (
        "chunk = b'x' * (1 << 20)\n"
        "with open('/home/user/big', 'wb') as f:\n"
        "    for _ in range(5 * 1024):\n"
        "        f.write(chunk)\n"
    )
    result = await sbx.run_code(code, timeout=120)
    assert result.error is not None
    assert result.error["name"] == "OSError"
    assert "No space left on device" in result.error["value"] or "File too large" in result.error["value"]
