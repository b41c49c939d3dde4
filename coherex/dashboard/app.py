"""The Streamlit dashboard: sign-in, sidebar filters and one function per page.

Every number comes from the reader (`coherex.dashboard.data`) acting as the signed-in person;
this module only lays it out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

import pandas as pd
import plotly.express as px
import streamlit as st

from coherex.dashboard.auth import SignedIn, reader_for, sign_in, sign_in_with_chat_cookie
from coherex.dashboard.data import Filters, Reader, SyncDatabase
from coherex.errors import BackendError, CoherexError
from coherex.llm import model_in_use
from coherex.settings import get_settings
from coherex.spec import diff_specs
from coherex.store.db import resolve_urls

log = logging.getLogger("coherex.dashboard")

#: outcomes: a status, or 'completed_with_errors' for a completed run whose last tool call failed
STATUSES = [
    "pending",
    "running",
    "waiting_approval",
    "completed",
    "completed_with_errors",
    "failed",
    "cancelled",
    "timed_out",
]
STATUS_COLORS = {
    "completed": "#2e7d32",
    "completed_with_errors": "#f9a825",
    "failed": "#c62828",
    "timed_out": "#ef6c00",
    "cancelled": "#757575",
    "running": "#1565c0",
    "pending": "#90caf9",
    "waiting_approval": "#8e24aa",
}


@st.cache_resource(show_spinner=False)
def _database(url: str) -> SyncDatabase:
    return SyncDatabase(url)


def main() -> None:
    st.set_page_config(page_title="Coherex dashboard", page_icon=":bar_chart:", layout="wide")
    settings = get_settings()
    try:
        database = _database(resolve_urls(settings).app)
    except CoherexError as exc:
        st.error(str(exc))
        return
    if "user_id" not in st.session_state and not st.session_state.get("signed_out"):
        signed = sign_in_with_chat_cookie(database, st.context.cookies)  # single sign-on with the chat
        if signed is not None:
            _remember(signed)
    if "user_id" not in st.session_state:
        _sign_in_form(database)
        return
    if "reader" not in st.session_state:
        st.session_state.reader = reader_for(settings, database, st.session_state.user_id)
    reader: Reader = st.session_state.reader

    st.sidebar.markdown(f"**{st.session_state.email}**")
    if st.sidebar.button("Sign out", key="sign_out"):
        st.session_state.clear()
        st.session_state.signed_out = True  # not straight back in through the chat's cookie
        st.rerun()
    teams: dict[str, UUID] = st.session_state.teams
    if not teams:
        st.info("You are not a member of any team yet.")
        return
    team_id = teams[st.sidebar.selectbox("Team", list(teams), key="team")]
    page = st.sidebar.radio("Page", list(PAGES), key="page")
    try:
        PAGES[page](reader, team_id)
    except BackendError as exc:
        st.error(f"{exc}\n\nNothing is lost: reload the page when it is back.")
    except CoherexError as exc:
        st.error(str(exc))
    except Exception as exc:  # a message for people; the details go to the server's log
        log.exception("dashboard page %r failed", page)
        st.error(_unavailable(exc))


def _unavailable(exc: Exception) -> str:
    import httpx
    import psycopg
    import psycopg_pool

    if isinstance(exc, (psycopg.OperationalError, psycopg_pool.PoolTimeout)):
        return (
            "The database is not reachable right now, so this page cannot be shown. Nothing is lost: "
            "reload the page when it is back (`coherex db status` tells)."
        )
    if isinstance(exc, httpx.HTTPError):
        return f"The Supabase API did not answer ({type(exc).__name__}). Reload the page when it is back."
    return f"This page failed ({type(exc).__name__}); the details are in the dashboard's log."


def _sign_in_form(database: SyncDatabase) -> None:
    st.title("Coherex dashboard")
    st.caption(
        "Sign in with your Coherex account (the same as the chat). Signed in to the chat in this "
        "browser, on the same host? Then reload: the dashboard uses that login."
    )
    email = st.text_input("Email", key="email_input")
    password = st.text_input("Password", type="password", key="password_input")
    if st.button("Sign in", key="sign_in", type="primary"):
        try:
            signed = sign_in(database, email, password)
        except CoherexError as exc:  # too many failed tries, a database that is down
            st.error(str(exc))
            return
        if signed is None:
            st.error("Wrong email or password.")
            return
        _remember(signed)
        st.rerun()


def _remember(signed: SignedIn) -> None:
    st.session_state.signed_out = False
    st.session_state.user_id = signed.user.id
    st.session_state.email = signed.user.email
    st.session_state.teams = {t.name: t.id for t in signed.teams}


def _filters(reader: Reader, team_id: UUID) -> Filters:
    """Date range and agents from the sidebar (dates are whole UTC days, the end day included)."""
    today = datetime.now(UTC).date()
    picked = st.sidebar.date_input("Dates (UTC)", value=(today - timedelta(days=29), today), key="dates")
    days = list(picked) if isinstance(picked, (tuple, list)) else [picked]  # one date while picking a range
    first, last = days[0], days[-1]
    agents = reader.agents(team_id)
    names = st.sidebar.multiselect("Agents", list(agents["name"]), key="agents")
    ids = tuple(UUID(i) for i in agents.loc[agents["name"].isin(names), "id"])
    return Filters(team_id, _day(first), _day(last) + timedelta(days=1), ids)


def _day(d: date) -> datetime:
    return datetime.combine(d, time(0), tzinfo=UTC)


# ---------------------------------------------------------------------------- overview
def _delta(now: float | None, before: float | None, fmt: Callable[[float], str]) -> str | None:
    if now is None or before is None or pd.isna(now) or pd.isna(before):
        return None
    return fmt(now - before)


def _fmt(value: float | None, fmt: Callable[[float], str]) -> str:
    return "–" if value is None or pd.isna(value) else fmt(value)


def overview(reader: Reader, team_id: UUID) -> None:
    f = _filters(reader, team_id)
    st.header("Overview")
    now, before = reader.summaries(f)
    count = lambda v: f"{int(v):,}"  # noqa: E731
    pct = lambda v: f"{v:.1%}"  # noqa: E731
    secs = lambda v: f"{v / 1000:.2f} s"  # noqa: E731
    usd = lambda v: f"${v:,.2f}"  # noqa: E731
    tiles = [
        ("Executions", "executions", count, "normal"),
        ("Success rate", "success_rate", pct, "normal"),
        ("Completed with errors", "with_errors", count, "inverse"),
        ("Duration p50", "duration_p50_ms", secs, "inverse"),
        ("Duration p95", "duration_p95_ms", secs, "inverse"),
        ("Cost", "cost_usd", usd, "inverse"),
        ("Tokens", "tokens", count, "off"),
    ]
    for col, (label, key, fmt, colour) in zip(st.columns(len(tiles)), tiles, strict=False):

        def signed(v, fmt=fmt):
            return ("+" if v >= 0 else "-") + fmt(abs(v))

        col.metric(label, _fmt(now[key], fmt), _delta(now[key], before[key], signed), delta_color=colour)
    st.caption(
        f"Change against the previous {(f.end - f.start).days} days. "
        f"{int(now['active'])} execution(s) pending or running. A run *completed with errors* answered "
        "after a failed tool call that no later call fixed; it does not count as a success."
    )

    series = reader.timeseries(f, "day")
    st.subheader("Executions per day by outcome")
    if series.empty:
        st.info("No executions in this period.")
    else:
        fig = px.bar(series, x="bucket", y="executions", color="status", color_discrete_map=STATUS_COLORS)
        st.plotly_chart(fig, width="stretch")

    st.subheader("Cost and tokens")
    for tab, dimension in zip(
        st.tabs(["By agent", "By model", "By member"]), ["agent", "model", "member"], strict=False
    ):
        with tab:
            by = reader.cost_by(f, dimension)
            if not by.empty:
                st.plotly_chart(
                    px.bar(by, x="key", y="cost_usd", labels={"key": dimension, "cost_usd": "cost (USD)"}),
                    width="stretch",
                )
            st.dataframe(by.rename(columns={"key": dimension}), hide_index=True, key=f"cost_{dimension}")

    st.subheader("Top failing agents")
    st.dataframe(
        reader.top_failing(f),
        hide_index=True,
        key="top_failing",
        column_config={"failure_rate": st.column_config.NumberColumn(format="percent")},
    )


# ---------------------------------------------------------------------------- executions
def executions(reader: Reader, team_id: UUID) -> None:
    f = _filters(reader, team_id)
    st.header("Executions")
    statuses = st.multiselect("Status", STATUSES, key="status_filter")
    table = reader.executions(f, statuses, limit=500)
    st.caption(f"{len(table)} most recent executions (up to 500).")
    st.dataframe(table, hide_index=True, key="executions_table")
    if table.empty:
        return
    labels = {
        f"{r.id[:8]} · {r.agent} · {r.outcome.replace('_', ' ')} · {r.created_at:%Y-%m-%d %H:%M}": r.id
        for r in table.itertuples()
    }
    chosen = st.selectbox("Open an execution", list(labels), key="execution_pick")
    execution_detail(reader, team_id, UUID(labels[chosen]))


def execution_detail(reader: Reader, team_id: UUID, execution_id: UUID) -> None:
    run = reader.execution(team_id, execution_id)
    if run is None:
        st.warning("This execution is not visible to you.")
        return
    if run["status"] in ("pending", "running"):
        # a short poll: the fragment re-runs on its own while the run is live
        st.fragment(run_every=get_settings().dashboard_poll_seconds)(_execution_body)(
            reader, team_id, execution_id
        )
    else:
        _execution_body(reader, team_id, execution_id, run)


def _execution_body(reader: Reader, team_id: UUID, execution_id: UUID, run: dict | None = None) -> None:
    run = run or reader.execution(team_id, execution_id)
    if run is None:
        return
    st.subheader(f"{run['agent']} · v{run['agent_version']} · {run['outcome'].replace('_', ' ')}")
    cols = st.columns(5)
    cols[0].metric("Spec version", f"v{run['agent_version']}")
    cols[1].metric("Tokens", f"{int(run['tokens_in']) + int(run['tokens_out']):,}")
    cols[2].metric("Cost", f"${run['cost_usd']:.6f}")
    cols[3].metric("Duration", _fmt(run["duration_ms"], lambda v: f"{v / 1000:.2f} s"))
    cols[4].metric("Steps", f"{run['events']}")
    if run["error"]:
        st.error(run["error"])
    if run["outcome"] == "completed_with_errors":
        st.warning(
            f"Completed with errors: the answer came after a failed tool call that nothing fixed "
            f"({run['last_tool_error']})."
        )
    events = reader.events(team_id, execution_id)
    failed = [
        f"✗ {e.name} (step {e.seq}): {e.payload.get('content', '')}"
        for e in events.itertuples()
        if e.type == "tool_result" and e.payload.get("ok") is False
    ]
    if failed:
        st.markdown(f"**Failed tool calls ({len(failed)})**")
        st.code("\n".join(failed), language="text")
    _sub_agent_runs(reader, team_id, events)
    st.dataframe(events.assign(payload=events["payload"].map(str)), hide_index=True, key="events_table")
    logs = events[events["type"].isin(["stdout", "stderr", "log", "error"])]
    st.markdown("**Logs**")
    st.code(
        "\n".join(
            f"[{e.type}] {e.payload.get('message') or e.payload.get('text') or e.payload}"
            for e in logs.itertuples()
        )
        or "(no log lines)",
        language="text",
    )


def _sub_agent_runs(reader: Reader, team_id: UUID, events: pd.DataFrame) -> None:
    """The runs this one started as sub-agents, each under the tool step that called it (a tree:
    each child's own sub-agents indented below it)."""
    rows: list[dict[str, Any]] = []

    def walk(frame: pd.DataFrame, depth: int) -> None:
        steps = {e.seq: e.name for e in frame.itertuples()}
        for e in frame.itertuples():
            if e.type != "log" or e.name != "sub_agent" or len(rows) >= 200:
                continue
            child_id = UUID(e.payload["execution_id"])
            child = reader.execution(team_id, child_id) or {}
            rows.append(
                {
                    "called by": "    " * depth + f"step {e.parent_seq} ({steps.get(e.parent_seq, '?')})",
                    "agent": f"{e.payload.get('agent')} v{e.payload.get('version')}",
                    "outcome": str(child.get("outcome") or child.get("status") or "not visible").replace(
                        "_", " "
                    ),
                    "cost_usd": child.get("cost_usd"),
                    "duration_ms": child.get("duration_ms"),
                    "execution": str(child_id),
                }
            )
            if child:
                walk(reader.events(team_id, child_id), depth + 1)

    walk(events, 0)
    if rows:
        st.markdown(f"**Sub-agent runs ({len(rows)})**")
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="sub_agents_table")


# ---------------------------------------------------------------------------- agents
def agents(reader: Reader, team_id: UUID) -> None:
    st.header("Agents")
    table = reader.agents(team_id)
    # the model runs use: the offline model answers whatever a spec asks for when no key is set
    table["model"] = [model_in_use(m or None) for m in table["model"]]
    st.dataframe(table.drop(columns=["id"]), hide_index=True, key="agents_table")
    if table.empty:
        return
    name = st.selectbox("Agent", list(table["name"]), key="agent_pick")
    agent_id = UUID(table.loc[table["name"] == name, "id"].iloc[0])
    versions = reader.versions(team_id, agent_id)
    st.dataframe(versions.drop(columns=["spec_yaml"]), hide_index=True, key="versions_table")
    numbers = list(versions["version"])
    shown = st.selectbox("Show version", numbers, index=len(numbers) - 1, key=f"version_pick_{name}")
    yaml_of = dict(zip(versions["version"], versions["spec_yaml"], strict=False))
    st.code(yaml_of[shown], language="yaml")
    if len(numbers) > 1:
        a, b = st.columns(2)
        va = a.selectbox("Diff from", numbers, index=len(numbers) - 2, key=f"diff_a_{name}")
        vb = b.selectbox("to", numbers, index=len(numbers) - 1, key=f"diff_b_{name}")
        diff = diff_specs(yaml_of[va], yaml_of[vb], f"{name} v{va}", f"{name} v{vb}")
        st.code(diff or "(the two versions are the same)", language="diff")


# ---------------------------------------------------------------------------- knowledge
def knowledge(reader: Reader, team_id: UUID) -> None:
    st.header("Knowledge base")
    collections = reader.collections(team_id)
    st.dataframe(collections, hide_index=True, key="collections_table")
    if collections.empty:
        return
    name = st.selectbox("Collection", list(collections["name"]), key="collection_pick")
    st.dataframe(reader.documents(team_id, name), hide_index=True, key="documents_table")
    query = st.text_input("Search this collection", key="kb_query")
    if query.strip():
        try:
            hits = reader.search(team_id, name, query, k=10)
        except CoherexError as exc:
            st.error(str(exc))
            return
        if hits.empty:
            st.info("No passage matches.")
        for i, hit in enumerate(hits.itertuples(), 1):
            st.markdown(f"**{i}. {hit.title}** · `{hit.source}` · score {hit.rank:.4f}")
            st.markdown(hit.highlight)


# ---------------------------------------------------------------------------- sources, audit, usage
def data_sources(reader: Reader, team_id: UUID) -> None:
    st.header("Data sources")
    web = (get_settings().public_url or "http://localhost:8000").rstrip("/")
    st.markdown(
        f"[Connect a data source]({web}/connect) — Slack, GitHub, an HTTP API, Postgres, or sign in "
        "to Gmail; credentials are checked with the service, then stored encrypted."
    )
    table = reader.data_sources(team_id)
    if table.empty:
        st.info(
            "No data source is connected yet. Agents reach Slack, GitHub, Gmail, HTTP APIs and databases "
            "through data sources: connect one with the link above (or `coherex sources add`)."
        )
    failing = table[table["status"] != "active"]
    st.metric("Not healthy", len(failing))
    st.dataframe(table, hide_index=True, key="sources_table")
    source_tools(reader, team_id, table)


def source_tools(reader: Reader, team_id: UUID, sources: pd.DataFrame) -> None:
    """The tools each source offered when last listed (MCP servers, OpenAPI documents)."""
    listed = sources[sources["tools_checked_at"].notna()]
    if listed.empty:
        return
    st.subheader("Tools of data sources")
    st.caption(
        "As last listed by `coherex sources test NAME` (and on a schedule); agents pick them with `use:`."
    )
    tools = reader.source_tools(team_id)
    for row in listed.itertuples():
        own = tools[tools["source"] == row.name][["tool", "access", "description"]]
        checked = f"{row.tools_checked_at:%Y-%m-%d %H:%M} UTC"
        with st.expander(f"{row.name} — {len(own)} tool(s), last listed {checked}"):
            st.dataframe(own, hide_index=True, key=f"tools_{row.name}")


def audit_log(reader: Reader, team_id: UUID) -> None:
    st.header("Audit log")
    table = reader.audit(team_id)
    if table.empty:
        st.info("No entries — or you are not an admin of this team (only admins read the audit log).")
        return
    actions = st.multiselect("Actions", sorted(table["action"].unique()), key="audit_actions")
    st.dataframe(
        table[table["action"].isin(actions)] if actions else table, hide_index=True, key="audit_table"
    )


def usage(reader: Reader, team_id: UUID) -> None:
    st.header("Usage and quotas")
    table = reader.usage(team_id)
    if table.empty:
        st.info("No usage recorded yet.")
        return
    month = table.iloc[0]
    a, b = st.columns(2)
    quota_runs, quota_cost = month["quota_executions_month"], month["quota_cost_month_usd"]
    a.metric(
        f"Executions in {month['period']:%B %Y}",
        f"{int(month['executions']):,}" + ("" if pd.isna(quota_runs) else f" of {int(quota_runs):,}"),
    )
    b.metric(
        f"Cost in {month['period']:%B %Y}",
        f"${month['cost_usd']:,.2f}" + ("" if pd.isna(quota_cost) else f" of ${quota_cost:,.2f}"),
    )
    if not pd.isna(quota_runs) and quota_runs:
        st.progress(
            min(1.0, int(month["executions"]) / int(quota_runs)), text="of the monthly execution quota"
        )
    st.dataframe(table, hide_index=True, key="usage_table")


PAGES: dict[str, Callable[[Reader, UUID], None]] = {
    "Overview": overview,
    "Executions": executions,
    "Agents": agents,
    "Knowledge base": knowledge,
    "Data sources": data_sources,
    "Audit log": audit_log,
    "Usage and quotas": usage,
}
from coherex.dashboard.approvals_page import approvals as _approvals  # noqa: E402

PAGES["Approvals"] = _approvals
