"""What a test run's rich results look like in the chat: real results from the local sandbox
(matplotlib, Plotly, pandas) turned into Chainlit elements."""

from __future__ import annotations

import re

import chainlit as cl
from chainlit.context import init_http_context

from coherex.chat.render import MAX_TABLE_ROWS, rich_elements
from coherex.sandbox import open_sandbox

CODE = """\
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import plotly.graph_objects as go
plt.plot([1, 2, 3], [3, 1, 2]); plt.show()
display(go.Figure(go.Bar(x=["a", "b"], y=[1, 2])))
pd.DataFrame({"product": [f"p{i}" for i in range(60)], "sold": range(60)})
"""


async def test_charts_figures_and_tables_become_chat_elements(local_sandbox):
    _, settings = local_sandbox
    async with await open_sandbox(settings) as sbx:
        result = await sbx.run_code(CODE, timeout=120)
    assert result.error is None, result.error
    init_http_context()  # elements belong to a chat context, as during a run in the chat
    elements = rich_elements(result.results)
    by_kind = {type(e).__name__: e for e in elements}
    assert len(elements) == 3 and set(by_kind) == {"Image", "Plotly", "Text"}, elements

    image, figure, table = by_kind["Image"], by_kind["Plotly"], by_kind["Text"]
    assert isinstance(image, cl.Image) and image.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert isinstance(figure, cl.Plotly) and figure.figure.data[0].type == "bar"
    lines = table.content.splitlines()
    assert lines[0] == "| product | sold |" and lines[2] == "| p0 | 0 |"
    assert len([line for line in lines if re.match(r"\| p\d+ \|", line)]) == MAX_TABLE_ROWS
    assert lines[-1] == f"… {60 - MAX_TABLE_ROWS} more rows"


def test_json_that_is_not_a_figure_is_not_drawn():
    assert rich_elements([{"json": {"data": [1, 2, 3]}}, {"json": {"answer": 42}}]) == []
