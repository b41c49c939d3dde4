"""Logins: signing in (password or an identity provider), adding people and their passwords.

Users live outside any team, so these run as the platform (the system identity); what a person
may then see is decided by the database under their own identity.
"""

from __future__ import annotations

from uuid import UUID

from coherex.errors import UserError
from coherex.store.db import Database, Identity
from coherex.store.models import Role, User

__all__ = ["add_user", "authenticate", "set_password", "sign_in_external", "user_by_email"]


async def authenticate(db: Database, email: str, password: str) -> User | None:
    """The user if the password matches (LoginThrottled after too many failed tries)."""
    async with db.session(Identity.system()) as s:
        return await s.users.authenticate(email, password)


async def sign_in_external(db: Database, email: str, provider: str) -> User | None:
    """The user an identity provider vouched for, if Coherex knows them (recorded like a login)."""
    async with db.session(Identity.system()) as s:
        return await s.users.sign_in_external(email, provider)


async def user_by_email(db: Database, email: str) -> User | None:
    async with db.session(Identity.system()) as s:
        return await s.users.get_by_email(email)


async def set_password(db: Database, email_or_id: str | UUID, password: str) -> None:
    """A new password for an existing login (by email or id)."""
    async with db.session(Identity.system()) as s:
        if isinstance(email_or_id, UUID):
            user_id = email_or_id
        else:
            user = await s.users.get_by_email(email_or_id)
            if user is None:
                email = email_or_id.strip().lower()
                raise UserError(
                    f"There is no user {email!r}.",
                    hint=f"Create it with `coherex users add {email} --team TEAM`.",
                )
            user_id = user.id
        await s.users.set_password(user_id, password)


async def add_user(
    db: Database, email: str, password: str, team_slug: str, *, role: Role = "member", name: str = ""
) -> tuple[str, str]:
    """Create a login (or reset the password of an existing one) and make it `role` of the team
    (owner of a new team when there is none of that slug). Returns (what was done, membership)."""
    async with db.session(Identity.system()) as s:
        user = await s.users.get_by_email(email)
        if user is None:
            user = await s.users.create(email, display_name=name, password=password)
            what = "created"
        else:
            await s.users.set_password(user.id, password)
            what = "updated the password of"
        existing = await s.teams.get_by_slug(team_slug)
        if existing is None:
            await s.teams.create(team_slug, team_slug.replace("-", " ").title(), owner_id=user.id)
            return what, f"owner of the new team {team_slug}"
        await s.members.add(existing.id, user.id, role)
        return what, f"{role} of team {team_slug}"
