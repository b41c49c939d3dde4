"""Who the CLI acts as: a user and a team, from settings (COHEREX_USER, COHEREX_TEAM).

The CLI talks to the database directly, like `psql` would, but every query still runs under the
person's identity so RLS applies. On a fresh embedded install the default user and team are created
on first use, so `coherex agents apply` works right after `coherex db migrate`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from coherex.errors import NotFound, UserError
from coherex.settings import get_settings
from coherex.store.db import Database, Identity
from coherex.store.models import Team, User

DEFAULT_USER = "admin@localhost"
DEFAULT_TEAM = "default"


@dataclass(frozen=True)
class CliContext:
    db: Database
    user: User
    team: Team

    @property
    def identity(self) -> Identity:
        return Identity.user(self.user.id)


async def resolve_context(db: Database, email: str | None = None, team_slug: str | None = None) -> CliContext:
    settings = get_settings()
    email = (email or settings.cli_user or DEFAULT_USER).strip().lower()
    team_slug = team_slug or settings.cli_team or DEFAULT_TEAM
    async with db.session(Identity.system()) as s:
        user = await s.users.get_by_email(email)
        if user is None:
            if email != DEFAULT_USER:
                raise NotFound(f"No user {email!r}.", hint="Create it with `coherex users add EMAIL`.")
            user = await s.users.create(email, display_name="Local admin")
    async with db.session(Identity.user(user.id)) as s:
        team = await s.teams.get_by_slug(team_slug)
        if team is None and team_slug == DEFAULT_TEAM:
            team = await s.teams.create(DEFAULT_TEAM, "Default team")
    if team is None:
        from coherex.services.teams import my_teams

        mine = ", ".join(sorted(t.slug for t in await my_teams(db, Identity.user(user.id)))) or "none"
        raise NotFound(
            f"Team {team_slug!r} does not exist or {email} is not a member.",
            hint=f"Your teams: {mine}. Choose one with COHEREX_TEAM.",
        )
    return CliContext(db, user, team)


@asynccontextmanager
async def cli_context() -> AsyncIterator[CliContext]:
    """Open the database and resolve who we are; close on exit."""
    async with Database.from_settings() as db:
        yield await resolve_context(db)


def parse_inputs(pairs: list[str]) -> dict[str, str]:
    """`--input key=value` pairs → dict, with a clear message for a malformed one."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--input {pair!r} is not key=value.")
        out[key.strip()] = value
    return out
