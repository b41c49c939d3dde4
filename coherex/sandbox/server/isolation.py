"""How one sandbox is isolated on this machine: bubblewrap namespaces, cgroup limits, rlimits, uids,
and for boxes with network their own network namespace behind slirp4netns and an nftables filter.

Everything here runs on the host as the server's user (root in production, which is what gives
each box its own unprivileged host uid and cgroup limits; as a normal user it degrades to rlimits
and the user's own uid, and says so in `describe()`).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import json
import os
import select
import shutil
import signal
import site
import stat
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from coherex.sandbox.errors import SandboxUnavailable

HOME = "/home/user"
MPL_CACHE_IN_BOX = "/opt/coherex/mpl"
UID_BASE = 200_000  # host uids 200000.. are handed to boxes; none of them owns anything on the host
UID_COUNT = 50_000
# one lock file per uid, shared by every sandbox server on the host: a uid is a box's while its
# server holds the flock (the kernel drops it when that server dies, so a crash frees its uids)
UID_LOCK_DIR = Path("/run/coherex-sandbox-uids")
ETC_FILES = [
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/alternatives",
]


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 1 << 30
    pids: int = 128
    cpus: float = 1.0
    disk_bytes: int = 512 << 20  # per writable tmpfs (/tmp and the home dir) and per file
    root_bytes: int = 256 << 20  # the root file system (/, /root, /opt, ...): a tmpfs of this size


@dataclass(frozen=True)
class Interpreter:
    """The real Python (not a pyenv shim: that costs ~80 ms a start) and the dirs it needs."""

    executable: str
    roots: tuple[str, ...]  # directories bound read-only into the box
    site_dirs: tuple[str, ...]  # appended to sys.path inside (the box runs `python -I -S`)

    @classmethod
    def current(cls) -> Interpreter:
        exe = os.path.realpath(sys.executable)
        roots = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix)}
        sites = [os.path.realpath(p) for p in site.getsitepackages() if os.path.isdir(p)]
        roots.update(p for p in sites if not any(p.startswith(r + "/") for r in roots))
        return cls(exe, tuple(sorted(roots)), tuple(sites))


# --- cgroups --------------------------------------------------------------------------------------


class Cgroup:
    """Memory, pids and CPU limits for one box; v1 (one hierarchy per controller) or v2."""

    def __init__(self, dirs: dict[str, Path], version: int):
        self.dirs, self.version = dirs, version

    def add(self, pid: int) -> None:
        for d in self.dirs.values():
            (d / "cgroup.procs").write_text(str(pid))

    def oom_killed(self) -> bool:
        d = self.dirs.get("memory")
        # both files hold "key value" lines, among them `oom_kill N`
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            fields = dict(line.split() for line in (d / name).read_text().splitlines()) if d else {}
        except (OSError, ValueError):
            return False
        return int(fields.get("oom_kill", 0)) > 0

    def destroy(self) -> None:
        for _ in range(50):
            pids = set()
            for d in self.dirs.values():
                try:
                    pids.update(int(p) for p in (d / "cgroup.procs").read_text().split())
                except OSError:
                    pass
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for d in list(self.dirs.values()):
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    continue
            if all(not d.exists() for d in self.dirs.values()):
                return
            time.sleep(0.02)


class Cgroups:
    """Finds a usable cgroup hierarchy once; `create()` returns None where there is none."""

    V1_ROOT = Path("/sys/fs/cgroup")

    def __init__(self) -> None:
        self.version = 0
        self.parents: dict[str, Path] = {}
        v2 = self.V1_ROOT / "cgroup.controllers"
        v1 = {c: self.V1_ROOT / c for c in ("memory", "pids", "cpu")}
        if all((p / "cgroup.procs").exists() for p in v1.values()):
            self.version, candidates = 1, {c: p / "coherex" / f"srv-{os.getpid()}" for c, p in v1.items()}
        elif v2.exists() and {"memory", "pids", "cpu"} <= set(v2.read_text().split()):
            self.version, candidates = 2, {"unified": self.V1_ROOT / "coherex" / f"srv-{os.getpid()}"}
        else:
            return
        try:
            for _c, p in candidates.items():
                p.mkdir(parents=True, exist_ok=True)
                if self.version == 2:
                    for d in (p.parent.parent, p.parent, p):
                        (d / "cgroup.subtree_control").write_text("+memory +pids +cpu")
            self.parents = candidates
        except OSError:
            self.version, self.parents = 0, {}

    def remove_stale(self) -> None:
        """Boxes left behind by a server process that died: kill them and free their cgroups.
        (Each server process has its own parent cgroup `coherex/srv-<pid>`; live ones are kept.)"""
        for parent in self.parents.values():
            for srv in parent.parent.glob("srv-*"):
                if _pid_alive(int(srv.name[4:])):
                    continue
                for box in [d for d in srv.iterdir() if d.is_dir()]:
                    Cgroup({"any": box}, self.version).destroy()
                with contextlib.suppress(OSError):
                    srv.rmdir()

    def close(self) -> None:
        for parent in self.parents.values():
            with contextlib.suppress(OSError):
                parent.rmdir()  # only succeeds once every box is gone, which is the point

    def create(self, name: str, limits: Limits) -> Cgroup | None:
        if not self.parents:
            return None
        dirs = {c: p / name for c, p in self.parents.items()}
        for d in dirs.values():
            d.mkdir()
        period = 100_000
        if self.version == 1:
            (dirs["memory"] / "memory.limit_in_bytes").write_text(str(limits.memory_bytes))
            _try_write(dirs["memory"] / "memory.memsw.limit_in_bytes", limits.memory_bytes)
            (dirs["pids"] / "pids.max").write_text(str(limits.pids))
            (dirs["cpu"] / "cpu.cfs_period_us").write_text(str(period))
            (dirs["cpu"] / "cpu.cfs_quota_us").write_text(str(int(limits.cpus * period)))
        else:
            d = dirs["unified"]
            (d / "memory.max").write_text(str(limits.memory_bytes))
            _try_write(d / "memory.swap.max", 0)
            (d / "pids.max").write_text(str(limits.pids))
            (d / "cpu.max").write_text(f"{int(limits.cpus * period)} {period}")
            dirs = {"memory": d}  # one directory; keyed so that oom_killed() finds it
        return Cgroup(dirs, self.version)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _try_write(path: Path, value: int) -> None:
    try:
        path.write_text(str(value))
    except OSError:
        pass  # swap accounting is off on this kernel: there is no swap to limit


# --- the spawning thread's view of the file system ------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 0x20000, 0x1000, 0x2000, 0x4000, 0x40000
MNT_DETACH = 2
TUN = "/dev/net/tun"


def _check(ret: int) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: s.encode() if s is not None else None  # noqa: E731
    _check(_libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)))


def _private_ancestor(path: str) -> str | None:
    """The top-most ancestor that other users cannot traverse (like /root), if any."""
    parts = Path(path).parts
    for i in range(2, len(parts) + 1):
        p = str(Path(*parts[:i]))
        if not os.stat(p).st_mode & stat.S_IXOTH:
            return p
    return None


def prepare_spawner_view(paths: list[str]) -> None:
    """Make `paths` and the tun device usable by the unprivileged box uids, in the calling thread only.

    The interpreter may live under /root (pyenv), which box uids cannot traverse. Instead of
    changing host permissions, the spawning thread gets its own mount namespace in which such an
    ancestor is covered by a tmpfs holding only bind mounts of the needed paths, and in which
    /dev/net/tun (mode 0600 on some hosts) is a node slirp4netns, run as the box's uid, may open.
    bwrap and slirp4netns, started from this thread, inherit that view; the rest of the server and
    the host are unchanged. (Boxes get a /dev of their own without tun.)
    """
    hidden: dict[str, list[str]] = {}
    for p in paths:
        anc = _private_ancestor(p)
        if anc:
            hidden.setdefault(anc, []).append(p)
    tun_closed = os.path.exists(TUN) and os.stat(TUN).st_mode & 0o006 != 0o006
    if not hidden and not tun_closed:
        return
    _check(_libc.unshare(CLONE_NEWNS))
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    for anc, subs in hidden.items():
        staged = []
        for p in subs:
            stage = tempfile.mkdtemp(prefix="coherex-stage-")
            _mount(p, stage, None, MS_BIND | MS_REC)
            staged.append((stage, p))
        _mount("tmpfs", anc, "tmpfs", 0, "mode=755,size=1m")
        for stage, p in staged:
            os.makedirs(p, exist_ok=True)
            _mount(stage, p, None, MS_MOVE)
            os.rmdir(stage)
    if tun_closed:
        stage = tempfile.mkdtemp(prefix="coherex-tun-")
        _mount("tmpfs", stage, "tmpfs", 0, "mode=755,size=4k")
        node = os.path.join(stage, "tun")
        os.mknod(node, stat.S_IFCHR | 0o666, os.stat(TUN).st_rdev)
        os.chmod(node, 0o666)  # mknod applies the umask
        _mount(node, TUN, None, MS_BIND)
        _check(_libc.umount2(stage.encode(), MNT_DETACH))  # the bind keeps the node alive
        os.rmdir(stage)


# --- bubblewrap -----------------------------------------------------------------------------------


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if not path:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed; the local sandbox needs it to isolate code.",
            hint="install it with `apt-get install -y $(cat scripts/apt-packages.txt)`, "
            "or set E2B_API_KEY to use cloud sandboxes",
        )
    return path


_uid_lock = threading.Lock()
_uid_locks: dict[int, int] = {}  # uid -> fd of its lock file, held while the box lives


def allocate_uid() -> int | None:
    """A host uid no other live box on this host has, from any sandbox server (the lowest free
    one); None when not root (then the box runs as our uid)."""
    if os.geteuid() != 0:
        return None
    with _uid_lock:
        UID_LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
        for uid in range(UID_BASE, UID_BASE + UID_COUNT):
            if uid in _uid_locks:
                continue
            fd = os.open(UID_LOCK_DIR / f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another box (of this or another server) has it
                os.close(fd)
                continue
            _uid_locks[uid] = fd
            return uid
    raise SandboxUnavailable(f"all {UID_COUNT} sandbox uids of this host are in use")


def release_uid(uid: int | None) -> None:
    """Called once every process of the box is gone."""
    with _uid_lock:
        fd = _uid_locks.pop(uid, None) if uid is not None else None
    if fd is not None:
        os.close(fd)  # closing the last fd of the lock file releases the flock


def bwrap_argv(
    interp: Interpreter, limits: Limits, *, resolv_conf_fd: int | None, mpl_cache: Path | None, bootstrap: str
) -> list[str]:
    """Always its own network namespace (`--unshare-all`); a box with network gets slirp4netns
    attached to it from outside (`BoxNetwork`) and `resolv_conf_fd`, a resolv.conf to read."""
    argv = [
        bwrap_path(),
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--cap-drop",
        "ALL",
        "--uid",
        "1000",
        "--gid",
        "1000",
        "--hostname",
        "sandbox",
        # the root is a tmpfs of its own size, mounted first: everything below lands on it
        "--size",
        str(limits.root_bytes),
        "--tmpfs",
        "/",
        "--ro-bind",
        "/usr",
        "/usr",
        "--symlink",
        "usr/bin",
        "/bin",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--symlink",
        "usr/sbin",
        "/sbin",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(limits.disk_bytes),
        "--tmpfs",
        "/tmp",
        "--size",
        str(limits.disk_bytes),
        "--tmpfs",
        HOME,
    ]
    for path in ETC_FILES:
        if path == "/etc/resolv.conf" and resolv_conf_fd is not None:
            argv += ["--ro-bind-data", str(resolv_conf_fd), path]
        else:
            argv += ["--ro-bind-try", path, path]
    for root in interp.roots:
        argv += ["--ro-bind", root, root]
    if mpl_cache is not None:
        argv += ["--ro-bind", str(mpl_cache), MPL_CACHE_IN_BOX]
    bindir = os.path.dirname(interp.executable)
    env = {
        "HOME": HOME,
        "USER": "user",
        "LOGNAME": "user",
        "LANG": "C.UTF-8",
        "SHELL": "/bin/bash",
        "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": f"{HOME}/.config/matplotlib",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for k, v in env.items():
        argv += ["--setenv", k, v]
    # python -S skips site-packages scanning (fast start); the bootstrap adds them by hand
    boot = (
        f"import sys; sys.path.extend({list(interp.site_dirs)!r}); "
        f"import os; os.environ['PYTHONPATH'] = {':'.join(interp.site_dirs)!r}\n"
        f"{_MPL_COPY}\n{bootstrap}"
    )
    argv += ["--chdir", HOME, "--", interp.executable, "-I", "-S", "-c", boot]
    return argv


# copy the host-built font cache into the box so the first `import matplotlib` takes ms, not seconds
_MPL_COPY = f"""
try:
    _src, _dst = {MPL_CACHE_IN_BOX!r}, {HOME + "/.config/matplotlib"!r}
    import os as _os
    _os.makedirs(_dst, exist_ok=True)
    for _n in _os.listdir(_src):
        with open(_os.path.join(_src, _n), 'rb') as _f, open(_os.path.join(_dst, _n), 'wb') as _g:
            _g.write(_f.read())
except OSError:
    pass
"""


def prepare_mpl_cache(interp: Interpreter, cache_dir: Path) -> Path | None:
    """Build matplotlib's font cache once on the host (it takes seconds; boxes start empty)."""
    if any(cache_dir.glob("fontlist-*.json")):
        return cache_dir
    cache_dir.mkdir(parents=True, exist_ok=True)
    env = {"MPLCONFIGDIR": str(cache_dir), "MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"}
    try:
        subprocess.run(
            [interp.executable, "-c", "import matplotlib.font_manager"],
            env=env,
            capture_output=True,
            timeout=120,
            check=True,
        )
    except (subprocess.SubprocessError, OSError):
        return None  # matplotlib missing or broken: boxes still work, plotting is just slower
    cache_dir.chmod(0o755)
    for f in cache_dir.iterdir():
        f.chmod(0o644)
    return cache_dir


def rlimit_code(limits: Limits, *, cgroup: Cgroup | None, own_uid: bool) -> str:
    """Limits that hold even without cgroups, set by the box's bootstrap before any user code.

    (Root cannot prlimit() a process inside the box's user namespace, and lowering one's own
    limits is always allowed; every process in the box descends from the worker.)
    """
    lim = {"RLIMIT_FSIZE": limits.disk_bytes, "RLIMIT_CORE": 0}
    if own_uid:  # RLIMIT_NPROC counts per uid, so it only means something for a uid of its own
        lim["RLIMIT_NPROC"] = limits.pids
    if cgroup is None:
        # fallback: virtual memory is a blunt proxy for memory (breaks JVM/Go-style reservations)
        lim["RLIMIT_AS"] = limits.memory_bytes * 2
    return "import resource as _r\n" + "".join(f"_r.setrlimit(_r.{k}, ({v}, {v}))\n" for k, v in lim.items())


def read_info_fd(fd: int) -> dict:
    """bwrap writes one JSON object (`child-pid`) to --info-fd once the namespaces exist."""
    buf = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
        try:
            return json.loads(buf)
        except ValueError:
            continue
    raise SandboxUnavailable("the sandbox failed to start (bubblewrap gave no status)")


# --- network for boxes that may reach the internet ------------------------------------------------

NS_GET_USERNS = 0xB701  # ioctl on a namespace fd: the user namespace that owns it
SLIRP_DNS = "10.0.2.3"  # slirp4netns's DNS forwarder, the only 10.x address a box may reach
RESOLV_CONF = f"nameserver {SLIRP_DNS}\n"
NET_START_TIMEOUT_S = 10.0
# never reachable from a box: private, shared-NAT, link-local (cloud metadata), loopback off `lo`,
# "this network", multicast and reserved; the host's own addresses are added per box
BLOCKED_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "224.0.0.0/3",
        "::/127",
        "::ffff:0:0/96",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
]


def _tool(name: str) -> str | None:
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin:/usr/bin")


def host_addresses() -> list[str]:
    """Every address of the host's own interfaces (a box must not reach services listening there)."""
    out = subprocess.run(
        [_tool("ip") or "ip", "-j", "addr", "show"], capture_output=True, text=True, timeout=10, check=True
    ).stdout
    return [a["local"] for link in json.loads(out) for a in link.get("addr_info", []) if a.get("local")]


def nft_rules(host_addrs: list[str]) -> str:
    """The box's output filter, loaded into its network namespace by root before its code starts
    (the box has no CAP_NET_ADMIN there, so it cannot change it)."""
    nets = BLOCKED_NETS + [ipaddress.ip_network(a) for a in host_addrs]
    v4 = ", ".join(map(str, ipaddress.collapse_addresses(n for n in nets if n.version == 4)))
    v6 = ", ".join(map(str, ipaddress.collapse_addresses(n for n in nets if n.version == 6)))
    return f"""table inet coherex_box {{
  chain output {{
    type filter hook output priority 0; policy accept;
    oifname "lo" accept
    ip daddr {SLIRP_DNS} meta l4proto {{ tcp, udp }} th dport 53 accept
    ip daddr {{ {v4} }} reject with icmpx admin-prohibited
    ip6 daddr {{ {v6} }} reject with icmpx admin-prohibited
  }}
}}
"""


class BoxNetwork:
    """slirp4netns for one box: a user-mode TCP/IP stack that connects the box's own network
    namespace to the internet through the host's sockets, with the host's loopback disabled.

    It runs as the box's uid (not root), in the box's cgroup, and exits with the box, or when the
    server dies (its --exit-fd pipe closes).
    """

    def __init__(self, proc: subprocess.Popen, exit_w: int):
        self.proc, self._exit_w = proc, exit_w

    @classmethod
    def start(cls, box_pid: int, uid: int | None) -> BoxNetwork:
        """Attach a network to the (still blocked) box whose namespaces `box_pid` is in."""
        slirp, nft, nsenter = _tool("slirp4netns"), _tool("nft"), _tool("nsenter")
        if uid is None:
            raise SandboxUnavailable(
                "a sandbox with network needs the sandbox server to run as root "
                "(it gives each such box a network namespace of its own)"
            )
        if not (slirp and nft and nsenter):
            raise SandboxUnavailable(
                "a sandbox with network needs slirp4netns, nftables and nsenter on this host",
                hint="install them with `apt-get install -y $(cat scripts/apt-packages.txt)`",
            )
        rules = nft_rules(host_addresses())
        netns = os.open(f"/proc/{box_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        fds: list[int] = [netns]
        proc = None
        try:
            # the namespace belongs to bwrap's outer user namespace, which the box's uid owns:
            # slirp4netns joins that one to create its tap device, with no privilege on the host
            userns = fcntl.ioctl(netns, NS_GET_USERNS)
            fds.append(userns)
            ready_r, ready_w = os.pipe()
            exit_r, exit_w = os.pipe()
            fds += [ready_r, ready_w, exit_r, exit_w]
            with tempfile.TemporaryFile() as log:
                proc = subprocess.Popen(
                    [
                        slirp,
                        "--configure",
                        "--mtu=65520",
                        "--disable-host-loopback",
                        "--enable-seccomp",
                        f"--ready-fd={ready_w}",
                        f"--exit-fd={exit_r}",
                        f"--userns-path=/proc/self/fd/{userns}",
                        "--netns-type=path",
                        f"/proc/self/fd/{netns}",
                        "tap0",
                    ],
                    pass_fds=(netns, userns, ready_w, exit_r),
                    user=uid,
                    group=uid,
                    extra_groups=[],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    env={},
                    cwd="/",
                )
                # the filter goes in while slirp4netns starts; both are done before the box is let go
                loaded = subprocess.run(
                    [nsenter, f"--net=/proc/{box_pid}/ns/net", nft, "-f", "-"],
                    input=rules,
                    capture_output=True,
                    text=True,
                    timeout=NET_START_TIMEOUT_S,
                )
                if loaded.returncode != 0:
                    raise SandboxUnavailable(
                        f"could not load the sandbox's network filter: {loaded.stderr.strip()}"
                    )
                os.close(ready_w)
                fds.remove(ready_w)
                ready, _, _ = select.select([ready_r], [], [], NET_START_TIMEOUT_S)
                if not ready or os.read(ready_r, 1) != b"1":
                    log.seek(0)
                    raise SandboxUnavailable(
                        "the sandbox's network (slirp4netns) did not start: "
                        + log.read().decode(errors="replace").strip()[-500:]
                    )
            fds.remove(exit_w)  # the box's now: closing it tells slirp4netns to exit
            return cls(proc, exit_w)
        except BaseException:
            if proc is not None:
                proc.kill()
                proc.wait()
            raise
        finally:
            for fd in fds:
                os.close(fd)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        """Idempotent; SIGKILL and reap (it may not be able to run its exit-fd handler)."""
        if self._exit_w >= 0:
            os.close(self._exit_w)
            self._exit_w = -1
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
