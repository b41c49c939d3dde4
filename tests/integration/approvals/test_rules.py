"""The approval settings of a spec: what validates, and which calls ask (deny before ask before allow)."""

from __future__ import annotations

import textwrap

import pytest

from coherex.runtime.approvals import ALLOW, ASK, DENY, verdict
from coherex.spec import get_tool, validate


def _spec(approval: str, limits: str = "") -> str:
    return textwrap.dedent(f"""\
        apiVersion: coherex/v1
        kind: Agent
        metadata: {{name: sql-bot}}
        spec:
          instructions: Answer with SQL.
          tools:
            - use: postgres.execute
              dataSource: warehouse
              access: write
              approval: {approval}
        """) + (f"  limits: {limits}\n" if limits else "")


def _tool(approval: str):
    report = validate(_spec(approval))
    assert report.ok, [str(p) for p in report.problems]
    return report.spec.spec.tools[0]


def test_modes_and_team_default():
    info = get_tool("postgres.execute")
    read = get_tool("postgres.query")
    assert verdict(_tool("always"), info, {"sql": "select 1"}) == ASK
    assert (
        verdict(_tool("never"), info, {"sql": "delete from t"}, "writes") == ALLOW
    )  # the tool's own setting wins
    assert verdict(_tool("writes"), info, {}) == ASK
    assert verdict(_tool("writes"), read, {}) == ALLOW
    ref = _tool("never").model_copy(update={"approval": None})
    assert verdict(ref, info, {}) == ALLOW  # default: never
    assert verdict(ref, info, {}, "writes") == ASK  # the team's default
    assert verdict(ref, read, {}, "writes") == ALLOW


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"sql": "DELETE FROM users"}, ASK),  # case-insensitive glob
        ({"sql": "  delete from users"}, ASK),  # leading space ignored
        ({"sql": "drop table users"}, DENY),
        ({"sql": "delete from audit_log"}, DENY),  # deny wins over ask
        ({"sql": "select 1"}, ALLOW),  # allow
        ({"sql": "update t set x = 1"}, ASK),  # otherwise: always
        ({}, ASK),  # a missing argument matches no rule
    ],
)
def test_argument_rules_deny_first_then_ask_then_allow(args, expected):
    ref = _tool(
        '{deny: [{sql: "drop*"}, {sql: "*audit_log*"}], when: {sql: "delete*"}, '
        'allow: {sql: "select*"}, otherwise: always}'
    )
    assert verdict(ref, get_tool("postgres.execute"), args) == expected


def test_rules_default_otherwise():
    info = get_tool("postgres.execute")
    assert (
        verdict(_tool('{when: {sql: "delete*"}}'), info, {"sql": "update t"}) == ALLOW
    )  # ask-list: others run
    assert (
        verdict(_tool('{allow: {sql: "select*"}}'), info, {"sql": "update t"}) == ASK
    )  # allow-list: others ask


def test_bad_settings_are_reported_with_their_path():
    report = validate(_spec('{when: {sqll: "delete*"}, allow: {}}'))
    problems = {p.path: p.message for p in report.errors}
    assert "did you mean 'sql'" in problems["spec.tools[0].approval.when.sqll"]
    assert "matches every call" in problems["spec.tools[0].approval.allow"]
    report = validate(_spec("sometimes", "{approvalTimeoutSeconds: 0, onApprovalTimeout: explode}"))
    paths = {p.path for p in report.errors}
    assert paths == {
        "spec.tools[0].approval",
        "spec.limits.approvalTimeoutSeconds",
        "spec.limits.onApprovalTimeout",
    }
    (wrong,) = validate(_spec("{when: {sql: 5}}")).errors  # one message, not one per member of a union
    assert wrong.path == "spec.tools[0].approval" and "map argument names to patterns" in wrong.message


def test_defaults_of_the_limits():
    limits = validate(_spec("always")).spec.limits
    assert (limits.approvalTimeoutSeconds, limits.onApprovalTimeout) == (86_400, "reject")
