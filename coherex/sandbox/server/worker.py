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
            view = view[os.write(_ctl_out_fd, view) :]


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
                    send(
                        {
                            "ch": _exec_ch,
                            "type": self.name,
                            "text": chunk.decode(errors="replace"),
                            "timestamp": time.time_ns() // 1000,
                        }
                    )


devnull = os.open(os.devnull, os.O_RDONLY)
os.dup2(devnull, 0)
_pumps = [_FdPump(1, "stdout"), _FdPump(2, "stderr")]
# Line buffering: each printed line leaves the box as soon as it is complete.
sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), line_buffering=True)
sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", buffering=0), line_buffering=True)


# --- rich display -----------------------------------------------------------------------------

# MIME type -> key of an E2B result
_MIME_KEYS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
}
_REPR_KEYS = (
    ("_repr_html_", "html"),
    ("_repr_markdown_", "markdown"),
    ("_repr_svg_", "svg"),
    ("_repr_png_", "png"),
    ("_repr_jpeg_", "jpeg"),
    ("_repr_pdf_", "pdf"),
    ("_repr_latex_", "latex"),
    ("_repr_json_", "json"),
    ("_repr_javascript_", "javascript"),
)


def _bundle(bundle: dict) -> dict:
    out: dict = {}
    for mime, value in bundle.items():
        key = _MIME_KEYS.get(mime)
        if key is None:
            out.setdefault("extra", {})[mime] = value
            continue
        if isinstance(value, bytes):
            value = b64(value) if key in ("png", "jpeg", "pdf") else value.decode(errors="replace")
        out[key] = value
    return out


def _format(obj) -> dict:
    """Turn a value into E2B-style result formats: text/plain as Jupyter shows it (a str as itself,
    as E2B's kernel does), richer ones when known."""
    out: dict = {"text": obj if isinstance(obj, str) else repr(obj)}
    mod = type(obj).__module__ or ""
    try:
        if mod.startswith("pandas") and hasattr(obj, "to_dict") and hasattr(obj, "columns"):
            out["html"] = obj.head(1000).to_html()
            # as E2B's template formats a DataFrame (its e2b/data formatter): {column: [values]}
            out["data"] = json.loads(
                json.dumps(
                    {
                        str(k): [v.isoformat() if hasattr(v, "isoformat") else v for v in col]
                        for k, col in obj.to_dict(orient="list").items()
                    },
                    default=str,
                )
            )
        elif mod.startswith("plotly") and hasattr(obj, "to_plotly_json"):
            out["json"] = json.loads(obj.to_json())
            out["extra"] = {"mime": "application/vnd.plotly.v1+json"}
        elif mod.startswith("matplotlib") and hasattr(obj, "savefig"):
            out["png"] = _png(obj)
            chart = _chart(obj)
            if chart:
                out["chart"] = chart
        else:
            fn = getattr(obj, "_repr_mimebundle_", None)
            if callable(fn):
                data = fn()
                out.update(_bundle(data[0] if isinstance(data, tuple) else data or {}))
            for meth, key in _REPR_KEYS:
                fn = getattr(obj, meth, None)
                if key not in out and callable(fn) and not isinstance(obj, type):
                    value = fn()
                    if isinstance(value, tuple):  # (data, metadata)
                        value = value[0]
                    if value is not None:
                        out.update(_bundle({next(m for m, k in _MIME_KEYS.items() if k == key): value}))
    except Exception as exc:  # a broken repr must not lose the cell's result
        out["extra"] = {"format_error": f"{type(exc).__name__}: {exc}"}
    return out


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return b64(buf.getvalue())


def display(*objs, raw: bool = False, **_ignored) -> None:
    """Show values as rich results, as Jupyter's display() does (`raw=True`: MIME bundles)."""
    if _exec_ch is None:
        return
    for obj in objs:
        data = _bundle(obj) if raw and isinstance(obj, dict) else _format(obj)
        send({"ch": _exec_ch, "type": "result", "is_main_result": False, **data})


def _flush_figures() -> None:
    """What Jupyter's inline backend does at plt.show() and at the end of a cell."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    for num in plt.get_fignums():
        display(plt.figure(num))
    plt.close("all")


def _pil_show(image, *args, **kwargs) -> bool:
    display(image)
    return True


def _hook_pil_save(module) -> None:
    """E2B's template shows an image saved to a file name (its startup script 0003_images.py)."""
    original = module.Image.save

    def save(image, fp, format=None, **params):
        if isinstance(fp, str):
            display(image)
        return original(image, fp, format, **params)

    module.Image.save = save


# Hooks installed when the user's code first imports these modules: display() of IPython shows
# here, plt.show() and PIL's Image.show() produce results instead of opening windows, and
# Image.save() shows the image too, as in E2B's template.
_HOOKS = {
    "PIL.Image": _hook_pil_save,
    "IPython.core.display_functions": lambda m: setattr(m, "display", display),
    "IPython.display": lambda m: setattr(m, "display", display),
    "matplotlib.pyplot": lambda m: setattr(m, "show", lambda *a, **k: _flush_figures()),
    "PIL.ImageShow": lambda m: setattr(m, "show", _pil_show),
}


class _HookFinder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name not in _HOOKS:
            return None
        sys.meta_path.remove(_HookFinder)
        try:
            import importlib.util

            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, _HookFinder)
        if spec is None or spec.loader is None:
            return spec
        loader, hook = spec.loader, _HOOKS[name]

        class _Loader:
            create_module = staticmethod(loader.create_module)

            @staticmethod
            def exec_module(module):
                loader.exec_module(module)
                hook(module)

        spec.loader = _Loader()
        return spec


sys.meta_path.insert(0, _HookFinder)


# --- charts: matplotlib figures as data, in E2B's chart format ----------------------------------


def _round(x) -> float:
    # "90 %" of a pie is 324 degrees, not 323.99999999999994
    return float(round(float(x), 10))


def _axis_info(ax) -> dict:
    import re

    info: dict = {}
    for axis in ("x", "y"):
        label = getattr(ax, f"get_{axis}label")() or None
        unit = None
        if label:
            m = re.search(r"\s\((.*?)\)|\[(.*?)\]", label)
            unit = m and (m.group(1) or m.group(2))
        info[f"{axis}_label"], info[f"{axis}_unit"] = label, unit
    return info


def _swap_axes(info: dict) -> None:
    for a, b in (("x_label", "y_label"), ("x_unit", "y_unit")):
        info[a], info[b] = info[b], info[a]


def _ticks(ax, axis: str) -> dict:
    import matplotlib.dates as mdates

    ticks = list(getattr(ax, f"get_{axis}ticks")())
    labels = [t.get_text() for t in getattr(ax, f"get_{axis}ticklabels")()]
    converter = (
        getattr(ax, f"{axis}axis").get_converter()
        if hasattr(ax.xaxis, "get_converter")
        else getattr(ax, f"{axis}axis").converter
    )
    scale = getattr(ax, f"get_{axis}scale")()
    if converter is not None and "Date" in type(converter).__name__:
        values, scale = [mdates.num2date(t).isoformat() for t in ticks], "datetime"
    else:
        values = [float(t) for t in ticks]
        if (
            scale == "linear"
            and labels
            and all(t == i and str(i) != lab for i, (t, lab) in enumerate(zip(values, labels, strict=False)))
        ):
            scale = "categorical"
    return {f"{axis}_ticks": values, f"{axis}_tick_labels": labels, f"{axis}_scale": scale}


def _point(v):
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if type(v).__name__ == "datetime64":
        return str(v.astype("datetime64[s]"))
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def _is_grid_line(line) -> bool:
    x, y = line.get_xdata(), line.get_ydata()
    return len(x) == 2 and len(y) == 2 and (x[0] == x[1] or y[0] == y[1]) and line.get_label().startswith("_")


def _chart_of_ax(ax) -> dict:
    from matplotlib.collections import PathCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import PathPatch, Rectangle, Wedge
    from matplotlib.text import Text

    title = ax.get_title() or None
    objs = [o for o in getattr(ax, "_children", ax.get_children()) if not isinstance(o, Text)]
    rest = [o for o in objs if not (isinstance(o, Line2D) and _is_grid_line(o))]
    chart: dict = {"title": title, "elements": []}
    if objs and all(isinstance(o, Line2D) for o in objs):
        chart.update(type="line", **_axis_info(ax), **_ticks(ax, "x"), **_ticks(ax, "y"))
        for n, line in enumerate(ln for ln in ax.get_lines() if not _is_grid_line(ln)):
            label = line.get_label()
            label = f"Line {n}" if label.startswith("_") else label
            chart["elements"].append(
                {
                    "label": label,
                    "points": [
                        [_point(x), _point(y)]
                        for x, y in zip(line.get_xdata(), line.get_ydata(), strict=False)
                    ],
                }
            )
    elif objs and all(isinstance(o, (PathPatch, Line2D)) for o in objs):
        chart.update(type="box_and_whisker", **_axis_info(ax))
        chart["elements"] = _boxes(ax, chart)
    elif rest and all(isinstance(o, PathCollection) for o in rest):
        chart.update(type="scatter", **_axis_info(ax), **_ticks(ax, "x"), **_ticks(ax, "y"))
        for c in ax.collections:
            chart["elements"].append(
                {"label": c.get_label(), "points": [[_point(x), _point(y)] for x, y in c.get_offsets()]}
            )
    elif rest and all(isinstance(o, Wedge) for o in rest):
        chart["type"] = "pie"
        chart["elements"] = [
            {"label": w.get_label(), "angle": abs(_round(w.theta2 - w.theta1)), "radius": _round(w.r)}
            for w in ax.patches
        ]
    elif rest and all(isinstance(o, Rectangle) for o in rest):
        chart.update(type="bar", **_axis_info(ax))
        for n, container in enumerate(ax.containers):
            group = container.get_label()
            group = f"Group {n}" if not group or group.startswith("_") else group
            heights = [r.get_height() for r in container]
            if len(heights) > 1 and all(h == heights[0] for h in heights):  # horizontal bars
                _swap_axes(chart)
                labels, values = (
                    [t.get_text() for t in ax.get_yticklabels()],
                    [r.get_width() for r in container],
                )
            else:
                labels, values = [t.get_text() for t in ax.get_xticklabels()], heights
            chart["elements"] += [
                {"label": lab, "group": group, "value": _round(v)}
                for lab, v in zip(labels, values, strict=False)
            ]
    else:
        chart["type"] = "unknown"
    return chart


def _boxes(ax, chart: dict) -> list:
    # whiskers run along the value axis, caps and medians across it: more horizontal than vertical
    # two-point lines means upright boxes (the usual plt.boxplot)
    flat = [ln for ln in ax.lines if len(ln.get_xdata()) == 2]
    across = sum(ln.get_ydata()[0] == ln.get_ydata()[1] for ln in flat)
    upright = across >= len(flat) - across
    if not upright:
        _swap_axes(chart)
    labels = [t.get_text() for t in (ax.get_xticklabels() if upright else ax.get_yticklabels())]
    boxes = []
    for label, patch in zip(labels, ax.patches, strict=False):
        v = patch.get_path().vertices
        pos, val = (v[:, 0], v[:, 1]) if upright else (v[:, 1], v[:, 0])
        boxes.append(
            {
                "label": label,
                "lo": _round(min(pos)),
                "hi": _round(max(pos)),
                "q1": _round(min(val)),
                "q3": _round(max(val)),
                "outliers": [],
            }
        )
    for line in ax.lines:
        pos, val = (line.get_xdata(), line.get_ydata()) if upright else (line.get_ydata(), line.get_xdata())
        pos, val = [_round(p) for p in pos], [_round(x) for x in val]
        box = next((b for b in boxes if pos and b["lo"] <= min(pos) and max(pos) <= b["hi"]), None)
        if box is None or not val:
            continue
        if line.get_linestyle() in ("None", "") or len(val) == 1:
            box["outliers"] += val  # fliers
        elif len(val) == 2 and val[0] == val[1]:
            if box["q1"] < val[0] < box["q3"] or "median" not in box and box["q1"] <= val[0] <= box["q3"]:
                box["median"] = val[0]
        elif len(val) == 2:
            lo, hi = min(val), max(val)
            if hi <= box["q1"]:
                box["min"] = lo
            elif lo >= box["q3"]:
                box["max"] = hi
    return [
        {
            "label": b["label"],
            "min": b.get("min", b["q1"]),
            "first_quartile": b["q1"],
            "median": b.get("median", b["q1"]),
            "third_quartile": b["q3"],
            "max": b.get("max", b["q3"]),
            "outliers": b["outliers"],
        }
        for b in boxes
    ]


def _chart(fig) -> dict | None:
    try:
        axes = fig.get_axes()
        if not axes:
            return None
        if len(axes) == 1:
            return _chart_of_ax(axes[0])
        sup = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else None
        return {"type": "superchart", "title": sup or None, "elements": [_chart_of_ax(a) for a in axes]}
    except Exception:  # an unusual figure still comes back as an image
        return None


# --- code execution (main thread) -------------------------------------------------------------

HOME = os.environ.get("HOME", "/home/user")


class Context:
    """One code context: its language, its working directory and its state (a Python namespace,
    or the Node process that holds a JavaScript one)."""

    def __init__(self, language: str, cwd: str):
        self.language, self.cwd = language, cwd
        self.namespace: dict = {}
        self.node = None
        self.reset()

    def reset(self) -> None:
        self.namespace = {"__name__": "__main__", "__builtins__": builtins, "display": display}
        if self.node is not None:
            try:
                os.killpg(self.node.pid, signal.SIGKILL)  # with what it started
            except OSError:
                self.node.kill()
            self.node.wait()
            self.node_out.close()
            self.node = None


_contexts: dict = {"default": Context("python", HOME)}
_base_env: dict = {}  # the environment without the running cell's own env vars (for REPLs it starts)
_execution_count = 0


def context_op(req: dict) -> dict:
    """Create, restart or remove a context (the server keeps their list and checks ids)."""
    if req["op"] == "ctx_create":
        _contexts[req["id"]] = Context(req["language"], req["cwd"])
    elif req["op"] == "ctx_restart":
        _contexts[req["id"]].reset()
    else:
        ctx = _contexts.pop(req["id"])
        ctx.reset()
    return {}


def _shell(cmd: str) -> None:
    """`!cmd` in a Python cell: the shell's output is the cell's output."""
    import subprocess

    sys.stdout.flush()
    subprocess.run(["/bin/bash", "-c", cmd])


def _magic(line: str) -> None:
    """The few IPython line magics that make sense here."""
    name, _, arg = line.partition(" ")
    arg = arg.strip()
    if name in ("cd", "pwd"):
        if name == "cd":
            os.chdir(os.path.expanduser(arg or "~"))
        print(os.getcwd())
    elif name == "env":
        key, sep, value = arg.replace("=", " ", 1).partition(" ")
        if sep:
            os.environ[key] = value.strip()
        elif key:
            print(os.environ.get(key, ""))
        else:
            print("\n".join(f"{k}={v}" for k, v in sorted(os.environ.items())))
    elif name in ("pip", "conda"):
        _shell(f"{sys.executable} -m pip {arg}")
    elif name in ("time", "timeit"):
        start = time.perf_counter()
        exec(compile(arg, "<cell>", "exec"), _running.namespace)
        print(f"Wall time: {(time.perf_counter() - start) * 1000:.2f} ms")
    elif name in ("matplotlib", "load_ext", "config"):
        pass  # figures always come back inline
    else:
        raise NameError(
            f"UsageError: Line magic function `%{name}` not found (the local sandbox knows "
            "%cd %pwd %env %pip %time %timeit %matplotlib)."
        )


def _transform(code: str) -> str:
    """Jupyter's cell handling: an indented cell is dedented; `!cmd` lines run in a shell and
    `%magic` lines are magics (`%%bash` makes the whole cell a shell script)."""
    if code[:1].isspace() or code.lstrip("\n")[:1].isspace():
        import textwrap

        code = textwrap.dedent(code).strip("\n")
    if code.startswith("%%"):
        head, _, body = code.partition("\n")
        cell_magic = head[2:].split()[0] if head[2:].split() else ""
        if cell_magic in ("bash", "sh", "script"):
            return f"_cx_shell({body!r})"
        if cell_magic in ("time", "timeit", "capture"):
            return body
        raise SyntaxError(f"UsageError: Cell magic `%%{cell_magic}` not found.")
    if "!" not in code and "%" not in code:
        return code
    try:
        compile(code, "<cell>", "exec", _ast.PyCF_ONLY_AST)
        return code
    except SyntaxError:
        pass
    lines = code.split("\n")
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith("!"):
            lines[i] = f"{indent}_cx_shell({stripped[1:]!r})"
        elif stripped.startswith("%") and not stripped.startswith("%%"):
            lines[i] = f"{indent}_cx_magic({stripped[1:]!r})"
    return "\n".join(lines)


_running = _contexts["default"]


def _run_python(ctx: Context, code: str):
    """Runs a cell in the context's namespace; the value of a last expression is the result."""
    global _running
    _running = ctx
    ctx.namespace.setdefault("_cx_shell", _shell)
    ctx.namespace.setdefault("_cx_magic", _magic)
    tree = compile(_transform(code), "<cell>", "exec", _ast.PyCF_ONLY_AST)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], _ast.Expr) else None
    exec(compile(tree, "<cell>", "exec"), ctx.namespace)
    if last is not None:
        return eval(compile(_ast.Expression(last.value), "<cell>", "eval"), ctx.namespace)
    return None


def _run_bash(ctx: Context, code: str, env_vars: dict | None):
    """A bash context is one bash process, as E2B's bash kernel: variables and `cd` last. Each cell
    ends by writing its status to a pipe of ours; per-call env vars are restored after it."""
    import shlex
    import subprocess

    if ctx.node is None or ctx.node.poll() is not None:
        r, w = os.pipe()
        ctx.node = subprocess.Popen(
            ["/bin/bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            cwd=ctx.cwd,
            pass_fds=(w,),
            start_new_session=True,
            env=_base_env,
        )
        os.close(w)
        ctx.node_out, ctx.status_fd = os.fdopen(r, "rb"), w  # pass_fds keeps the number in bash
    names = [k for k in (env_vars or {}) if k.isidentifier()]
    save = "".join(f'__cx_{k}="${{{k}-__cx_unset}}"\n' for k in names)
    export = "".join(f"export {k}={shlex.quote(env_vars[k])}\n" for k in names)
    restore = "".join(
        f'if [ "$__cx_{k}" = __cx_unset ]; then unset {k}; else export {k}="$__cx_{k}"; fi\n' for k in names
    )
    script = f"{save}{export}{code}\n__cx_status=$?\n{restore}echo $__cx_status >&{ctx.status_fd}\n"
    try:
        ctx.node.stdin.write(script.encode())
        ctx.node.stdin.flush()
        line = ctx.node_out.readline()
    except BaseException:  # interrupted (the cell's timeout): stop what runs, start bash afresh
        ctx.reset()
        raise
    if not line:
        ctx.reset()
        raise _CellError("Error", "bash exited", "")
    if int(line) != 0:
        raise _CellError("Error", f"bash exited with status {int(line)}", "")
    return None


class _CellError(Exception):
    def __init__(self, name: str, value: str, traceback: str):
        super().__init__(value)
        self.name, self.value, self.traceback = name, value, traceback


# A small REPL in Node: one JSON line of code in, one JSON line on fd 3 out when the cell is done.
# `const`/`let` of one cell are visible in the next (scripts share the context's global scope).
_NODE_REPL = r"""
const vm = require('vm'), util = require('util'), fs = require('fs'), readline = require('readline');
const sandbox = vm.createContext(Object.assign(Object.create(globalThis), {
  require, module, exports, console, process, Buffer, setTimeout, setInterval, clearTimeout,
  clearInterval, setImmediate, URL, TextEncoder, TextDecoder, fetch: globalThis.fetch }));
const answer = (m) => fs.writeSync(Number(process.argv[process.argv.length - 1]), JSON.stringify(m) + '\n');
const show = (v) => typeof v === 'string' ? v : util.inspect(v);
// ES module imports, as E2B's JavaScript kernel takes them: each becomes a require() on its line
const esm = (code) => code.replace(
  /^([ \t]*)import(?:\s+|(?=[*{'"]))(?:([\w$]+)\s*,?\s*)?(?:\*\s*as\s+([\w$]+)\s*|\{([^}]*)\}\s*)?(?:from\s*)?(['"][^'"\n]+['"])[ \t]*;?/gm,
  (all, indent, def, ns, named, src) => {
    const req = 'require(' + src + ')';
    const out = [];
    if (def) out.push('var ' + def + ' = ((m) => m && m.__esModule && "default" in m ? m.default : m)(' + req + ');');
    if (ns) out.push('var ' + ns + ' = ' + req + ';');
    if (named) out.push('var {' + named.replace(/([\w$]+)\s+as\s+([\w$]+)/g, '$1: $2') + '} = ' + req + ';');
    return indent + (out.length ? out.join(' ') : req + ';');
  });
async function run(code) {
  code = esm(code);
  let value;
  try {
    value = vm.runInContext(code, sandbox, { filename: 'cell.js' });
  } catch (e) {
    if (!(e && e.name === 'SyntaxError' && /await/.test(String(e.message)))) throw e;
    // top-level await: the cell becomes an async function whose last line is returned
    const lines = code.replace(/\s+$/, '').split('\n');
    const last = lines.pop();
    const tail = /^\s*(const|let|var|function|class|if|for|while|return|\}|\/\/)/.test(last)
      ? last : 'return (' + last.replace(/;\s*$/, '') + ');';
    value = vm.runInContext('(async () => {\n' + lines.join('\n') + '\n' + tail + '\n})()', sandbox);
  }
  if (value && typeof value.then === 'function' && util.types.isPromise(value)) value = await value;
  return value;
}
const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const { code, env } = JSON.parse(line);
  const saved = Object.assign({}, process.env);
  Object.assign(process.env, env || {});
  try {
    const value = await run(code);
    answer(value === undefined ? { type: 'ok' } : { type: 'ok', text: show(value) });
  } catch (e) {
    const err = (e && typeof e === 'object' && 'message' in e) ? e : new Error(String(e));
    answer({ type: 'error', name: err.name, value: err.message, traceback: err.stack || '' });
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
});
"""


def _run_node(ctx: Context, code: str, env_vars: dict | None):
    import subprocess
    import textwrap

    if ctx.node is None or ctx.node.poll() is not None:
        r, w = os.pipe()
        try:
            ctx.node = subprocess.Popen(
                ["node", "-e", _NODE_REPL, "--", str(w)],
                stdin=subprocess.PIPE,
                cwd=ctx.cwd,
                pass_fds=(w,),
                start_new_session=True,
                env=_base_env,
            )
        except OSError as exc:
            os.close(r)
            os.close(w)
            raise _CellError("Error", f"JavaScript is not available in this sandbox: {exc}", "") from exc
        os.close(w)
        ctx.node_out = os.fdopen(r, "rb")
    try:
        ctx.node.stdin.write(
            (json.dumps({"code": textwrap.dedent(code), "env": env_vars or {}}) + "\n").encode()
        )
        ctx.node.stdin.flush()
        line = ctx.node_out.readline()
    except BaseException:  # interrupted (the cell's timeout): Node may still be busy, start it afresh
        ctx.reset()
        raise
    if not line:
        ctx.reset()
        raise _CellError("Error", "the JavaScript kernel stopped", "")
    msg = json.loads(line)
    if msg["type"] == "error":
        raise _CellError(msg["name"], msg["value"], msg["traceback"])
    return _JsValue(msg["text"]) if "text" in msg else None


class _JsValue:
    def __init__(self, text: str):
        self.text = text


def run_cell(ch: str, req: dict) -> None:
    global _exec_ch, _execution_count
    code, env_vars = req["code"], req.get("env_vars")
    ctx = _contexts.get(req.get("context_id") or "default") or _contexts["default"]
    _exec_ch = ch
    _execution_count += 1
    send({"ch": ch, "type": "number_of_executions", "execution_count": _execution_count})
    global _base_env
    saved_env = _base_env = dict(os.environ)
    os.environ.update(env_vars or {})
    value = None
    try:
        os.chdir(ctx.cwd)
        if ctx.language == "python":
            value = _run_python(ctx, code)
        elif ctx.language == "bash":
            value = _run_bash(ctx, code, env_vars)
        else:
            value = _run_node(ctx, code, env_vars)
    except _CellError as exc:
        send({"ch": ch, "type": "error", "name": exc.name, "value": exc.value, "traceback": exc.traceback})
    except BaseException as exc:  # KeyboardInterrupt (timeout) and SystemExit are data too
        import traceback

        # skip our own frames: the user sees their cell only
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != "<cell>":
            tb = tb.tb_next
        lines = traceback.format_exception(type(exc), exc, tb)
        sys.stdout.flush()
        sys.stderr.flush()
        send(
            {
                "ch": ch,
                "type": "error",
                "name": type(exc).__name__,
                "value": str(exc),
                "traceback": "".join(lines),
            }
        )
    else:
        try:
            _flush_figures()
            if isinstance(value, _JsValue):
                send({"ch": ch, "type": "result", "is_main_result": True, "text": value.text})
            elif value is not None and not _is_figure_shown(value):
                send({"ch": ch, "type": "result", "is_main_result": True, **_format(value)})
        except Exception as exc:
            send({"ch": ch, "type": "error", "name": type(exc).__name__, "value": str(exc), "traceback": ""})
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        if ctx.language == "python":
            ctx.cwd = os.getcwd()  # as in Jupyter, a `%cd` or os.chdir() lasts
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
        isinstance(value, list) and value and (type(value[0]).__module__ or "").startswith("matplotlib")
    )


# --- processes and files (control thread) -------------------------------------------------------

_procs: dict = {}  # pid -> subprocess.Popen


def proc_start(ch: str, req: dict) -> None:
    import subprocess

    env = dict(os.environ)
    env.update(req.get("envs") or {})
    pty = req.get("pty")
    master = None
    try:
        if pty:  # a terminal: one pty for stdin/stdout/stderr, the shell's controlling terminal
            import fcntl
            import termios

            master, slave = os.openpty()
            _set_size(master, pty)
            env.setdefault("TERM", "xterm-256color")
            p = subprocess.Popen(
                [req["cmd"], *req.get("args", [])],
                cwd=req.get("cwd") or None,
                env=env,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
                preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
            )
            os.close(slave)
        else:
            p = subprocess.Popen(
                [req["cmd"], *req.get("args", [])],
                cwd=req.get("cwd") or None,
                env=env,
                stdin=subprocess.PIPE if req.get("stdin") else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
    except OSError as exc:
        if master is not None:
            os.close(master)
        send({"ch": ch, "type": "fail", "error": str(exc)})
        return
    p.pty_master = master
    _procs[p.pid] = p
    send({"ch": ch, "type": "start", "pid": p.pid})

    def pump(read, name):
        while True:
            try:
                chunk = read()
            except OSError:  # EIO: the terminal's last user is gone
                return
            if not chunk:
                return
            send({"ch": ch, "type": name, "data": b64(chunk)})

    if master is not None:
        sources = [(lambda: os.read(master, 65536), "pty")]
    else:
        sources = [(lambda: p.stdout.read1(65536), "stdout"), (lambda: p.stderr.read1(65536), "stderr")]
    threads = [threading.Thread(target=pump, args=src, daemon=True) for src in sources]
    for t in threads:
        t.start()

    def reap():
        if master is not None:
            p.wait()  # a pty stays readable while background children hold it: stop at the shell's exit
            time.sleep(0.05)
        for t in threads:
            t.join(None if master is None else 1.0)
        code = p.wait()
        _procs.pop(p.pid, None)
        if master is not None:
            os.close(master)
        status = f"signal: {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        send({"ch": ch, "type": "end", "exit_code": code if code >= 0 else 128 - code, "status": status})

    threading.Thread(target=reap, daemon=True).start()


def _set_size(fd: int, size: dict) -> None:
    import fcntl
    import struct
    import termios

    fcntl.ioctl(
        fd, termios.TIOCSWINSZ, struct.pack("HHHH", size.get("rows") or 24, size.get("cols") or 80, 0, 0)
    )


def _proc(pid: int):
    p = _procs.get(pid)
    if p is None:
        raise ProcessLookupError(f"process {pid} not found")
    return p


def _entry(path: str) -> dict:
    """As envd describes a file: a symlink by its target's type, `permissions` as Go's FileMode
    prints them (`-rw-r--r--`, `drwxr-xr-x`, `Lrwxrwxrwx`), a size as lstat gives it."""
    st = os.lstat(path)
    target = None
    mode = st.st_mode
    if stat.S_ISLNK(st.st_mode):
        target = os.path.realpath(path)
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = stat.S_IFREG
    kind = "dir" if stat.S_ISDIR(mode) else "file"
    perms = stat.filemode(st.st_mode)
    if perms[0] == "l":
        perms = "L" + perms[1:]
    return {
        "name": os.path.basename(path) or path,
        "path": path,
        "type": kind,
        "size": st.st_size,
        "mode": stat.S_IMODE(st.st_mode),
        "permissions": perms,
        "modified": st.st_mtime,
        "symlink_target": target,
        "metadata": _metadata(path),
    }


_XATTR = "user.e2b."  # where envd keeps a file's user metadata


def _metadata(path: str) -> dict:
    try:
        names = [n for n in os.listxattr(path, follow_symlinks=False) if n.startswith(_XATTR)]
        return {
            n[len(_XATTR) :]: os.getxattr(path, n, follow_symlinks=False).decode(errors="replace")
            for n in names
        }
    except OSError:  # a file system without user xattrs has no metadata
        return {}


def _list(path: str, depth: int) -> list:
    entries = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        entries.append(_entry(full))
        if depth > 1 and os.path.isdir(full) and not os.path.islink(full):
            entries += _list(full, depth - 1)
    return entries


class _Watcher:
    """inotify on a directory (and, recursive, its subdirectories), as envd's WatchDir reports it.
    Events are read when asked for, so everything done before the question is in the answer."""

    KINDS = (
        (0x100, "create"),
        (0x80, "create"),
        (0x2, "write"),
        (0x4, "chmod"),
        (0x200, "remove"),
        (0x40, "rename"),
    )
    MASK = 0x100 | 0x80 | 0x2 | 0x4 | 0x200 | 0x40

    def __init__(self, root: str, recursive: bool, include_entry: bool = False):
        import ctypes

        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self.root, self.recursive, self.dirs, self.events = root, recursive, {}, []
        self.include_entry = include_entry
        self._lock = threading.Lock()
        self._add(root)

    def _add(self, path: str) -> None:
        import ctypes

        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(path), self.MASK | 0x01000000)  # IN_ONLYDIR
        if wd < 0:
            err = ctypes.get_errno()
            raise (NotADirectoryError if err == 20 else FileNotFoundError if err == 2 else OSError)(
                err, f"cannot watch {path}: {os.strerror(err)}"
            )
        self.dirs[wd] = path
        if self.recursive:
            for name in os.listdir(path):
                full = os.path.join(path, name)
                if os.path.isdir(full) and not os.path.islink(full):
                    self._add(full)

    def _rel(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    def _event(self, path: str, kind: str) -> dict:
        event = {"name": self._rel(path), "type": kind}
        if self.include_entry:  # envd 0.6.3: best effort, for a path that still exists when read
            try:
                event["entry"] = _entry(path)
            except OSError:
                pass
        return event

    def drain(self) -> list:
        import struct

        with self._lock:
            while True:
                try:
                    buf = os.read(self.fd, 65536)
                except BlockingIOError:
                    break
                off = 0
                while off < len(buf):
                    wd, mask, _cookie, size = struct.unpack_from("iIII", buf, off)
                    name = buf[off + 16 : off + 16 + size].rstrip(b"\0").decode(errors="replace")
                    off += 16 + size
                    base = self.dirs.get(wd)
                    if base is None or not name:
                        continue
                    full = os.path.join(base, name)
                    for bit, kind in self.KINDS:
                        if mask & bit:
                            self.events.append(self._event(full, kind))
                    if self.recursive and mask & 0x40000000 and mask & (0x100 | 0x80):
                        self._add_new_dir(full)
            events, self.events = self.events, []
        return events

    def _add_new_dir(self, path: str) -> None:
        # what was made in it before its watch existed is reported as made
        try:
            self._add(path)
            for dirpath, dirnames, filenames in os.walk(path):
                for n in dirnames + filenames:
                    full = os.path.join(dirpath, n)
                    self.events.append(self._event(full, "create"))
                    if n in filenames and os.path.getsize(full):
                        self.events.append(self._event(full, "write"))
        except OSError:
            pass

    def close(self) -> None:
        os.close(self.fd)


_watchers: dict = {}


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
            p = _proc(req["pid"])
            data = binascii.a2b_base64(req["data"])
            if p.pty_master is not None:
                os.write(p.pty_master, data)
            elif p.stdin is None:
                raise ValueError(f"process {p.pid} was started without stdin")
            else:
                p.stdin.write(data)
                p.stdin.flush()
            result = {}
        elif op == "proc_resize":
            p = _proc(req["pid"])
            if p.pty_master is None:
                raise ValueError(f"process {p.pid} has no terminal")
            _set_size(p.pty_master, req["size"])
            result = {}
        elif op == "proc_close_stdin":
            p = _proc(req["pid"])
            if p.stdin is not None:
                p.stdin.close()
            result = {}
        elif op == "proc_list":
            result = {
                "procs": [{"pid": pid, "cmd": p.args[0], "args": p.args[1:]} for pid, p in _procs.items()]
            }
        elif op == "write":
            path = _resolve(req["path"])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                os.fchmod(f.fileno(), 0o644)  # as envd does: a watcher sees create, chmod, write
                f.write(binascii.a2b_base64(req["data"]))
                # a write replaces the file, its metadata too (envd): the old keys go
                for name in _metadata(path):
                    os.removexattr(f.fileno(), _XATTR + name)
                for key, value in (req.get("metadata") or {}).items():
                    os.setxattr(f.fileno(), _XATTR + key.lower(), value.encode())
            result = {"entry": _entry(path)}
        elif op == "read":
            with open(_resolve(req["path"]), "rb") as f:
                result = {"data": b64(f.read())}
        elif op == "list":
            path = _resolve(req["path"])
            if not os.path.isdir(path):
                raise (
                    NotADirectoryError(f"{path} is not a directory")
                    if os.path.exists(path)
                    else FileNotFoundError(f"{path} does not exist")
                )
            result = {"entries": _list(path, max(1, int(req.get("depth") or 1)))}
        elif op == "stat":
            result = {"entry": _entry(_resolve(req["path"]))}
        elif op == "mkdir":
            path = _resolve(req["path"])
            if os.path.isdir(path):
                raise FileExistsError(f"directory {path} already exists")
            os.makedirs(path)
            result = {"entry": _entry(path)}
        elif op == "move":
            src, dst = _resolve(req["path"]), _resolve(req["destination"])
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.rename(src, dst)
            result = {"entry": _entry(dst)}
        elif op == "remove":
            # envd removes like Go's os.RemoveAll: a path that is not there is no error
            path = _resolve(req["path"])
            if os.path.isdir(path) and not os.path.islink(path):
                import shutil

                shutil.rmtree(path)
            elif os.path.lexists(path):
                os.remove(path)
            result = {}
        elif op == "watcher_create":
            path = _resolve(req["path"])
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path} does not exist")
            _watchers[req["id"]] = _Watcher(path, bool(req.get("recursive")), bool(req.get("include_entry")))
            result = {}
        elif op == "watcher_events":
            result = {"events": _watchers[req["id"]].drain()}
        elif op == "watcher_remove":
            _watchers.pop(req["id"]).close()
            result = {}
        elif op in ("ctx_create", "ctx_restart", "ctx_remove"):
            result = context_op(req)
        elif op == "env":
            os.environ.update(req["envs"])
            result = {}
        else:
            raise ValueError(f"unknown operation {op!r}")
        send({"ch": ch, "type": "ok", **result})
    except Exception as exc:
        kind = (
            "not_found"
            if isinstance(exc, (FileNotFoundError, KeyError, ProcessLookupError))
            else "exists"
            if isinstance(exc, FileExistsError)
            else "error"
        )
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
            run_cell(req["ch"], req)
        except KeyboardInterrupt:  # an interrupt that arrived between cells
            pass


main()
