"""The builder's own latency: from "send" to the first streamed token, and to the first shown
(validated) spec, with the fake OpenAI server answering instantly — so what is measured is the
platform: prompt assembly, the team's data from Postgres, the HTTP round trips through the real
`openai` client, validation and the repair bookkeeping.

Run: python bench/bench_builder.py [--runs N]; writes bench/results/builder_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import percentiles, record  # noqa: E402
from coherex.builder import BuilderSession, BuilderUI  # noqa: E402
from coherex.llm.openai_client import OpenAIClient  # noqa: E402
from coherex.store.db import Database, Identity  # noqa: E402
from coherex.testing.fake_openai import FakeOpenAI, Text, ToolCall  # noqa: E402
from coherex.testing.postgres import TestPostgres  # noqa: E402

SPEC = (Path(__file__).resolve().parents[1] / "templates" / "csv-analysis.yaml").read_text()


class FirstToken(BuilderUI):
    def __init__(self, started: float):
        self.started, self.at = started, None

    async def token(self, text: str) -> None:
        if self.at is None:
            self.at = time.perf_counter() - self.started


async def main(runs: int) -> None:
    server = TestPostgres.start()
    urls = server.create_database()
    try:
        with FakeOpenAI() as fake:
            llm = OpenAIClient(api_key=fake.api_key, base_url=fake.base_url)
            async with Database(urls.app, min_size=2, max_size=4) as db:
                async with db.session(Identity.system()) as s:
                    user = await s.users.create("bench@example.com", password="correct horse")
                async with db.session(Identity.user(user.id)) as s:
                    team = await s.teams.create("bench", "Bench")
                first_token, first_spec = [], []
                for _ in range(runs + 3):  # 3 warm-up rounds
                    fake.script([Text("What should the agent do with the data?")])
                    builder = BuilderSession(db, Identity.user(user.id), team.id, llm=llm)
                    ui = FirstToken(time.perf_counter())
                    await builder.send("Analyse a CSV file I upload", ui)
                    fake.script([ToolCall("draft_spec", {"yaml": SPEC}), Text("Here is the draft.")])
                    started = time.perf_counter()
                    turn = await builder.send("Find what is unusual in it")
                    assert turn.draft_changed
                    first_token.append(ui.at * 1000)
                    first_spec.append((time.perf_counter() - started) * 1000)
            await llm.aclose()
    finally:
        server.drop_database(urls)
        server.stop()
    record(
        "builder_latency",
        {
            "send_to_first_token": percentiles(first_token[3:]),
            "send_to_first_shown_spec": percentiles(first_spec[3:]),
            "note": "fake OpenAI server answering instantly; first spec = draft_spec tool call + validation "
            "+ closing text (two LLM round trips)",
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    asyncio.run(main(parser.parse_args().runs))
