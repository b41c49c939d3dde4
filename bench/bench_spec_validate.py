"""Spec validation: throughput (specs/s) of a typical template (parse YAML + validate, as
`coherex validate` and the API do), and the cost of refusing hostile files (time, peak memory).
Issue 3 asks that a hostile file is refused within a second with bounded memory."""

from __future__ import annotations

import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import percentiles, record  # noqa: E402

from coherex.spec import parse, validate  # noqa: E402
from coherex.spec.templates import get_template  # noqa: E402

SECONDS = 3.0
TYPICAL = "email-digest"
SOURCES = {"work-mail": "gmail", "team-slack": "slack"}

HOSTILE = {
    "billion_laughs": 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(9)),
    "deep_nesting_1mib": "a: " + "[" * 500_000 + "]" * 500_000,
    "huge_file_2mib": "a: " + "x" * 2 * 1024 * 1024,
    "binary_1mib": os.urandom(1024 * 1024 - 1).replace(b"\x00", b"\x01") + b"\x00",
}


def throughput(text: str, **kwargs) -> float:
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < SECONDS:
        assert validate(text, **kwargs).ok
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    text = get_template(TYPICAL).text()
    validate(text)  # warm-up: imports, pydantic schema build
    samples = []
    for _ in range(200):
        t = time.perf_counter()
        validate(text)
        samples.append((time.perf_counter() - t) * 1000)
    data = parse(text)
    results: dict = {
        "nproc": len(os.sched_getaffinity(0)),
        "typical_spec": f"templates/{TYPICAL}.yaml ({len(text)} bytes)",
        "yaml_text_specs_per_s": round(throughput(text)),
        "yaml_text_with_references_specs_per_s": round(throughput(text, data_sources=SOURCES)),
        "parsed_data_specs_per_s": round(throughput(data)),
        "one_validation": percentiles(samples),
        "hostile": {},
    }
    for name, content in HOSTILE.items():
        tracemalloc.start()
        t = time.perf_counter()
        report = validate(content)
        elapsed = (time.perf_counter() - t) * 1000
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert not report.ok
        results["hostile"][name] = {
            "refused_in_ms": round(elapsed, 2),
            "peak_python_mib": round(peak / 2**20, 2),
            "message": str(report.problems[0]),
        }
    record("spec_validate", results)


if __name__ == "__main__":
    main()
