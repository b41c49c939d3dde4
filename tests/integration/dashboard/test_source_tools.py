"""The Data sources page shows each source's tools as last listed (the tool cache of issue 19), the
same through both readers; another team sees none of them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from coherex.dashboard.auth import sign_jwt
from coherex.dashboard.data import SqlReader, SupabaseReader, SyncDatabase
from coherex.settings import reset_settings_cache
from coherex.store.db import Database, DatabaseUrls, Identity
from coherex.testing.fake_petstore import document
from coherex.testing.postgrest import PostgrestServer
from coherex.tools.providers.openapi import operations, tool_infos

from .conftest import PASSWORD, Tenant, make_tenant

APP = str(Path(__file__).resolve().parents[3] / "dashboard_app.py")


@dataclass
class Teams:
    urls: DatabaseUrls
    alpha: Tenant
    bravo: Tenant


async def _seed(urls: DatabaseUrls) -> Teams:
    db = await Database(urls.app, min_size=1, max_size=2).open()
    try:
        alpha, bravo = await make_tenant(db, "alpha"), await make_tenant(db, "bravo")
        async with db.session(alpha.identity) as s:
            pets = await s.sources.create(
                alpha.team_id, "pets", "http_api", {"base_url": "https://pets.example"}
            )
            await s.sources.create(alpha.team_id, "crm", "http_api", {"base_url": "https://crm.example"})
        # the tool cache as a source check leaves it (the port's writer, the provider's tools)
        tools = [t.to_json() for t in tool_infos(operations(document()))]
        async with db.session(Identity.system()) as s:
            await s.sources.set_tools(pets.id, tools)
    finally:
        await db.close()
    return Teams(urls, alpha, bravo)


@pytest.fixture(scope="module")
def teams(pg_server) -> Teams:
    urls = pg_server.create_database()
    yield asyncio.run(_seed(urls))
    pg_server.drop_database(urls)


def test_the_page_lists_a_sources_tools_with_their_last_check(teams: Teams, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", teams.urls.app)
    reset_settings_cache()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.text_input(key="email_input").input(teams.alpha.email)
    at.text_input(key="password_input").input(PASSWORD)
    at.button(key="sign_in").click().run()
    at.sidebar.radio(key="page").set_value("Data sources").run()
    assert not at.exception, at.exception
    sources = at.dataframe[0].value.set_index("name")
    assert sources.loc["pets", "tools"] == 19 and pd.isna(sources.loc["crm", "tools"])
    assert [e.label for e in at.expander] == [
        f"pets — 19 tool(s), last listed {sources.loc['pets', 'tools_checked_at']:%Y-%m-%d %H:%M} UTC"
    ]
    tools = at.expander[0].dataframe[0].value.set_index("tool")
    assert len(tools) == 19
    assert tools.loc["getPetById", "access"] == "read" and tools.loc["addPet", "access"] == "write"
    assert tools.loc["getPetById", "description"].startswith("Find pet by ID.")
    reset_settings_cache()


def test_both_readers_agree_and_another_team_sees_no_tools(teams: Teams):
    server = PostgrestServer.start(teams.urls.app)
    database = SyncDatabase(teams.urls.app)
    try:

        def readers(who: Tenant):
            token = sign_jwt(server.jwt_secret, user_id=who.user_id)
            return SqlReader(database, who.identity), SupabaseReader(server.url, server.anon_key, token)

        sql, rest = readers(teams.alpha)
        team = teams.alpha.team_id
        pd.testing.assert_frame_equal(sql.source_tools(team), rest.source_tools(team))
        pd.testing.assert_frame_equal(sql.data_sources(team), rest.data_sources(team))
        listed = sql.source_tools(team)
        assert list(listed["tool"][:2]) == ["updatePet", "addPet"]  # in the document's order
        assert set(listed["source"]) == {"pets"}
        for reader in readers(teams.bravo):
            assert reader.source_tools(team).empty and reader.data_sources(team).empty
    finally:
        database.close()
        server.stop()
