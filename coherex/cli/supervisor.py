"""Run several processes as one (for `coherex up`): prefixed logs, all stopped together."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

_COLOURS = itertools.cycle(["36", "35", "33", "32", "34"])


@dataclass
class Supervisor:
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    #: variables every process gets on top of this one's environment
    env: dict[str, str] = field(default_factory=dict)

    def add(
        self, name: str, cmd: list[str], cwd: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env={**os.environ, **self.env, **(env or {}), "PYTHONUNBUFFERED": "1"},
            cwd=cwd,
            start_new_session=True,
        )
        self.procs[name] = proc
        colour = next(_COLOURS)
        prefix = f"\033[{colour}m{name:<9}|\033[0m " if sys.stdout.isatty() else f"{name:<9}| "
        threading.Thread(target=self._pump, args=(proc, prefix), daemon=True).start()

    def _pump(self, proc: subprocess.Popen, prefix: str) -> None:
        for line in proc.stdout:
            with self._lock:
                sys.stdout.write(prefix + line)
                sys.stdout.flush()

    def run(self) -> int:
        """Wait until Ctrl-C/SIGTERM or until one process exits; then stop the rest. Returns an exit code."""
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        code = 0
        while not stop.is_set():
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping everything", flush=True)
                    code = proc.returncode or 1
                    stop.set()
                    break
            stop.wait(0.5)
        self.stop()
        return code

    def stop(self, grace: float = 10) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
