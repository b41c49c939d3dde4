"""The deterministic parts of the offline-proof templates: the CSV analysis script and the
extractive knowledge answer (what the model only phrases)."""

from __future__ import annotations

import subprocess
import sys

from coherex.runtime.csv_summary import sandbox_code, summarize_file
from coherex.runtime.extractive import extract_answer


def test_the_csv_report_has_the_real_figures(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_text(
        "month;region;sales\n2026-01;north;100\n2026-01;south;80\n2026-02;north;120\n2026-02;south;50\n"
        "2026-02;south;50\n"
    )
    report = summarize_file(path)["report"]
    assert "sales.csv: 5 rows, 3 columns (month, region, sales)." in report  # `;` was detected
    assert "sales: total 400, average 80, min 50, max 120." in report
    assert "sales by region: north 220, south 180." in report
    assert "sales by region from 2026-01 to 2026-02: north 100 → 120 (+20), south 80 → 100 (+20)." in report
    assert "Duplicate rows: 1." in report


def test_the_line_the_question_asks_about_comes_first(tmp_path):
    """The offline model quotes the start of a report: what the question names goes right after the
    file's shape (the test run's answer to "which region…" used to miss the per-region totals)."""
    path = tmp_path / "data.csv"
    path.write_text("region,amount\nnorth,1200\nsouth,800\nnorth,300\neast,450\n")
    lines = summarize_file(path, "Which region has the highest total amount?")["report"].splitlines()
    assert lines[1] == "amount by region: north 1500, south 800, east 450."
    assert summarize_file(path)["report"].splitlines()[1].startswith("amount: total 2750")  # no question


def test_missing_values_and_outliers_are_reported(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("id,amount\n" + "".join(f"{i},{10 + i % 3}\n" for i in range(12)) + "99,\n100,5000\n")
    report = summarize_file(path)["report"]
    assert "Missing values: amount 1." in report and "Unusual values in amount: 5000." in report


def test_the_sandbox_code_runs_as_a_script_and_prints_the_report(tmp_path):
    (tmp_path / "data.csv").write_text("region,amount\nnorth,10\nsouth,20\nnorth,30\n")
    out = subprocess.run(
        [sys.executable, "-c", sandbox_code("data.csv")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert (
        "amount: total 60, average 20, min 10, max 30." in out
        and "amount by region: north 40, south 20." in out
    )


def test_the_extractive_answer_quotes_the_passage_and_cites_it():
    passages = [
        {
            "ref": 1,
            "title": "Refunds",
            "text": "# Refunds\nCustomers can ask for a refund within 30 days "
            "of purchase.\nOur office is in Lisbon.",
        },
        {"ref": 2, "title": "Holidays", "text": "New employees get 25 vacation days a year."},
    ]
    found = extract_answer("How many vacation days do new employees get?", passages)
    assert found["answer"].startswith("New employees get 25 vacation days a year. [2]")
    assert found["sources"][0] == "[2] Holidays"
    assert extract_answer("What is the parking fee?", passages)["sources"] == []
