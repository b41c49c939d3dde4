"""The dashboard's "Approvals" page: tool calls that wait for a person — which agent, which call
with which arguments, who started the run, since when and until when — and, for members, the
decision (approve, reject with a message the model reads)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from uuid import UUID

import streamlit as st

from coherex.dashboard.data import Reader, frame
from coherex.errors import UserError

COLS = "id, execution_id, agent, tool, arguments, reason, trigger, started_by, created_at, expires_at"


def approvals(reader: Reader, team_id: UUID) -> None:
    st.header("Approvals")
    table = frame(reader._call("dashboard_approvals", {"p_team": str(team_id)}), COLS)
    st.metric("Waiting", len(table))
    if table.empty:
        st.info(
            "Nothing waits for approval. Tools with `approval: always` (or rules that match) pause their "
            "run here."
        )
        return
    now = datetime.now(UTC)
    shown = table.assign(
        arguments=table["arguments"].map(lambda a: json.dumps(a, ensure_ascii=False)),
        waiting=(now - table["created_at"]).map(_duration),
        expires_in=(table["expires_at"] - now).map(_duration),
        started_by=table["started_by"].fillna(table["trigger"]),
    )[["agent", "tool", "arguments", "started_by", "waiting", "expires_in", "reason", "id"]]
    st.dataframe(shown, hide_index=True, key="approvals_table")
    decide = getattr(reader, "database", None)
    if decide is None:  # the hosted reader reads only; decisions go through the API
        st.caption("Decide with `coherex approvals approve|reject ID` or `POST /api/approvals/ID`.")
        return
    labels = {f"{r.agent} · {r.tool} · {str(r.id)[:8]}": r.id for r in table.itertuples()}
    chosen = labels[st.selectbox("Call", list(labels), key="approval_pick")]
    message = st.text_input("Message for the model (when rejecting)", key="approval_message")
    left, right = st.columns(2)
    action = (
        "approve"
        if left.button("Approve", key="approval_approve", type="primary")
        else "reject"
        if right.button("Reject", key="approval_reject")
        else None
    )
    if action:
        from coherex.runtime.approvals import decide as decide_call

        try:
            done = reader.database.run(
                decide_call(
                    reader.database.db,
                    reader.identity,
                    UUID(str(chosen)),
                    action,
                    message=(message or None) if action == "reject" else None,
                )
            )
        except UserError as exc:  # a viewer, a call someone else decided meanwhile
            st.error(str(exc))
            return
        st.success(
            f"{done.approval.tool_name} {done.approval.status}."
            + (" The run goes on." if done.resumed else " Other calls of this step still wait.")
        )


def _duration(delta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
