"""The offline model's answer after a tool call: a call written out is no answer (the 135M model
copied "I called: csv_summarize({})" as its final text); then the tool's own result is given."""

from __future__ import annotations

import pytest

from coherex.llm.local_model import _echoes_a_call, _last_tool_result

TOOLS = [{"type": "function", "function": {"name": "csv_summarize", "parameters": {}}}]


@pytest.mark.parametrize(
    "text", ["", "I called: csv_summarize({})", "csv_summarize({})", '  csv_summarize({"file": "a.csv"})\n']
)
def test_a_written_out_call_is_no_answer(text):
    assert _echoes_a_call(text, TOOLS)


@pytest.mark.parametrize("text", ["The total amount is 60.", "north (40) sold more than south (20)."])
def test_a_sentence_is_an_answer(text):
    assert not _echoes_a_call(text, TOOLS)


def test_only_the_last_message_counts_as_the_tool_result():
    assert _last_tool_result(
        [{"role": "user", "content": "hi"}, {"role": "tool", "content": " total 60 "}]
    ) == ("total 60")
    assert _last_tool_result([{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]) == ""
