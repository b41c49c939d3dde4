"""Teams: members and roles, invitations, personal/team agents, sharing and moving agents between
teams, quotas per team and per API key and what is left of them.

Every function runs under the caller's identity: the database policies decide (the permission
matrix is at the top of `supabase/migrations/20261125005000_teams_roles_quotas.sql`); this module
adds clear messages and audit rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from coherex.errors import NotFound, UserError
from coherex.store.db import Database, Identity
from coherex.store.models import Agent, Member, MyTeam, Team
from coherex.store.repos.invitations import ROLES, Invitation, KeyQuota, TeamUsage

__all__ = [
    "ROLES",
    "Usage",
    "accept_invitation",
    "create_team",
    "invite",
    "list_members",
    "my_teams",
    "remove_member",
    "set_key_quotas",
    "set_network_role",
    "set_quotas",
    "set_role",
    "set_visibility",
    "share_agent",
    "usage",
]


async def create_team(db: Database, who: Identity, slug: str, name: str) -> Team:
    async with db.session(who) as s:
        return await s.teams.create(slug, name)


async def my_teams(db: Database, who: Identity) -> list[MyTeam]:
    """The caller's teams with their role in each, the first joined first (their default team).
    The one answer to "which teams am I in" for the CLI, the API and the chat."""
    if who.user_id is None:
        return []
    async with db.session(who) as s:
        return await s.members.teams_with_roles(who.user_id)


async def get_team(db: Database, who: Identity, team_id: UUID) -> Team | None:
    async with db.session(who) as s:
        return await s.teams.get(team_id)


async def team_by_slug(db: Database, who: Identity, slug: str) -> Team:
    async with db.session(who) as s:
        team = await s.teams.get_by_slug(slug)
    if team is None:
        raise NotFound(f"Team {slug!r} does not exist or you are not a member.")
    return team


async def list_members(db: Database, who: Identity, team_id: UUID) -> list[Member]:
    async with db.session(who) as s:
        return await s.members.list(team_id)


async def invite(
    db: Database, who: Identity, team_id: UUID, email: str, role: str = "member", *, days: float = 7
) -> tuple[Invitation, str]:
    """An invitation and its token (shown once). Admins invite; only owners invite owners."""
    if days <= 0 or days > 90:
        raise UserError("An invitation is valid for more than 0 and at most 90 days.")
    async with db.session(who) as s:
        inv, token = await s.invitations.create(team_id, email, role, valid_for=timedelta(days=days))
        await s.audit.record(
            team_id,
            "invitation.create",
            target_type="invitation",
            target_id=str(inv.id),
            details={"email": inv.email, "role": role, "expires_at": inv.expires_at.isoformat()},
        )
    return inv, token


async def accept_invitation(db: Database, who: Identity, token: str) -> Team:
    async with db.session(who) as s:
        team_id = await s.invitations.accept(token)
        return await s.teams.get(team_id)


async def _user_id(db: Database, email: str) -> UUID:
    # resolving an email to an id is a lookup across teams: the platform does it, nothing else is read
    async with db.session(Identity.system()) as s:
        user = await s.users.get_by_email(email)
    if user is None:
        raise NotFound(f"No user {email!r}.", hint="Invite them instead: `coherex teams invite EMAIL`.")
    return user.id


async def set_role(db: Database, who: Identity, team_id: UUID, email: str, role: str) -> Member:
    """Change a member's role (recorded in the audit log by the database)."""
    if role not in ROLES:
        raise UserError(f"A role is one of {', '.join(ROLES)}, not {role!r}.")
    uid = await _user_id(db, email)
    async with db.session(who) as s:
        if await s.members.get(team_id, uid) is None:
            raise NotFound(
                f"{email} is not a member of this team.", hint="Invite them: `coherex teams invite`."
            )
        return await s.members.add(team_id, uid, role)  # type: ignore[arg-type]


async def remove_member(db: Database, who: Identity, team_id: UUID, email: str) -> None:
    uid = await _user_id(db, email)
    async with db.session(who) as s:
        await s.members.remove(team_id, uid)


async def set_quotas(
    db: Database,
    who: Identity,
    team_id: UUID,
    *,
    executions_month: int | None,
    cost_month_usd: float | None,
    max_concurrent_runs: int | None,
) -> Team:
    """Owners only (the database refuses anyone else; the change is audited by the database)."""
    async with db.session(who) as s:
        return await s.teams.set_quotas(
            team_id,
            executions_month=executions_month,
            cost_month_usd=cost_month_usd,
            max_concurrent_runs=max_concurrent_runs,
        )


NETWORK_ROLES = ("member", "admin", "owner")


async def set_network_role(db: Database, who: Identity, team_id: UUID, role: str) -> Team:
    """The lowest role that may save an agent with `runtime.network: true` (owners only)."""
    if role not in NETWORK_ROLES:
        raise UserError(f"network_min_role is one of {', '.join(NETWORK_ROLES)}, not {role!r}.")
    async with db.session(who) as s:
        team = await s.teams.set_network_min_role(team_id, role)
        await s.audit.record(
            team_id,
            "team.network_min_role",
            target_type="team",
            target_id=str(team_id),
            details={"network_min_role": role},
        )
        return team


async def set_key_quotas(
    db: Database,
    who: Identity,
    team_id: UUID,
    key: str,
    *,
    executions_month: int | None,
    cost_month_usd: float | None,
    max_concurrent_runs: int | None,
) -> None:
    """Quotas of one API key (by id, name or prefix). Owners only."""
    async with db.session(who) as s:
        keys = await s.api_keys.list(team_id)
        match = [k for k in keys if key in (str(k.id), k.name, k.prefix) and k.revoked_at is None]
        if len(match) != 1:
            raise NotFound(
                f"No single live API key {key!r} in this team.", hint="`coherex keys list` shows them."
            )
        await s.quotas.set_key_quotas(
            match[0].id,
            executions_month=executions_month,
            cost_month_usd=cost_month_usd,
            max_concurrent_runs=max_concurrent_runs,
        )


@dataclass(frozen=True)
class Usage:
    team: TeamUsage
    keys: list[KeyQuota]


async def usage(db: Database, who: Identity, team_id: UUID) -> Usage:
    """This month's use and what is left, for the team and each of its API keys."""
    async with db.session(who) as s:
        return Usage(await s.quotas.team_usage(team_id), await s.quotas.key_usage(team_id))


async def set_visibility(
    db: Database, who: Identity, team_id: UUID, agent_name: str, visibility: str
) -> Agent:
    """`personal`: only its creator sees it (and its versions and runs); `team`: the whole team."""
    async with db.session(who) as s:
        agent = await s.agents.require_by_name(team_id, agent_name)
        await s.sharing.set_visibility(agent.id, visibility)
        await s.audit.record(
            team_id,
            "agent.visibility",
            target_type="agent",
            target_id=str(agent.id),
            details={"name": agent.name, "visibility": visibility},
        )
        return agent


async def share_agent(
    db: Database, who: Identity, from_team: UUID, agent_name: str, to_team: UUID, *, move: bool = False
) -> Agent:
    """Copy the agent's current spec into another team (validated against that team's data sources),
    or move it: copy, then archive the original (its history stays where it ran). Needs member rights
    in the destination (and, to move, in the source)."""
    from coherex.services.agents import apply_spec

    if from_team == to_team:
        raise UserError("The agent is in that team already.")
    async with db.session(who) as s:
        agent = await s.agents.require_by_name(from_team, agent_name)
        version = await s.agents.get_version(agent.id)
        if version is None:
            raise UserError(f"Agent {agent_name!r} has no saved version to share.")
    async with db.session(who) as s:
        if await s.agents.get_by_name(to_team, agent.name) is not None:
            raise UserError(f"The other team already has an agent named {agent.name!r}.")
        saved = await apply_spec(
            s, to_team, version.spec, message=f"shared from team {from_team} v{version.version}"
        )
        await s.audit.record(
            to_team,
            "agent.share_in",
            target_type="agent",
            target_id=str(saved.agent.id),
            details={
                "name": agent.name,
                "from_team": str(from_team),
                "from_agent": str(agent.id),
                "version": version.version,
                "move": move,
            },
        )
    async with db.session(who) as s:
        if move:
            await s.agents.set_status(agent.id, "archived")
        await s.audit.record(
            from_team,
            "agent.move_out" if move else "agent.share_out",
            target_type="agent",
            target_id=str(agent.id),
            details={"name": agent.name, "to_team": str(to_team), "to_agent": str(saved.agent.id)},
        )
    return saved.agent


async def member(db: Database, who: Identity, team_id: UUID, user_id: UUID) -> Member | None:
    """`user_id`'s membership (and role) in the team, as the caller may see it."""
    async with db.session(who) as s:
        return await s.members.get(team_id, user_id)
