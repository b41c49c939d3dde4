"""Findings 2 and 10 of issue 16: a sandbox with network must not be on the host's network, only
some roles may turn network on, and boxes must not share a root file system without a size limit
or a host uid.

"The internet" is a network namespace made here with a veth pair in 198.18.0.0/15 (the benchmark
range: nothing real lives there) and an HTTP server on its non-loopback address. The boxes are
made by our real sandbox server through the unmodified E2B SDK, as in production.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from coherex.errors import PermissionDenied, UserError
from coherex.sandbox import open_sandbox
from coherex.services import teams
from coherex.store.db import Identity
from coherex.testing.sandbox import start_local_sandbox

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("slirp4netns"),
    reason="sandbox networking needs root and slirp4netns (scripts/apt-packages.txt)",
)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Internet:
    server: str  # the "internet" server's address, in its own namespace
    host_side: str  # the host's own address on the veth
    port: int
    token: str


@pytest.fixture(scope="module")
def internet(tmp_path_factory):
    tag = str(os.getpid())
    ns, host_if, ns_if = f"cx-inet-{tag}", f"cxh{tag}", f"cxn{tag}"
    net = f"198.18.{os.getpid() % 200 + 20}"
    www = tmp_path_factory.mktemp("www")
    token = secrets.token_hex(12)
    (www / "token").write_text(token)
    port = 8080
    ip("netns", "add", ns)
    srv = None
    try:
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
        ip("addr", "add", f"{net}.1/24", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("-n", ns, "addr", "add", f"{net}.2/24", "dev", ns_if)
        ip("-n", ns, "link", "set", ns_if, "up")
        ip("-n", ns, "link", "set", "lo", "up")
        srv = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                ns,
                sys.executable,
                "-m",
                "http.server",
                "--bind",
                f"{net}.2",
                str(port),
                "--directory",
                str(www),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:  # the host reaches it (as slirp4netns will, through the host's stack)
            try:
                socket.create_connection((f"{net}.2", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or srv.poll() is not None:
                    raise
                time.sleep(0.05)
        yield Internet(f"{net}.2", f"{net}.1", port, token)
    finally:
        if srv is not None:
            srv.kill()
            srv.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


def host_addresses() -> list[str]:
    out = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return [
        a["local"]
        for link in json.loads(out)
        for a in link.get("addr_info", [])
        if a.get("local") and a["family"] == "inet" and not a["local"].startswith("127.")
    ]


@pytest.fixture
def listener():
    """A service listening on every host address (the case where only the host's own addresses,
    not its loopback, would lead to it)."""
    srv = socket.socket()
    srv.bind(("0.0.0.0", 0))
    srv.listen()
    accepted: list = []

    def serve() -> None:
        while True:
            try:
                accepted.append(srv.accept())
            except OSError:
                return  # closed

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1], accepted
    srv.close()


PROBE = textwrap.dedent("""\
    import socket
    out = {}
    for host, port in TARGETS:
        try:
            socket.create_connection((host, port), timeout=3).close()
            out[f"{host}:{port}"] = "connected"
        except OSError as e:
            out[f"{host}:{port}"] = type(e).__name__ + ": " + (e.strerror or str(e))
    out
    """)


async def probe(box, targets: list[tuple[str, int]]) -> dict[str, str]:
    result = await box.run_code(f"TARGETS = {targets!r}\n{PROBE}", timeout=60)
    assert result.error is None, result.error
    return eval(result.text)


# --- finding 2: the network of a box is not the host's ------------------------------------------


async def test_a_box_with_network_reaches_the_internet(local_sandbox, internet):
    _, settings = local_sandbox
    async with await open_sandbox(settings, allow_network=True) as box:
        got = await box.run_code(
            "import urllib.request\n"
            f"urllib.request.urlopen('http://{internet.server}:{internet.port}/token', "
            "timeout=10).read().decode()"
        )
        assert got.error is None, got.error
        assert got.text == internet.token
        resolv = await box.run_code("open('/etc/resolv.conf').read()")
        assert resolv.text == "nameserver 10.0.2.3\n"  # slirp4netns's forwarder, not the host's resolver


async def test_a_box_with_network_reaches_no_port_of_the_host(
    api, fake_llm, pg_server, local_sandbox, internet, listener
):
    server, settings = local_sandbox
    any_port, accepted = listener
    ports = {
        "web API": api.port,
        "LLM endpoint": fake_llm.port,
        "Postgres": pg_server._embedded.port,
        "sandbox server": server.port,
        "a service on every address": any_port,
    }
    for _name, port in ports.items():  # they are up: a refusal below is the box's, not an empty port
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    hosts = ["127.0.0.1", "10.0.2.2", *host_addresses()]  # 10.0.2.2: slirp's alias of the host
    assert internet.host_side in hosts
    targets = [(h, p) for h in hosts for p in ports.values()] + [("169.254.169.254", 80), ("10.0.2.3", 80)]
    async with await open_sandbox(settings, allow_network=True) as box:
        got = await probe(box, targets)
    reached = {k: v for k, v in got.items() if v == "connected"}
    assert reached == {}, f"the box reached the host: {reached} (ports: {ports})"
    assert len(accepted) == 1  # only the reachability check above, none from the box


async def test_a_box_with_network_cannot_listen_on_the_hosts_loopback(local_sandbox):
    _, settings = local_sandbox
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free on the host right now
    async with await open_sandbox(settings, allow_network=True) as box:
        got = await box.run_code(
            f"import socket\nserver = socket.create_server(('127.0.0.1', {port}))\n'listening'"
        )
        assert got.text == "listening", got.error  # in the box's own namespace
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)


async def test_a_box_without_network_has_no_route_at_all(local_sandbox, internet):
    _, settings = local_sandbox
    async with await open_sandbox(settings) as box:
        interfaces = await box.run_code("import socket\n[name for _, name in socket.if_nameindex()]")
        assert interfaces.text == "['lo']"
        routes = await box.run_code("open('/proc/net/route').read().splitlines()[1:]")
        assert routes.text == "[]"
        got = await probe(box, [(internet.server, internet.port), ("10.0.2.2", 80), ("10.0.2.3", 53)])
    assert all("Network is unreachable" in v for v in got.values()), got


def test_the_filter_loads_when_host_addresses_lie_in_blocked_ranges():
    """Cloud hosts often have a 10.x address: it must merge into 10/8, not make nft refuse the
    table (then no box with network would start)."""
    from coherex.sandbox.server.isolation import nft_rules

    rules = nft_rules(["10.1.2.3", "172.20.0.5", "192.0.2.9", "192.0.2.9", "2001:db8::5", "fd00::7"])
    loaded = subprocess.run(
        ["unshare", "--net", "sh", "-c", "nft -f - && nft list ruleset"],
        input=rules,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "10.0.0.0/8" in loaded.stdout and "192.0.2.9" in loaded.stdout and "2001:db8::5" in loaded.stdout
    assert "10.1.2.3" not in loaded.stdout


def slirps_of(server_pid: int) -> list[int]:
    return [p for p, (name, ppid, _) in processes().items() if ppid == server_pid and name == "slirp4netns"]


async def test_one_slirp4netns_per_network_box_gone_with_the_box(local_sandbox):
    server, settings = local_sandbox
    assert await until(lambda: slirps_of(server.proc.pid) == [])  # none left by earlier tests
    async with await open_sandbox(settings) as offline:
        await offline.run_code("1")
        assert slirps_of(server.proc.pid) == []  # only boxes with network get one
        async with (
            await open_sandbox(settings, allow_network=True) as a,
            await open_sandbox(settings, allow_network=True) as b,
        ):
            await a.run_code("1")
            await b.run_code("1")
            assert len(slirps_of(server.proc.pid)) == 2
    assert await until(lambda: slirps_of(server.proc.pid) == [])


# --- finding 2: who may turn network on ----------------------------------------------------------

NET_SPEC = {
    "apiVersion": "coherex/v1",
    "kind": "Agent",
    "metadata": {"name": "fetcher"},
    "spec": {"instructions": "Fetch the page.", "runtime": {"network": True}},
}


async def key_for(db, crew, role: str) -> str:
    async with db.session(Identity.system()) as s:
        _, token = await s.api_keys.create(crew.team_id, f"{role}-key", user_id=crew.users[role])
    return token


async def stored(db, crew) -> tuple[int, int]:
    async with db.connection(Identity.system()) as conn:
        cur = await conn.execute(
            "select (select count(*) from public.agents where team_id = %s), "
            "(select count(*) from public.agent_versions where team_id = %s)",
            (crew.team_id, crew.team_id),
        )
        return tuple(await cur.fetchone())


async def test_a_member_cannot_turn_sandbox_network_on_by_default(api, db, crew):
    member, admin = await key_for(db, crew, "member"), await key_for(db, crew, "admin")
    offline = {**NET_SPEC, "spec": {"instructions": "Fetch the page."}}
    async with api.client(member) as c:
        created = await c.post("/api/agents", json={"spec": offline})
        assert created.status_code == 201
        agent_id = created.json()["agent"]["id"]
        before = await stored(db, crew)
        for attempt in (
            c.post("/api/agents", json={"spec": {**NET_SPEC, "metadata": {"name": "other"}}}),
            c.put(f"/api/agents/{agent_id}", json={"spec": NET_SPEC}),
        ):
            r = await attempt
            assert r.status_code == 403, r.text
            error = r.json()["error"]
            assert "runtime.network" in error["message"] and "network_min_role" in error["message"]
            assert "your role is member" in error["message"]
            assert "coherex teams network-role" in error["hint"]
        assert await stored(db, crew) == before
    async with api.client(admin) as c:
        r = await c.put(f"/api/agents/{agent_id}", json={"spec": NET_SPEC})
        assert r.status_code == 200 and r.json()["created_version"], r.text


async def test_only_an_owner_changes_who_may_turn_network_on(api, db, crew):
    for role in ("admin", "member"):
        with pytest.raises(PermissionDenied, match="owner"):
            await teams.set_network_role(db, crew.who(role), crew.team_id, "member")
    with pytest.raises(UserError, match="network_min_role is one of member, admin, owner"):
        await teams.set_network_role(db, crew.who("owner"), crew.team_id, "anyone")
    team = await teams.set_network_role(db, crew.who("owner"), crew.team_id, "member")
    assert team.network_min_role == "member"
    async with api.client(await key_for(db, crew, "member")) as c:
        assert (await c.post("/api/agents", json={"spec": NET_SPEC})).status_code == 201
    await teams.set_network_role(db, crew.who("owner"), crew.team_id, "owner")
    async with api.client(await key_for(db, crew, "admin")) as c:
        r = await c.post("/api/agents", json={"spec": {**NET_SPEC, "metadata": {"name": "other"}}})
        assert r.status_code == 403 and "needs the role owner" in r.json()["error"]["message"]


# --- finding 10: root file system size and host uids ---------------------------------------------


@pytest.mark.parametrize("where", ["/root/big", "/big"])
async def test_the_root_file_system_is_full_at_its_cap(local_sandbox, where):
    """Outside /tmp and the home dir, writes land on the root tmpfs, capped at COHEREX_SANDBOX_ROOT_MB
    (256 MiB by default): 800 MiB do not fit, and the box goes on working."""
    _, settings = local_sandbox
    code = textwrap.dedent(f"""\
        import os
        chunk, n, err = b'x' * (1 << 20), 0, None
        os.makedirs(os.path.dirname({where!r}), exist_ok=True)
        try:
            with open({where!r}, 'wb') as f:
                for _ in range(800):
                    f.write(chunk)
                    f.flush()
                    n += 1
        except OSError as e:
            err = e.strerror
        os.remove({where!r})
        n, err
        """)
    async with await open_sandbox(settings) as box:
        result = await box.run_code(code, timeout=120)
        assert result.error is None, result.error
        written, why = eval(result.text)
        assert why == "No space left on device" and 200 <= written <= 256, (written, why)
        assert (await box.run_code("open('/home/user/after', 'w').write('still fine')")).text == "10"


def processes() -> dict[int, tuple[str, int, int]]:
    """pid -> (name, parent pid, real uid) of every process on the host."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = dict(
                line.split(":", 1)
                for line in Path(f"/proc/{entry}/status").read_text().splitlines()
                if ":" in line
            )
        except OSError:
            continue  # gone meanwhile
        out[int(entry)] = (fields["Name"].strip(), int(fields["PPid"]), int(fields["Uid"].split()[0]))
    return out


def box_uids(server_pid: int) -> list[int]:
    """The host uid of each box of one sandbox server (each box is one bwrap it started)."""
    return [uid for name, ppid, uid in processes().values() if ppid == server_pid and name == "bwrap"]


def _uid_is_free(uid: int) -> bool:
    """Whether no live box of any sandbox server on this host holds `uid` (its flock is free)."""
    import fcntl

    from coherex.sandbox.server.isolation import UID_LOCK_DIR

    fd = os.open(UID_LOCK_DIR / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # also drops the lock just taken
    return True


async def until(check, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_two_sandbox_servers_on_one_host_never_share_a_box_uid(tmp_path):
    a, a_settings = start_local_sandbox(tmp_path / "a", pool_size=1)
    b, b_settings = start_local_sandbox(tmp_path / "b", pool_size=1)
    c = None
    try:
        boxes = [await open_sandbox(s) for s in (a_settings, b_settings, a_settings, b_settings, a_settings)]
        for box in boxes:
            await box.run_code("1")
        uids_a, uids_b = box_uids(a.proc.pid), box_uids(b.proc.pid)
        assert len(uids_a) >= 3 and len(uids_b) >= 2
        both = uids_a + uids_b
        assert len(set(both)) == len(both), f"a box uid is held twice: {sorted(uids_a)} / {sorted(uids_b)}"
        assert all(200_000 <= uid < 250_000 for uid in both)

        # a server that dies holds nothing: its uids go to the next server that needs one
        a_boxes = {
            pid for pid, (name, ppid, _) in processes().items() if ppid == a.proc.pid and name == "bwrap"
        }
        os.kill(a.proc.pid, signal.SIGKILL)
        a.proc.wait()
        assert await until(lambda: not a_boxes & processes().keys())  # --die-with-parent
        # (asked of the lock files themselves: other sandbox servers of this host may take them first)
        assert all(_uid_is_free(uid) for uid in uids_a), uids_a
        assert not any(_uid_is_free(uid) for uid in box_uids(b.proc.pid))
        c, c_settings = start_local_sandbox(tmp_path / "c", pool_size=1)
        more = [await open_sandbox(c_settings) for _ in range(2)]
        uids_c = box_uids(c.proc.pid)
        assert len(uids_c) >= 2 and not set(uids_c) & set(box_uids(b.proc.pid))
        for box in boxes[1::2] + more:
            await box.kill()
    finally:
        for server in (a, b, c):
            if server is not None:
                server.stop()
