"""The `csv.summarize` tool: a fixed analysis of an uploaded CSV file, run in the run's sandbox.

The platform, not the model, computes the figures: this module's source is sent to the sandbox as
it is (standard library only, so it runs in any sandbox image, in milliseconds) and prints a short
report in plain sentences — shape, columns, totals and ranges, totals per category, the change
from the first to the last period per category when there is a date or period column, missing
values, duplicates and outliers. A model, even the offline 135M one, only has to phrase it.

`summarize_file(path)` is also importable on the host (the unit tests run it directly).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
from pathlib import Path
from typing import Any

MAX_ROWS = 1_000_000
MAX_GROUPS = 12  # categories listed per column
_PERIOD = re.compile(r"(date|day|week|month|year|quarter|period|time)", re.IGNORECASE)
_ISO = re.compile(r"^\d{4}-\d{2}(-\d{2})?")


def _number(text: str) -> float | None:
    t = text.strip().replace(",", "").replace("$", "").replace("€", "").replace("£", "").rstrip("%")
    if not t:
        return None
    try:
        value = float(t)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def fmt(value: float) -> str:
    """60 → '60', 20.5 → '20.5', 1/3 → '0.33': numbers as a person would quote them."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _read(path: Path) -> tuple[list[str], list[list[str]], str]:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    sample = text[:65536]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    rows = [r for r in csv.reader(io.StringIO(text), delimiter=delimiter) if any(c.strip() for c in r)]
    if not rows:
        return [], [], delimiter
    header = [h.strip() or f"column {i + 1}" for i, h in enumerate(rows[0])]
    data = [
        r + [""] * (len(header) - len(r)) if len(r) < len(header) else r[: len(header)]
        for r in rows[1:MAX_ROWS]
    ]
    return header, data, delimiter


def summarize_file(path: str | Path, question: str = "") -> dict[str, Any]:
    """The figures of the file and a report in sentences (`report`), for a person or a model."""
    path = Path(path)
    header, rows, delimiter = _read(path)
    if not header:
        return {"file": path.name, "rows": 0, "report": f"{path.name} is empty."}
    columns = list(zip(*rows, strict=False)) if rows else [() for _ in header]
    numeric, categorical, periods = {}, {}, []
    missing = {}
    for name, values in zip(header, columns, strict=False):
        filled = [v.strip() for v in values if v.strip()]
        missing[name] = len(values) - len(filled)
        numbers = [n for v in filled if (n := _number(v)) is not None]
        if (
            filled
            and len(numbers) >= 0.9 * len(filled)
            and not (_PERIOD.search(name) and _ISO.match(filled[0]))
        ):
            numeric[name] = numbers
        else:
            distinct = sorted(set(filled))
            if _PERIOD.search(name) or (filled and all(_ISO.match(v) for v in filled[:20])):
                periods.append(name)
            elif 1 <= len(distinct) <= max(MAX_GROUPS * 4, 1):
                categorical[name] = distinct
    lines = [f"{path.name}: {len(rows)} rows, {len(header)} columns ({', '.join(header)})."]
    stats = {}
    for name, numbers in numeric.items():
        if not numbers:
            continue
        s = {
            "count": len(numbers),
            "total": sum(numbers),
            "mean": statistics.fmean(numbers),
            "min": min(numbers),
            "max": max(numbers),
        }
        stats[name] = s
        lines.append(
            f"{name}: total {fmt(s['total'])}, average {fmt(s['mean'])}, min {fmt(s['min'])}, "
            f"max {fmt(s['max'])}."
        )
    groups = {}
    index = {h: i for i, h in enumerate(header)}
    for cat, distinct in categorical.items():
        if not 2 <= len(distinct) <= MAX_GROUPS * 4:
            continue
        for num in stats:
            totals: dict[str, float] = {}
            for row in rows:
                value = _number(row[index[num]])
                if value is not None:
                    key = row[index[cat]].strip() or "(blank)"
                    totals[key] = totals.get(key, 0.0) + value
            ranked = sorted(totals.items(), key=lambda kv: -kv[1])
            groups[f"{num} by {cat}"] = dict(ranked)
            shown = ", ".join(f"{k} {fmt(v)}" for k, v in ranked[:MAX_GROUPS])
            more = f" (and {len(ranked) - MAX_GROUPS} more)" if len(ranked) > MAX_GROUPS else ""
            lines.append(f"{num} by {cat}: {shown}{more}.")
    changes = {}
    for period in periods[:1]:
        order = sorted({row[index[period]].strip() for row in rows if row[index[period]].strip()})
        if len(order) < 2:
            continue
        first, last = order[0], order[-1]
        for num in list(stats)[:2]:
            by: list[str | None] = [c for c in categorical if 2 <= len(categorical[c]) <= MAX_GROUPS * 4]
            for group in by[:1] or [None]:
                per: dict[str, list[float]] = {}
                for row in rows:
                    p = row[index[period]].strip()
                    value = _number(row[index[num]])
                    if value is None or p not in (first, last):
                        continue
                    key = row[index[group]].strip() if group else "all"
                    pair = per.setdefault(key, [0.0, 0.0])
                    pair[0 if p == first else 1] += value
                for key, (a, b) in sorted(per.items(), key=lambda kv: kv[1][1] - kv[1][0]):
                    changes[f"{num} {key}"] = {"from": a, "to": b, "change": b - a}
                parts = [
                    f"{k} {fmt(a)} → {fmt(b)} ({'+' if b >= a else ''}{fmt(b - a)})"
                    for k, (a, b) in sorted(per.items(), key=lambda kv: kv[1][1] - kv[1][0])
                ]
                where = f" by {group}" if group else ""
                lines.append(f"{num}{where} from {first} to {last}: {', '.join(parts)}.")
                if group and per:
                    worst = min(per.items(), key=lambda kv: kv[1][1] - kv[1][0])
                    if worst[1][1] < worst[1][0]:
                        lines.append(
                            f"The biggest drop in {num}: {worst[0]} ({fmt(worst[1][0])} → "
                            f"{fmt(worst[1][1])}, {fmt(worst[1][1] - worst[1][0])})."
                        )
    gaps = {k: v for k, v in missing.items() if v}
    if gaps:
        lines.append("Missing values: " + ", ".join(f"{k} {v}" for k, v in gaps.items()) + ".")
    duplicates = len(rows) - len({tuple(r) for r in rows})
    if duplicates:
        lines.append(f"Duplicate rows: {duplicates}.")
    outliers = {}
    for name, numbers in numeric.items():
        if len(numbers) >= 8:
            q = statistics.quantiles(numbers, n=4)
            spread = q[2] - q[0]
            far = [n for n in numbers if spread and (n < q[0] - 3 * spread or n > q[2] + 3 * spread)]
            if far:
                outliers[name] = far[:5]
                lines.append(f"Unusual values in {name}: {', '.join(fmt(n) for n in far[:5])}.")
    if not gaps and not duplicates and not outliers:
        lines.append("No missing values, duplicate rows or outliers.")
    return {
        "file": path.name,
        "rows": len(rows),
        "columns": header,
        "delimiter": delimiter,
        "numbers": stats,
        "groups": groups,
        "changes": changes,
        "missing": missing,
        "duplicates": duplicates,
        "outliers": outliers,
        "report": "\n".join(_relevant_first(lines, header, question)),
    }


def _relevant_first(lines: list[str], header: list[str], question: str) -> list[str]:
    """The shape line, then the lines naming most of the columns the question names: a small
    model quotes the start of a report, so the line that answers the question goes there."""
    asked = {h.lower() for h in header if re.search(rf"\b{re.escape(h.lower())}\b", question.lower())}
    if not asked:
        return lines

    def score(line: str) -> int:
        return -sum(1 for h in asked if re.search(rf"\b{re.escape(h)}\b", line.lower()))

    return lines[:1] + sorted(lines[1:], key=score)


def sandbox_code(file: str, question: str = "") -> str:
    """Python source that prints the report of `file` (in the sandbox's working directory)."""
    source = Path(__file__).read_text(encoding="utf-8")
    return (
        source + "\n\n_result = summarize_file(" + json.dumps(file) + ", " + json.dumps(question) + ")\n"
        "print(_result['report'])\n"
    )
