"""The process that runs INSIDE a sandbox: a stateful Python namespace plus a tiny envd.

Standard library only (it starts before any user package is imported). The server passes this
file's source with `python -I -S -c`, so nothing of the project tree is visible in the box.

Protocol: JSON lines. Requests arrive on the original stdin (moved to fd 3), answers leave on the
original stdout (moved to fd 4). fds 0/1/2 are then re-pointed at /dev/null and at pipes this
process reads itself, so output of `os.system`, subprocesses and C code is captured too.
Every message carries `ch`, the channel (request id) it belongs to.
"""

# Only cheap imports at start-up: a cold sandbox start pays for each one (ast, base64, subprocess
# and traceback cost ~40 ms together here); the rest is imported when first needed.
import _ast
import binascii
import builtins
import io
import json
import os
import select
import signal
import stat
import sys
import threading
import time

_ctl_in = os.fdopen(os.dup(0), "rb", buffering=0)
_ctl_out_fd = os.dup(1)
_send_lock = threading.Lock()


def b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode()


def send(msg: dict) -> None:
    data = (json.dumps(msg, default=str) + "\n").encode()
    with _send_lock:
        view = memoryview(data)
        while view:
            view = view[os.write(_ctl_out_fd, view):]


# --- output capture -----------------------------------------------------------------------------

_exec_ch = None  # channel of the running cell; output outside a cell is dropped


class _FdPump:
    """Reads one of our own fds (1 or 2) and forwards what arrives to the running cell."""

    def __init__(self, fd: int, name: str):
        r, w = os.pipe()
        os.dup2(w, fd)
        os.close(w)
        os.set_blocking(r, False)
        self.r, self.name, self.lock = r, name, threading.Lock()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            select.select([self.r], [], [])
            self.drain()

    def drain(self) -> None:
        # The lock makes `drain()` from the main thread at the end of a cell see all output written
        # before it, in order, even if the pump thread is between select and read.
        with self.lock:
            while True:
                try:
                    chunk = os.read(self.r, 65536)
                except BlockingIOError:
                    return
                if not chunk:
                    return
                if _exec_ch is not None:
                    send({"ch": _exec_ch, "type": self.name, "text": chunk.decode(errors="replace"),
                          "timestamp": time.time_ns() // 1000})


devnull = os.open(os.devnull, os.O_RDONLY)
os.dup2(devnull, 0)
_pumps = [_FdPump(1, "stdout"), _FdPump(2, "stderr")]
# Line buffering: each printed line leaves the box as soon as it is complete.
sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), line_buffering=True)
sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", buffering=0), line_buffering=True)


# --- rich display -----------------------------------------------------------------------------


def _format(obj) -> dict:
    """Turn a value into E2B-style result formats: text always, richer ones when known."""
    out: dict = {"text": repr(obj)}
    mod = type(obj).__module__ or ""
    try:
        if mod.startswith("pandas") and hasattr(obj, "to_dict") and hasattr(obj, "columns"):
            frame = obj.head(1000)
            out["html"] = frame.to_html()
            split = json.loads(frame.to_json(orient="split", date_format="iso", default_handler=str))
            out["data"] = {"columns": split["columns"], "rows": split["data"], "total_rows": len(obj)}
            if _named_index(frame):
                out["data"]["index"] = split["index"]
        elif mod.startswith("plotly") and hasattr(obj, "to_plotly_json"):
            out["json"] = json.loads(obj.to_json())
            out["extra"] = {"mime": "application/vnd.plotly.v1+json"}
        elif mod.startswith("matplotlib") and hasattr(obj, "savefig"):
            out["png"] = _png(obj)
        else:
            for meth, key in (("_repr_html_", "html"), ("_repr_markdown_", "markdown"),
                              ("_repr_svg_", "svg"), ("_repr_json_", "json")):
                fn = getattr(obj, meth, None)
                if callable(fn):
                    value = fn()
                    if value is not None:
                        out[key] = value
    except Exception as exc:  # a broken repr must not lose the cell's result
        out["extra"] = {"format_error": f"{type(exc).__name__}: {exc}"}
    return out


def _named_index(frame) -> bool:
    return not (frame.index.name is None and type(frame.index).__name__ == "RangeIndex")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return b64(buf.getvalue())


def display(obj) -> None:
    """Show a value as a rich result, as in Jupyter."""
    if _exec_ch is not None:
        send({"ch": _exec_ch, "type": "result", "is_main_result": False, **_format(obj)})


def _flush_figures() -> None:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    for num in plt.get_fignums():
        display(plt.figure(num))
    plt.close("all")


# --- code execution (main thread) -------------------------------------------------------------

namespace: dict = {"__name__": "__main__", "__builtins__": builtins, "display": display}
_execution_count = 0


def run_cell(ch: str, code: str, env_vars: dict | None) -> None:
    global _exec_ch, _execution_count
    _exec_ch = ch
    _execution_count += 1
    send({"ch": ch, "type": "number_of_executions", "execution_count": _execution_count})
    saved_env = dict(os.environ)
    os.environ.update(env_vars or {})
    value = None
    try:
        tree = compile(code, "<cell>", "exec", _ast.PyCF_ONLY_AST)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], _ast.Expr) else None
        exec(compile(tree, "<cell>", "exec"), namespace)
        if last is not None:
            value = eval(compile(_ast.Expression(last.value), "<cell>", "eval"), namespace)
    except BaseException as exc:  # KeyboardInterrupt (timeout) and SystemExit are data too
        import traceback

        # skip our own frame: the user sees their cell only
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__.tb_next)
        sys.stdout.flush()
        sys.stderr.flush()
        send({"ch": ch, "type": "error", "name": type(exc).__name__, "value": str(exc),
              "traceback": "".join(tb)})
    else:
        try:
            _flush_figures()
            if value is not None and not _is_figure_shown(value):
                send({"ch": ch, "type": "result", "is_main_result": True, **_format(value)})
        except Exception as exc:
            send({"ch": ch, "type": "error", "name": type(exc).__name__, "value": str(exc), "traceback": ""})
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.stdout.flush()
        sys.stderr.flush()
        for pump in _pumps:
            pump.drain()
        _exec_ch = None
        send({"ch": ch, "type": "end"})


def _is_figure_shown(value) -> bool:
    # `plt.plot(...)` returns artists; their figure was already sent by _flush_figures
    mod = type(value).__module__ or ""
    return mod.startswith("matplotlib") or (
        isinstance(value, list) and value and (type(value[0]).__module__ or "").startswith("matplotlib"))


# --- processes and files (control thread) -------------------------------------------------------

_procs: dict = {}  # pid -> subprocess.Popen


def proc_start(ch: str, req: dict) -> None:
    import subprocess

    env = dict(os.environ)
    env.update(req.get("envs") or {})
    try:
        p = subprocess.Popen([req["cmd"], *req.get("args", [])], cwd=req.get("cwd") or None, env=env,
                             stdin=subprocess.PIPE if req.get("stdin") else subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        send({"ch": ch, "type": "fail", "error": str(exc)})
        return
    _procs[p.pid] = p
    send({"ch": ch, "type": "start", "pid": p.pid})

    def pump(stream, name):
        for chunk in iter(lambda: stream.read1(65536), b""):
            send({"ch": ch, "type": name, "data": b64(chunk)})

    threads = [threading.Thread(target=pump, args=(p.stdout, "stdout"), daemon=True),
               threading.Thread(target=pump, args=(p.stderr, "stderr"), daemon=True)]
    for t in threads:
        t.start()

    def reap():
        for t in threads:
            t.join()
        code = p.wait()
        _procs.pop(p.pid, None)
        status = f"signal: {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        send({"ch": ch, "type": "end", "exit_code": code if code >= 0 else 128 - code, "status": status})

    threading.Thread(target=reap, daemon=True).start()


def _entry(path: str) -> dict:
    st = os.lstat(path)
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode) else "file"
    return {"name": os.path.basename(path) or path, "path": path, "type": kind, "size": st.st_size,
            "mode": stat.S_IMODE(st.st_mode), "permissions": stat.filemode(st.st_mode)[1:],
            "modified": st.st_mtime,
            "symlink_target": os.readlink(path) if kind == "symlink" else None}


def _resolve(path: str) -> str:
    return os.path.normpath(os.path.join(os.environ.get("HOME", "/"), os.path.expanduser(path)))


def handle(req: dict) -> None:
    ch, op = req["ch"], req["op"]
    try:
        if op == "proc_start":
            proc_start(ch, req)
            return
        if op == "interrupt":
            os.kill(os.getpid(), signal.SIGINT)
            result = {}
        elif op == "proc_signal":
            p = _procs.get(req["pid"])
            if p is None:
                raise ProcessLookupError(f"process {req['pid']} not found")
            os.killpg(p.pid, req["signal"])
            result = {}
        elif op == "proc_input":
            p = _procs[req["pid"]]
            p.stdin.write(binascii.a2b_base64(req["data"]))
            p.stdin.flush()
            result = {}
        elif op == "proc_close_stdin":
            _procs[req["pid"]].stdin.close()
            result = {}
        elif op == "proc_list":
            result = {"procs": [{"pid": pid, "cmd": p.args[0], "args": p.args[1:]} for pid, p in _procs.items()]}
        elif op == "write":
            path = _resolve(req["path"])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(binascii.a2b_base64(req["data"]))
            result = {"entry": _entry(path)}
        elif op == "read":
            with open(_resolve(req["path"]), "rb") as f:
                result = {"data": b64(f.read())}
        elif op == "list":
            path = _resolve(req["path"])
            result = {"entries": [_entry(os.path.join(path, n)) for n in sorted(os.listdir(path))]}
        elif op == "stat":
            result = {"entry": _entry(_resolve(req["path"]))}
        elif op == "mkdir":
            os.makedirs(_resolve(req["path"]), exist_ok=True)
            result = {"entry": _entry(_resolve(req["path"]))}
        elif op == "remove":
            path = _resolve(req["path"])
            if os.path.isdir(path) and not os.path.islink(path):
                import shutil

                shutil.rmtree(path)
            else:
                os.remove(path)
            result = {}
        elif op == "env":
            os.environ.update(req["envs"])
            result = {}
        else:
            raise ValueError(f"unknown operation {op!r}")
        send({"ch": ch, "type": "ok", **result})
    except Exception as exc:
        kind = "not_found" if isinstance(exc, (FileNotFoundError, KeyError, ProcessLookupError)) else "error"
        send({"ch": ch, "type": "fail", "kind": kind, "error": f"{type(exc).__name__}: {exc}"})


_cells: list = []
_cell_ready = threading.Condition()


def control_loop() -> None:
    for line in _ctl_in:
        req = json.loads(line)
        if req["op"] == "execute":
            with _cell_ready:
                _cells.append(req)
                _cell_ready.notify()
        else:
            threading.Thread(target=handle, args=(req,), daemon=True).start()
    os._exit(0)  # the server closed the channel: the box is over


def main() -> None:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # matplotlib: no display here; its font cache was prepared on the host (see isolation.py)
    os.environ.setdefault("MPLBACKEND", "Agg")
    threading.Thread(target=control_loop, daemon=True).start()
    send({"ch": "", "type": "ready", "pid": os.getpid()})
    while True:
        with _cell_ready:
            while not _cells:
                _cell_ready.wait()
            req = _cells.pop(0)
        try:
            run_cell(req["ch"], req["code"], req.get("env_vars"))
        except KeyboardInterrupt:  # an interrupt that arrived between cells
            pass


main()
