"""`python` and `csv.summarize`: code run in the run's sandbox (opened on first use by the run).

Needs a run (`call.run`): the sandbox, the recorder that streams the output as events, the uploads.
Tests use the real sandbox server (coherex/testing/sandbox.py).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from coherex.spec.catalogue import ToolInfo
from coherex.tools.port import Provider, ToolCall, ToolFailed, action
from coherex.tools.schema import params, string


def _run_of(call: ToolCall) -> Any:
    if call.run is None:
        raise ToolFailed(f"{call.tool.name} runs only inside an agent run (it needs the run's sandbox).")
    return call.run


@action(
    ToolInfo(
        "python",
        "python",
        "Run Python code in the agent's isolated sandbox and return stdout, stderr and the value "
        "of the last expression. Files uploaded for the run are in the working directory.",
        parameters=params({"code": string("Python source to execute")}, ["code"]),
    )
)
async def run_python(call: ToolCall, args: dict[str, Any]) -> dict[str, Any]:
    code = args.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ToolFailed("The python tool needs a non-empty `code` string.")
    run = _run_of(call)
    parent_seq = call.parent_seq
    sandbox = await run.get_sandbox()
    recorder = run.recorder
    # Output lines become events while the code still runs, in order, through one writer.
    lines: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()

    async def write_lines() -> None:
        while (item := await lines.get()) is not None:
            await recorder.record(item[0], payload={"text": item[1]}, parent_seq=parent_seq)

    def stream(kind: str):
        return lambda line: lines.put_nowait((kind, str(getattr(line, "line", line))))

    writer = asyncio.create_task(write_lines())
    started = time.perf_counter()
    try:
        result = await sandbox.run_code(code, on_stdout=stream("stdout"), on_stderr=stream("stderr"))
    finally:
        lines.put_nowait(None)
        await asyncio.shield(writer)
    await recorder.record(
        "code",
        name="python",
        parent_seq=parent_seq,
        payload={"code": code, "results": result.results, "error": result.error},
        duration_ms=(time.perf_counter() - started) * 1000,
    )
    if result.error:
        # The code raised (a SyntaxError, a missing file, ...): the call failed, whatever it
        # printed before. The model gets the error and the output so it can try again.
        raise ToolFailed(_code_error(result.error, result.stdout, result.stderr))
    out: dict[str, Any] = {"stdout": result.stdout, "stderr": result.stderr}
    if result.results:
        out["results"] = [
            r.get("text") or ", ".join(k for k in r if k != "is_main_result") for r in result.results
        ]
    return out


@action(
    ToolInfo(
        "csv.summarize",
        "python",
        "Summarise an uploaded CSV file with the platform's fixed analysis (run in the sandbox): rows and "
        "columns, totals, averages and ranges, totals per category, changes between the first and last "
        "period, missing values, duplicates and outliers. Returns a short report with the real figures.",
        parameters=params(
            {"file": string("the uploaded file's name; by default the run's `file` input or its only upload")}
        ),
    )
)
async def csv_summary(call: ToolCall, args: dict[str, Any]) -> str:
    """The platform's own analysis script (coherex/runtime/csv_summary.py), run in the sandbox."""
    from coherex.runtime.csv_summary import sandbox_code

    run = _run_of(call)
    uploads = sorted(run.files)
    name = args.get("file") or run.execution.inputs.get("file") or (uploads[0] if len(uploads) == 1 else None)
    if not isinstance(name, str) or not name.strip():
        raise ToolFailed("csv.summarize needs a file: upload a CSV for the run, or give its name as `file`.")
    name = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    if uploads and name not in run.files:
        raise ToolFailed(f"There is no uploaded file {name!r}; the uploads are: {', '.join(uploads)}.")
    question = run.execution.inputs.get("question")  # the report puts what it asks about first
    out = await run_python.run(
        call, {"code": sandbox_code(name, question if isinstance(question, str) else "")}
    )
    if out.get("error"):
        raise ToolFailed(f"The analysis of {name} failed: {str(out['error'])[-500:]}")
    return str(out.get("stdout") or "").strip()


def _code_error(error: Any, stdout: Any, stderr: Any) -> str:
    """One message for code that raised: `Name: value`, the end of its traceback and of its output."""
    error = error if isinstance(error, dict) else {"name": "Error", "value": str(error)}
    lines = [f"{error.get('name') or 'Error'}: {error.get('value') or ''}".rstrip(": ")]
    trace = str(error.get("traceback") or "").strip()
    if trace:
        lines.append("Traceback (last lines):\n" + "\n".join(trace.splitlines()[-8:]))
    for label, text in (("stdout", stdout), ("stderr", stderr)):
        text = "".join(text) if isinstance(text, list) else str(text or "")
        if text.strip():
            lines.append(f"{label} before the error:\n{text.strip()[-1500:]}")
    return "\n".join(lines)


PROVIDER = Provider("python", (run_python, csv_summary))
