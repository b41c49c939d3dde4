"""Offline default model: load time, time to first token, tokens/s, tool-call turn time.

Run: python bench/bench_llm.py [--runs N]. Prints a summary and writes bench/results/llm_offline.json
with the machine description. Numbers depend on other load on the machine (load average recorded).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "llm_offline.json"

PYTHON_TOOL = {
    "type": "function",
    "function": {
        "name": "python",
        "description": "Run Python code in the sandbox",
        "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    },
}
ANALYSIS = [
    {
        "role": "system",
        "content": "You are a data analyst. Use the python tool. sales.csv has columns region, amount.",
    },
    {"role": "user", "content": "What is the total amount per region in sales.csv?"},
]
QUESTION = [{"role": "user", "content": "Explain in three sentences what a CSV file is."}]


def machine() -> dict[str, object]:
    import torch

    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        "?",
    )
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "load_average_1m": os.getloadavg()[0],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


async def main(runs: int) -> dict[str, object]:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    from coherex.llm.local_model import MODEL_NAME, LocalModelClient

    client = LocalModelClient.shared()
    load_s = time.perf_counter() - started

    ttfts, rates, tool_turns = [], [], []
    for _ in range(runs):
        first: list[float] = []
        t0 = time.perf_counter()
        result = await client.chat(
            QUESTION, stream_handler=lambda _: first or first.append(time.perf_counter())
        )
        end = time.perf_counter()
        ttfts.append((first[0] - t0) * 1000)
        rates.append((result.usage.completion_tokens - 1) / (end - first[0]))
        call = await client.chat(ANALYSIS, [PYTHON_TOOL])
        assert call.tool_calls and "code" in call.tool_calls[0].arguments
        tool_turns.append({"ms": call.duration_ms, "completion_tokens": call.usage.completion_tokens})

    return {
        "model": MODEL_NAME,
        "machine": machine(),
        "runs": runs,
        "load_s": round(load_s, 2),
        "ttft_ms_p50": round(statistics.median(ttfts), 1),
        "decode_tokens_per_s_p50": round(statistics.median(rates), 1),
        "python_tool_call_turn_ms_p50": round(statistics.median(t["ms"] for t in tool_turns), 1),
        "python_tool_call_completion_tokens": tool_turns[0]["completion_tokens"],
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    summary = asyncio.run(main(parser.parse_args().runs))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
