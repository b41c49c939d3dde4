"""What the sandbox's rich results look like in the chat: charts (PNG images and Plotly figures)
and tables (the data of a DataFrame), as Chainlit elements."""

from __future__ import annotations

import base64
import json
from typing import Any

import chainlit as cl

MAX_TABLE_ROWS = 50


def rich_elements(results: list[dict[str, Any]]) -> list[Any]:
    out: list[Any] = []
    for i, result in enumerate(results):
        if result.get("png"):
            out.append(
                cl.Image(name=f"chart-{i + 1}.png", content=base64.b64decode(result["png"]), display="inline")
            )
        if _is_plotly(result.get("json")):
            import plotly.io

            figure = plotly.io.from_json(json.dumps(result["json"]), skip_invalid=True)
            out.append(cl.Plotly(name=f"chart-{i + 1}", figure=figure, display="inline", size="large"))
        if isinstance(result.get("data"), dict) and result["data"].get("columns"):
            out.append(
                cl.Text(name=f"table-{i + 1}", content=markdown_table(result["data"]), display="inline")
            )
    return out


def _is_plotly(value: Any) -> bool:
    """A Plotly figure's JSON: traces under `data`, each with a `type` (what `fig.to_json()` gives)."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("data"), list)
        and all(isinstance(t, dict) and "type" in t for t in value["data"])
    )


def markdown_table(data: dict[str, Any]) -> str:
    columns = [str(c) for c in data["columns"]]
    rows = data.get("rows") or []
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows[:MAX_TABLE_ROWS]]
    total = data.get("total_rows", len(rows))
    if total > MAX_TABLE_ROWS:
        lines.append(f"\n… {total - MAX_TABLE_ROWS} more rows")
    return "\n".join(lines)
