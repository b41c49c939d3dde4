"""Code in a local sandbox, through the unmodified E2B SDK: state, streaming, rich results."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys

import pytest

from coherex.sandbox import open_sandbox


async def test_state_survives_across_run_code_calls(sbx):
    await sbx.run_code("import math\ncounter = 40")
    await sbx.run_code("counter += 1")
    result = await sbx.run_code("counter + 1, math.pi > 3")
    assert result.error is None
    assert result.text == "(42, True)"


async def test_stdout_streams_line_by_line_before_the_code_ends(sbx):
    # the code prints, then waits for a file that the test writes only after it saw the line:
    # if output were delivered at the end, this would never finish
    code = (
        "import os, time\n"
        "print('first', flush=False)\n"
        "while not os.path.exists('/tmp/go'):\n"
        "    time.sleep(0.01)\n"
        "print('second')\n"
    )
    seen: list[str] = []
    first_line = asyncio.Event()

    def on_stdout(text: str) -> None:
        seen.append(text)
        first_line.set()

    run = asyncio.create_task(sbx.run_code(code, on_stdout=on_stdout, timeout=30))
    await asyncio.wait_for(first_line.wait(), 30)
    assert seen == ["first\n"]
    assert not run.done()
    await sbx.files.write("/tmp/go", "")
    result = await run
    assert seen == ["first\n", "second\n"]
    assert result.stdout == "first\nsecond\n"


async def test_output_of_subprocesses_and_stderr_is_captured(sbx):
    result = await sbx.run_code(
        "import os, sys\nos.system('echo from-shell')\nprint('oops', file=sys.stderr)"
    )
    assert "from-shell" in result.stdout
    assert result.stderr == "oops\n"


async def test_user_exception_is_data_not_raised(sbx):
    result = await sbx.run_code("def f():\n    raise ValueError('bad input')\nf()")
    assert result.error is not None
    assert result.error["name"] == "ValueError"
    assert result.error["value"] == "bad input"
    assert "line 2, in f" in result.error["traceback"]
    # the sandbox keeps working after it
    assert (await sbx.run_code("1 + 1")).text == "2"


async def test_matplotlib_figure_comes_back_as_png(sbx):
    result = await sbx.run_code(
        "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('t')\nplt.show()", timeout=120
    )
    assert result.error is None, result.error
    pngs = [r["png"] for r in result.results if "png" in r]
    assert len(pngs) == 1
    assert base64.b64decode(pngs[0]).startswith(b"\x89PNG")


async def test_a_figure_comes_back_with_its_chart_data(sbx):
    result = await sbx.run_code(
        "import matplotlib.pyplot as plt\nplt.bar(['a', 'b'], [3, 5])\nplt.title('Votes')", timeout=120
    )
    assert result.error is None, result.error
    [figure] = result.results
    assert figure["chart"]["type"] == "bar" and figure["chart"]["title"] == "Votes"
    assert [(e["label"], e["value"]) for e in figure["chart"]["elements"]] == [("a", 3), ("b", 5)]
    assert "png" in figure


async def test_dataframe_comes_back_as_table_data(sbx):
    result = await sbx.run_code(
        "import pandas as pd\npd.DataFrame({'city': ['Oslo', 'Rome'], 'temp': [3.5, 17.0]})", timeout=120
    )
    assert result.error is None, result.error
    main = next(r for r in result.results if r["is_main_result"])
    assert main["data"]["columns"] == ["city", "temp"]
    assert main["data"]["rows"] == [["Oslo", 3.5], ["Rome", 17.0]]
    assert "<table" in main["html"]


async def test_plotly_figure_comes_back_as_json(sbx):
    result = await sbx.run_code(
        "import plotly.graph_objects as go\ngo.Figure(go.Bar(x=['a', 'b'], y=[1, 2]))", timeout=120
    )
    assert result.error is None, result.error
    main = next(r for r in result.results if r["is_main_result"])
    assert main["json"]["data"][0]["type"] == "bar"


async def test_commands_and_files(sbx):
    entry = await sbx.files.write("notes/hello.txt", "hi there")
    assert entry.path == "/home/user/notes/hello.txt"
    assert await sbx.files.read("/home/user/notes/hello.txt") == "hi there"
    assert [e.name for e in await sbx.files.list("/home/user/notes")] == ["hello.txt"]
    res = await sbx.commands.run("cat notes/hello.txt; echo err >&2; exit 3", cwd="/home/user")
    assert (res.exit_code, res.stdout, res.stderr) == (3, "hi there", "err\n")


async def test_envs_are_set_and_a_sandbox_is_never_reused(sandbox_settings):
    async with await open_sandbox(sandbox_settings, envs={"GREETING": "hello"}) as a:
        await a.run_code("left_behind = 1")
        assert (await a.run_code("import os; os.environ['GREETING']")).text == "hello"
    async with await open_sandbox(sandbox_settings) as b:
        assert a.id != b.id
        result = await b.run_code("left_behind")
        assert result.error and result.error["name"] == "NameError"


async def test_kill_is_idempotent_and_a_killed_sandbox_says_so(sandbox_settings):
    from coherex.sandbox import SandboxNotFound

    box = await open_sandbox(sandbox_settings)
    await box.kill()
    await box.kill()
    try:
        await box.run_code("1")
    except SandboxNotFound as exc:
        assert "not running" in str(exc)
    else:
        raise AssertionError("a killed sandbox ran code")


@pytest.mark.parametrize(
    "code, status, out, err",
    [
        ("print('hello')", 0, "hello", ""),
        ("import sys\nprint('bye')\nsys.exit()", 0, "bye", ""),
        ("import sys\nsys.exit(3)", 3, "", ""),
        ("import sys\nsys.exit('bad input file')", 1, "", "bad input file"),
        ("1/0", 1, "", "ZeroDivisionError"),
    ],
)
def test_cli_exec_exits_with_the_codes_status(sandbox_settings, code, status, out, err):
    """`coherex sandbox exec` ends like `python file.py` would: sys.exit's status, its message."""
    env = {
        **os.environ,
        "COHEREX_DATA_DIR": str(sandbox_settings.data_dir),
        "COHEREX_SANDBOX_PORT": str(sandbox_settings.sandbox_port),
    }
    env.pop("E2B_API_KEY", None)
    res = subprocess.run(
        [sys.executable, "-m", "coherex", "sandbox", "exec", "-"],
        input=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == status, res.stderr
    assert res.stdout.strip() == out
    assert err in res.stderr and ("SystemExit" not in res.stderr)
