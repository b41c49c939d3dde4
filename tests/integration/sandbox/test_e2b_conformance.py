"""The local server behaves like E2B for the unmodified SDKs (`e2b`, `e2b-code-interpreter`).

Each test is one behaviour a user of E2B relies on, driven through the SDK's public API exactly as
E2B's own test suites do (see bench/e2b_conformance.py for running those suites themselves).
"""

from __future__ import annotations

import asyncio
import base64
import time

import httpx
import pytest
from e2b import FilesystemEventType, FileType, PtySize, SandboxQuery
from e2b import exceptions as e2b_exc
from e2b_code_interpreter import AsyncSandbox
from packaging.version import Version

from coherex.sandbox.e2b_client import connection_options


@pytest.fixture
def opts(sandbox_settings) -> dict:
    return connection_options(sandbox_settings)


@pytest.fixture
async def box(opts):
    sandbox = await AsyncSandbox.create(timeout=120, **opts)
    try:
        yield sandbox
    finally:
        await sandbox.kill()


# --- lifecycle ---------------------------------------------------------------------------------


async def test_get_info_has_every_field_the_sdk_requires(opts):
    sandbox = await AsyncSandbox.create(metadata={"purpose": "info"}, timeout=60, **opts)
    try:
        info = await sandbox.get_info()
        assert info.sandbox_id == sandbox.sandbox_id
        assert info.metadata == {"purpose": "info"}
        assert info.state.value == "running"
        assert info.cpu_count >= 1 and info.memory_mb > 0
        assert 50 <= (info.end_at - info.started_at).total_seconds() <= 61
        # an envd the SDK treats as current: stdin, close, octet-stream uploads and file metadata are on
        assert Version(info.envd_version) >= Version("0.6.2")
    finally:
        await sandbox.kill()


async def test_connect_reaches_the_same_running_sandbox(box, opts):
    await box.run_code("shared = 'from the first handle'")
    again = await AsyncSandbox.connect(box.sandbox_id, **opts)
    assert (await again.run_code("shared")).text == "from the first handle"
    with pytest.raises(e2b_exc.SandboxException):
        await AsyncSandbox.connect("sbx-that-never-existed", **opts)


async def test_list_filters_by_metadata_and_pages(opts):
    tag = f"list-{time.time_ns()}"
    boxes = [
        await AsyncSandbox.create(metadata={"tag": tag, "n": str(i)}, timeout=60, **opts) for i in range(3)
    ]
    try:
        found = AsyncSandbox.list(query=SandboxQuery(metadata={"tag": tag}), limit=2, **opts)
        first = await found.next_items()
        assert len(first) == 2 and found.has_next
        rest = await found.next_items()
        assert {s.sandbox_id for s in first + rest} == {b.sandbox_id for b in boxes}
        assert not found.has_next
        one = await AsyncSandbox.list(
            query=SandboxQuery(metadata={"tag": tag, "n": "1"}), **opts
        ).next_items()
        assert [s.sandbox_id for s in one] == [boxes[1].sandbox_id]
    finally:
        for b in boxes:
            await b.kill()


async def test_list_is_newest_first_and_filters_by_start_and_template(opts):
    tag = f"order-{time.time_ns()}"
    first = await AsyncSandbox.create(metadata={"tag": tag}, timeout=60, **opts)
    await asyncio.sleep(1.1)  # startedAt has whole seconds
    second = await AsyncSandbox.create(metadata={"tag": tag}, timeout=60, **opts)
    try:

        async def ids(**query) -> list[str]:
            found = AsyncSandbox.list(query=SandboxQuery(metadata={"tag": tag}, **query), **opts)
            return [s.sandbox_id for s in await found.next_items()]

        # E2B's default order is newest first, by when each sandbox was asked for (not pooled)
        assert await ids() == [second.sandbox_id, first.sandbox_id]
        assert await ids(started_after=(await second.get_info()).started_at) == [second.sandbox_id]
        template = (await first.get_info()).template_id
        assert len(await ids(template=template)) == 2
        assert await ids(template="no-such-template") == []
    finally:
        await first.kill()
        await second.kill()


async def test_create_through_the_v1_sandboxes_route(opts):
    """POST /sandboxes is how E2B's newer SDKs create (this SDK posts to /v2/sandboxes)."""
    from e2b import ConnectionConfig
    from e2b.api.client.api.sandboxes import post_sandboxes
    from e2b.api.client.models import NewSandbox
    from e2b.api.client_async import get_api_client

    client = get_api_client(ConnectionConfig(**opts))
    res = await post_sandboxes.asyncio_detailed(
        client=client, body=NewSandbox(template_id="base", timeout=60)
    )
    assert res.status_code == 201, res.content
    assert await AsyncSandbox.kill(res.parsed.sandbox_id, **opts) is True


async def test_a_killed_sandbox_is_gone_for_every_api(opts):
    sandbox = await AsyncSandbox.create(timeout=60, **opts)
    assert await AsyncSandbox.kill(sandbox.sandbox_id, **opts) is True
    assert await AsyncSandbox.kill(sandbox.sandbox_id, **opts) is False
    assert not await sandbox.is_running()
    with pytest.raises(e2b_exc.NotFoundException):
        await AsyncSandbox.get_info(sandbox.sandbox_id, **opts)
    with pytest.raises(e2b_exc.SandboxNotRunningException):
        await sandbox.files.read("/etc/hostname")


async def test_a_sandbox_killed_mid_command_says_it_was_not_found(box):
    asyncio.get_running_loop().call_later(1.0, lambda: asyncio.ensure_future(box.kill()))
    # "was not found" is what this SDK maps to SandboxNotRunningException; the rest is what E2B's
    # later SDKs (their own suite) say after finding the sandbox gone
    with pytest.raises(
        e2b_exc.SandboxNotRunningException,
        match="was not found: the sandbox was killed or reached its end of life",
    ):
        await box.commands.run("sleep 60", timeout=30)


async def test_a_sandbox_killed_mid_run_code_raises_the_sdks_exception(box):
    asyncio.get_running_loop().call_later(1.0, lambda: asyncio.ensure_future(box.kill()))
    with pytest.raises(
        e2b_exc.TimeoutException, match="sandbox was killed while the request was in progress"
    ):
        await box.run_code("import time; time.sleep(60)", timeout=30)


# --- run_code is Jupyter-like ------------------------------------------------------------------


async def test_an_indented_cell_is_dedented(box):
    result = await box.run_code("""
        def double(x):
            return 2 * x
        double(21)
        """)
    assert result.error is None, result.error
    assert result.text == "42"


async def test_a_string_result_is_the_string_itself(box):
    # E2B's kernel shows a str unquoted (its own suite: os.getenv('FOO') -> "bar")
    result = await box.run_code("import os; os.getenv('FOO')", envs={"FOO": "bar"})
    assert result.text == "bar"
    assert (await box.run_code("import os; os.getenv('FOO', 'default')")).text == "default"
    assert (await box.run_code("[1, 'a']")).text == "[1, 'a']"


async def test_shell_lines_and_magics(box):
    result = await box.run_code("!pwd\n%cd /tmp\nimport os\nprint(os.getcwd())\n!echo $((6 * 7))")
    assert result.error is None, result.error
    assert "".join(result.logs.stdout) == "/home/user\n/tmp\n/tmp\n42\n"
    assert (await box.run_code("%%bash\necho from a cell magic")).logs.stdout == ["from a cell magic\n"]
    bad = await box.run_code("%nosuchmagic")
    assert bad.error is not None and "nosuchmagic" in bad.error.value


async def test_display_and_ipython_display_objects(box):
    result = await box.run_code(
        "from IPython.display import display, HTML, Markdown\n"
        "display(HTML('<b>bold</b>'))\n"
        "display({'text/latex': r'\\text{CustomReprObject}'}, raw=True)\n"
        "Markdown('# title')"
    )
    assert result.error is None, result.error
    html, latex, markdown = result.results
    assert html.html == "<b>bold</b>" and not html.is_main_result
    assert list(latex.formats()) == ["latex"]
    assert markdown.markdown == "# title" and markdown.is_main_result


CHARTS = {
    "bar": (
        "plt.bar(['A', 'B', 'C'], [1, 3, 2])\nplt.title('Sales')\nplt.xlabel('Shop')\nplt.ylabel('Units "
        "[pcs]')",
        lambda c: (
            [(e.label, e.value) for e in c.elements] == [("A", 1), ("B", 3), ("C", 2)]
            and c.title == "Sales"
            and c.x_label == "Shop"
            and c.y_unit == "pcs"
        ),
    ),
    "line": (
        (
            "import numpy as np\nx = np.linspace(0, 6, 50)\nplt.plot(x, np.sin(x), label='sin')\n"
            "plt.plot(x, np.cos(x), label='cos')\nplt.xlabel('Time (s)')"
        ),
        lambda c: (
            [e.label for e in c.elements] == ["sin", "cos"]
            and len(c.elements[0].points) == 50
            and c.x_unit == "s"
            and all(isinstance(t, float) for t in c.x_ticks)
        ),
    ),
    "pie": (
        "plt.pie([90, 10], labels=['No', 'Yes'])",
        lambda c: [(e.label, e.angle) for e in c.elements] == [("No", 324), ("Yes", 36)],
    ),
    "scatter": (
        "plt.scatter([1, 2, 3], [4, 5, 6], label='a')\nplt.scatter([1], [2], label='b')",
        lambda c: [(e.label, len(e.points)) for e in c.elements] == [("a", 3), ("b", 1)],
    ),
    "box_and_whisker": (
        "plt.boxplot([[1, 2, 3, 4, 5], [2, 3, 4, 5, 9]], tick_labels=['x', 'y'], patch_artist=True)",
        lambda c: (
            [(e.label, e.median) for e in c.elements] == [("x", 3), ("y", 4)]
            and (c.elements[1].max, c.elements[1].outliers) == (5, [9])
        ),
    ),
}


async def test_matplotlib_charts_come_back_as_e2b_chart_data(box):
    for kind, (code, check) in CHARTS.items():
        result = await box.run_code(f"import matplotlib.pyplot as plt\n{code}\nplt.show()", timeout=120)
        assert result.error is None, (kind, result.error)
        [figure] = result.results
        assert base64.b64decode(figure.png).startswith(b"\x89PNG")
        assert figure.chart is not None and figure.chart.type.value == kind, kind
        assert check(figure.chart), (kind, figure.chart.to_dict())


async def test_images_shown_by_pil_come_back_as_png(box):
    result = await box.run_code(
        "from PIL import Image\nImage.new('RGB', (4, 4), 'red').show()\nprint('shown')", timeout=120
    )
    assert result.error is None, result.error
    assert base64.b64decode(result.results[0].png).startswith(b"\x89PNG")
    assert result.logs.stdout == ["shown\n"]


async def test_an_image_saved_to_a_file_is_shown_too(box):
    result = await box.run_code(
        "from PIL import Image\nImage.new('RGB', (4, 4), 'blue').save('blue.png')\nprint('saved')",
        timeout=120,
    )
    assert result.error is None, result.error
    assert base64.b64decode(result.results[0].png).startswith(b"\x89PNG")  # as E2B's template does
    assert (await box.files.read("blue.png", format="bytes")).startswith(b"\x89PNG")


async def test_a_dataframe_comes_back_as_e2b_data(box):
    result = await box.run_code(
        "import pandas as pd\n"
        "pd.DataFrame({'a': [1, 2], 'when': pd.to_datetime(['2024-01-02', '2024-03-04'])})",
        timeout=120,
    )
    assert result.error is None, result.error
    # E2B's template: the DataFrame's to_dict(orient="list"), times in ISO format
    assert result.results[0].data == {"a": [1, 2], "when": ["2024-01-02T00:00:00", "2024-03-04T00:00:00"]}


# --- contexts and languages --------------------------------------------------------------------


async def test_a_context_has_its_own_namespace_and_cwd_and_can_restart(box):
    await box.run_code("x = 'default context'")
    ctx = await box.create_code_context(cwd="/tmp")
    assert (await box.run_code("x", context=ctx)).error.name == "NameError"
    await box.run_code("x = 'own context'", context=ctx)
    assert (await box.run_code("x", context=ctx)).text == "own context"
    assert (await box.run_code("x")).text == "default context"
    assert (await box.run_code("import os; os.getcwd()", context=ctx)).text == "/tmp"
    listed = {c.id: c for c in await box.list_code_contexts()}
    assert listed[ctx.id].cwd == "/tmp" and {"python", "javascript"} <= {c.language for c in listed.values()}
    await box.restart_code_context(ctx)
    assert (await box.run_code("x", context=ctx)).error.name == "NameError"
    await box.remove_code_context(ctx)
    assert ctx.id not in {c.id for c in await box.list_code_contexts()}


async def test_javascript_runs_inside_the_box_with_state(box):
    out = await box.run_code("console.log('Hello, World!')", language="js")
    assert out.logs.stdout == ["Hello, World!\n"] and out.error is None
    assert (await box.run_code("process.env.FOO", language="js", envs={"FOO": "bar"})).text == "bar"
    assert (await box.run_code("String(process.env.FOO)", language="js")).text == "undefined"
    await box.run_code("const add = (x, y) => x + y", language="js")
    assert (await box.run_code("add(1, 2)", language="js")).text == "3"
    assert (
        await box.run_code("async function f() { return 'awaited' }\nawait f()", language="js")
    ).text == "awaited"
    assert (await box.run_code("process.cwd()", language="js")).text == "/home/user"
    # the same isolation as Python: the box's hostname, no host files
    assert (await box.run_code("require('os').hostname()", language="js")).text == "sandbox"
    hidden = await box.run_code("require('fs').readdirSync('/work')", language="js")
    assert hidden.error is not None and "ENOENT" in hidden.error.value
    err = await box.run_code("null.x", language="js")
    assert err.error.name == "TypeError"
    ctx = await box.create_code_context(cwd="/tmp", language="javascript")
    assert (await box.run_code("process.cwd()", context=ctx)).text == "/tmp"


async def test_javascript_takes_es_module_imports(box):
    result = await box.run_code(
        "import { readFileSync } from 'fs'\nimport * as path from 'path'\n"
        "console.log(typeof readFileSync, path.basename('/a/b.txt'))",
        language="js",
    )
    assert result.error is None, result.error
    assert result.logs.stdout == ["function b.txt\n"]


async def test_a_javascript_cell_past_its_timeout_is_stopped(box):
    with pytest.raises(e2b_exc.TimeoutException):
        await box.run_code("while (true) {}", language="js", timeout=2)
    assert (await box.run_code("1 + 1", language="js", timeout=30)).text == "2"


async def test_bash_language_and_unknown_languages(box):
    result = await box.run_code("echo $FOO; pwd", language="bash", envs={"FOO": "bar"})
    assert "".join(result.logs.stdout) == "bar\n/home/user\n"
    # one bash per context, as E2B's bash kernel: variables and cd last, per-call env vars do not
    await box.run_code("cd /tmp; KEPT=yes", language="bash")
    result = await box.run_code("echo $KEPT ${FOO:-unset}; pwd", language="bash")
    assert "".join(result.logs.stdout) == "yes unset\n/tmp\n"
    with pytest.raises(e2b_exc.TimeoutException):
        await box.run_code("sleep 30", language="bash", timeout=2)
    assert (await box.run_code("echo after", language="bash", timeout=30)).logs.stdout == ["after\n"]
    with pytest.raises(e2b_exc.SandboxException, match="language 'r' is not available"):
        await box.run_code("1", language="r")


# --- filesystem --------------------------------------------------------------------------------


async def test_filesystem_operations_as_envd_does_them(box):
    written = await box.files.write_files(
        [{"path": "a/one.txt", "data": "1"}, {"path": "a/two.txt", "data": "22"}]
    )
    assert [w.path for w in written] == ["/home/user/a/one.txt", "/home/user/a/two.txt"]
    moved = await box.files.rename("a/two.txt", "a/b/two.txt")
    assert moved.path == "/home/user/a/b/two.txt"
    assert [e.path for e in await box.files.list("a", depth=1)] == ["/home/user/a/b", "/home/user/a/one.txt"]
    assert [e.path for e in await box.files.list("a", depth=2)] == [
        "/home/user/a/b",
        "/home/user/a/b/two.txt",
        "/home/user/a/one.txt",
    ]
    info = await box.files.get_info("a/one.txt")
    assert (info.permissions, info.mode, info.type) == ("-rw-r--r--", 0o644, FileType.FILE)
    assert (await box.files.get_info("a")).permissions == "drwxr-xr-x"
    await box.commands.run("ln -s /home/user/a/one.txt /home/user/link")
    link = await box.files.get_info("link")
    # newer envd: `type` is the target's, `is_symlink` marks the link; the SDK reports SYMLINK
    assert (link.type, link.symlink_target, link.permissions[0]) == (
        FileType.SYMLINK,
        "/home/user/a/one.txt",
        "L",
    )
    assert await box.files.make_dir("newdir") is True
    assert await box.files.make_dir("newdir") is False
    await box.files.remove("not/there.txt")  # no error, as envd (os.RemoveAll)


async def test_file_metadata_is_kept_with_the_file(box):
    written = await box.files.write("tagged.txt", "x", metadata={"Owner": "alice", "stage": "raw"})
    assert written.metadata == {"owner": "alice", "stage": "raw"}  # keys lowercased, as envd does
    assert (await box.files.get_info("tagged.txt")).metadata == {"owner": "alice", "stage": "raw"}
    listed = {e.name: e.metadata for e in await box.files.list(".")}
    assert listed["tagged.txt"] == {"owner": "alice", "stage": "raw"}
    assert (await box.files.write("plain.txt", "y")).metadata is None


async def test_a_directory_has_its_size_and_a_rewrite_drops_old_metadata(box):
    await box.files.make_dir("sized")
    assert (await box.files.get_info("sized")).size > 0  # what stat says (4096 on ext4), as envd
    await box.files.write("meta.txt", "1", metadata={"author": "mish"})
    again = await box.files.write("meta.txt", "2")
    assert again.metadata is None
    assert (await box.files.get_info("meta.txt")).metadata is None


async def test_an_expired_signed_url_is_refused_in_envds_words(opts):
    sandbox = await AsyncSandbox.create(secure=True, timeout=60, **opts)
    try:
        await sandbox.files.write("old.txt", "x")
        async with httpx.AsyncClient() as http:
            res = await http.get(sandbox.download_url("old.txt", use_signature_expiration=-120))
        assert (res.status_code, res.json()) == (
            401,
            {"code": 401, "message": "signature is already expired"},
        )
    finally:
        await sandbox.kill()


async def test_signed_file_urls(opts):
    sandbox = await AsyncSandbox.create(secure=True, timeout=60, **opts)
    try:
        async with httpx.AsyncClient() as http:
            up = await http.post(
                sandbox.upload_url("up.txt", use_signature_expiration=60),
                files={"file": ("up.txt", b"uploaded")},
            )
            assert up.status_code == 200, up.text
            down = await http.get(sandbox.download_url("up.txt", use_signature_expiration=60))
            assert (down.status_code, down.content) == (200, b"uploaded")
            forged = sandbox.download_url("up.txt").replace("signature=v1_", "signature=v1_x")
            assert (await http.get(forged)).status_code == 401
    finally:
        await sandbox.kill()


async def test_watch_dir_reports_what_happens_in_it(box):
    await box.files.make_dir("watched/nested")
    seen: list = []
    arrived = asyncio.Event()

    def on_event(event) -> None:
        seen.append((event.type, event.name))
        if event.type == FilesystemEventType.WRITE:
            arrived.set()

    handle = await box.files.watch_dir("watched", on_event=on_event, recursive=True)
    await box.files.write("watched/nested/f.txt", "x")
    await asyncio.wait_for(arrived.wait(), 10)
    await handle.stop()
    assert seen[:3] == [
        (FilesystemEventType.CREATE, "nested/f.txt"),
        (FilesystemEventType.CHMOD, "nested/f.txt"),
        (FilesystemEventType.WRITE, "nested/f.txt"),
    ]
    with pytest.raises(e2b_exc.NotFoundException):
        await box.files.watch_dir("not-there", on_event=on_event)


async def test_watch_events_carry_the_entry_when_asked(box):
    await box.files.make_dir("entries")
    seen: list = []
    arrived = asyncio.Event()

    def on_event(event) -> None:
        seen.append(event)
        if event.type == FilesystemEventType.WRITE:
            arrived.set()

    handle = await box.files.watch_dir("entries", on_event=on_event, include_entry=True)
    await box.files.write("entries/f.txt", "x")
    await asyncio.wait_for(arrived.wait(), 10)
    await handle.stop()
    write = next(e for e in seen if e.type == FilesystemEventType.WRITE)
    assert (write.entry.name, write.entry.path, write.entry.type) == (
        "f.txt",
        "/home/user/entries/f.txt",
        FileType.FILE,
    )


# --- commands ----------------------------------------------------------------------------------


async def test_pty_is_a_terminal_of_the_given_size(box):
    chunks: list[bytes] = []
    terminal = await box.pty.create(PtySize(cols=100, rows=30), on_data=chunks.append)
    await box.pty.send_stdin(terminal.pid, b"stty size; tty; exit\n")
    result = await terminal.wait()
    output = b"".join(chunks)
    assert result.exit_code == 0
    assert b"30 100" in output and b"/dev/pts/" in output


async def test_a_background_command_can_be_reattached(box):
    started = await box.commands.run("read line; echo got $line", background=True, stdin=True)
    again = await box.commands.connect(started.pid)
    await box.commands.send_stdin(started.pid, "hello\n")
    result = await again.wait()
    assert result.stdout == "got hello\n"


async def test_the_async_command_timeout_is_enforced(box):
    start = time.monotonic()
    with pytest.raises(e2b_exc.TimeoutException):
        await box.commands.run("sleep 20", timeout=1)
    assert time.monotonic() - start < 8
    # the command was killed, not left running
    assert "sleep 20" not in (await box.commands.run("ps -eo args")).stdout
