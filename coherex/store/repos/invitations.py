"""Team administration: invitations (hashed, expiring, single-use tokens), personal/team agents,
quotas per team and per API key, and what is left of them this month.

Who may do what is decided by the policies and triggers of `..._teams_roles_quotas.sql`; these
methods only turn "no row changed" into a clear message.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from coherex.errors import NotFound, PermissionDenied, UserError
from coherex.store.models import Row
from coherex.store.repos._base import Repo, require

TOKEN_PREFIX = "cxinv_"
ROLES = ("owner", "admin", "member", "viewer")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Invitation(Row):
    id: UUID
    team_id: UUID
    email: str
    role: str
    invited_by: UUID | None
    expires_at: datetime
    accepted_at: datetime | None
    accepted_by: UUID | None
    created_at: datetime


class KeyQuota(Row):
    id: UUID
    team_id: UUID
    name: str
    prefix: str
    revoked_at: datetime | None
    quota_executions_month: int | None
    quota_cost_month_usd: Decimal | None
    max_concurrent_runs: int | None
    executions: int
    cost_usd: Decimal
    running: int


@dataclass(frozen=True)
class TeamUsage:
    team_id: UUID
    period: date
    executions: int
    cost_usd: Decimal
    running: int
    quota_executions_month: int | None
    quota_cost_month_usd: Decimal | None
    max_concurrent_runs: int | None

    @property
    def executions_left(self) -> int | None:
        return (
            None
            if self.quota_executions_month is None
            else max(0, self.quota_executions_month - self.executions)
        )

    @property
    def cost_left_usd(self) -> Decimal | None:
        return (
            None
            if self.quota_cost_month_usd is None
            else max(Decimal(0), self.quota_cost_month_usd - self.cost_usd)
        )


_INV_COLS = "id, team_id, email, role, invited_by, expires_at, accepted_at, accepted_by, created_at"


class InvitationRepo(Repo):
    async def create(
        self, team_id: UUID, email: str, role: str = "member", *, valid_for: timedelta = timedelta(days=7)
    ) -> tuple[Invitation, str]:
        """(invitation, token). The token is shown once; only its SHA-256 is stored."""
        email = email.strip().lower()
        if "@" not in email or len(email) > 320:
            raise UserError(f"{email!r} is not an email address.")
        if role not in ROLES:
            raise UserError(f"A role is one of {', '.join(ROLES)}, not {role!r}.")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = await self._one(
            Invitation,
            f"insert into public.team_invitations (team_id, email, role, token_hash, invited_by, expires_at) "
            f"values (%s, %s, %s, %s, %s, %s) returning {_INV_COLS}",
            (
                team_id,
                email,
                role,
                hash_token(token),
                self.identity.user_id,
                datetime.now(UTC) + valid_for,
            ),
        )
        return require(row, "invitation"), token

    async def list(self, team_id: UUID, *, include_done: bool = False) -> list[Invitation]:
        return await self._all(
            Invitation,
            f"select {_INV_COLS} from public.team_invitations where team_id = %s "
            "and (%s or (accepted_at is null and expires_at > now())) order by created_at desc",
            (team_id, include_done),
        )

    async def revoke(self, invitation_id: UUID) -> None:
        n = await self._exec("delete from public.team_invitations where id = %s", (invitation_id,))
        if n == 0:
            raise NotFound("No such open invitation (or only an admin of its team can revoke it).")

    async def accept(self, token: str) -> UUID:
        """Join the invitation's team as the caller. Raises PermissionDenied for a bad token."""
        return await self._scalar("select public.accept_invitation(%s)", (token.strip(),))


class SharingRepo(Repo):
    async def set_visibility(self, agent_id: UUID, visibility: str) -> None:
        if visibility not in ("team", "personal"):
            raise UserError(f"Visibility is team or personal, not {visibility!r}.")
        n = await self._exec("update public.agents set visibility = %s where id = %s", (visibility, agent_id))
        if n == 0:
            raise NotFound("No such agent (or you cannot change it).")

    async def visibility(self, agent_id: UUID) -> str | None:
        return await self._scalar("select visibility from public.agents where id = %s", (agent_id,))


class QuotaRepo(Repo):
    async def set_key_quotas(
        self,
        key_id: UUID,
        *,
        executions_month: int | None,
        cost_month_usd: float | None,
        max_concurrent_runs: int | None,
    ) -> None:
        n = await self._exec(
            "update public.api_keys set quota_executions_month = %s, quota_cost_month_usd = %s, "
            "max_concurrent_runs = %s where id = %s",
            (executions_month, cost_month_usd, max_concurrent_runs, key_id),
        )
        if n == 0:
            raise PermissionDenied("No such API key, or only an owner of its team can change its quotas.")

    async def team_usage(self, team_id: UUID) -> TeamUsage:
        row = await (
            await self.conn.execute(
                "select t.quota_executions_month, t.quota_cost_month_usd, t.max_concurrent_runs, "
                "coalesce(u.executions, 0), coalesce(u.cost_usd, 0), "
                "(select count(*) from public.agent_executions x where x.team_id = t.id "
                "   and x.status in ('pending', 'running')) "
                "from public.teams t left join public.usage u "
                "  on u.team_id = t.id and u.period = date_trunc('month', now())::date "
                "where t.id = %s",
                (team_id,),
            )
        ).fetchone()
        if row is None:
            raise NotFound("No such team (or you are not a member).")
        return TeamUsage(
            team_id,
            date.today().replace(day=1),
            int(row[3]),
            Decimal(row[4]),
            int(row[5]),
            row[0],
            row[1],
            row[2],
        )

    async def key_usage(self, team_id: UUID) -> list[KeyQuota]:
        return await self._all(
            KeyQuota,
            "select k.id, k.team_id, k.name, k.prefix, k.revoked_at, k.quota_executions_month, "
            "k.quota_cost_month_usd, k.max_concurrent_runs, "
            "count(x.id) filter (where x.created_at >= date_trunc('month', now()))::int as executions, "
            "coalesce(sum(x.cost_usd) filter (where x.created_at >= date_trunc('month', now())), 0) as "
            "cost_usd, count(x.id) filter (where x.status in ('pending', 'running'))::int as running "
            "from public.api_keys k left join public.agent_executions x on x.api_key_id = k.id "
            "where k.team_id = %s group by k.id order by k.created_at",
            (team_id,),
        )
