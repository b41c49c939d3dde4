"""schema/current.sql is the readable truth of the schema: it must match what the migrations build."""

from __future__ import annotations

import difflib
import re
import subprocess

import psycopg
import pytest

from coherex.store.snapshot import SNAPSHOT_PATH, dump, pg_dump_binary, render, stale_message


def _major(version_text: str) -> int:
    return int(re.search(r"(\d+)", version_text).group(1))


def test_checked_in_snapshot_matches_the_migrated_schema(pg_server, db_urls):
    # db_urls is a database made from the session's template, which was migrated from scratch.
    with psycopg.connect(db_urls.admin) as conn:
        server_major = int(conn.execute("show server_version_num").fetchone()[0]) // 10000
    client = subprocess.run(
        [str(pg_dump_binary()), "--version"], check=True, capture_output=True, text=True
    ).stdout
    if server_major != _major(client.split()[-1]):
        pytest.skip("the snapshot is defined by the bundled Postgres; TEST_DATABASE_URL runs another version")
    fresh = render(dump(db_urls.admin))
    current = SNAPSHOT_PATH.read_text() if SNAPSHOT_PATH.exists() else ""
    diff = list(difflib.unified_diff(current.splitlines(), fresh.splitlines(), "checked in", "migrated", n=1))
    assert not diff, stale_message() + "\n" + "\n".join(diff[:40])


def test_snapshot_is_readable_per_table_and_free_of_noise():
    text = SNAPSHOT_PATH.read_text()
    assert "Owner:" not in text and "\\restrict" not in text and "Dumped from" not in text
    # a table's RLS flag, policies and grants follow it, before the next table starts
    table = text.index("-- TABLE: agent_executions in public\n")
    next_table = text.index("-- TABLE: ", table + 1)
    block = text[table:next_table]
    assert "ALTER TABLE public.agent_executions ENABLE ROW LEVEL SECURITY;" in block
    assert "CREATE POLICY agent_executions_select ON public.agent_executions" in block
    assert "GRANT SELECT" in block and "ON TABLE public.agent_executions TO authenticated" in block
