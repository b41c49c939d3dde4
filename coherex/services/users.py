"""Logins: signing in (password or an identity provider), adding people and their passwords; and
each person's time zone (`timezone_of`: the one answer to "which time zone for this person").

Users live outside any team, so these run as the platform (the system identity); what a person
may then see is decided by the database under their own identity.
"""

from __future__ import annotations

import difflib
import functools
import logging
from typing import NamedTuple
from uuid import UUID
from zoneinfo import available_timezones

from coherex.errors import UserError
from coherex.settings import Settings, get_settings
from coherex.store.db import Database, Identity
from coherex.store.models import Role, User

__all__ = [
    "PersonTimezone",
    "add_user",
    "authenticate",
    "canonical_timezone",
    "remember_browser_timezone",
    "set_my_timezone",
    "set_password",
    "set_timezone",
    "sign_in_external",
    "timezone_of",
    "user_by_email",
]

log = logging.getLogger(__name__)


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


# ---------------------------------------------------------------------- time zones
#: names the zone database holds that are not a place's time (the server's own, a placeholder)
_NOT_PLACES = frozenset({"localtime", "posixrules", "Factory"})


@functools.cache
def _zones() -> dict[str, str]:
    return {z.lower(): z for z in available_timezones() if z not in _NOT_PLACES}


def canonical_timezone(name: str) -> str:
    """The IANA zone `name` is, in its own spelling (europe/berlin -> Europe/Berlin); a UserError
    naming the bad value (and the nearest zone, for a typo) otherwise."""
    zone = _zones().get(name.strip().lower())
    if zone is None:
        near = difflib.get_close_matches(name.strip().lower(), _zones(), n=1, cutoff=0.8)
        guess = f" Did you mean {_zones()[near[0]]}?" if near else ""
        raise UserError(
            f"{name.strip()[:80]!r} is not a time zone: use an IANA name such as Europe/Berlin, "
            f"America/New_York or UTC.{guess}"
        )
    return zone


class PersonTimezone(NamedTuple):
    name: str
    #: the person's own (stored for them), not the install's default
    own: bool


async def timezone_of(db: Database, user_id: UUID | None, settings: Settings | None = None) -> PersonTimezone:
    """Which time zone schedules made for this person use: theirs when known, else the install's
    (COHEREX_TIMEZONE, UTC by default)."""
    if user_id is not None:
        async with db.session(Identity.system()) as s:
            user = await s.users.get(user_id)
        if user is not None and user.timezone:
            return PersonTimezone(user.timezone, True)
    return PersonTimezone((settings or get_settings()).chat_timezone, False)


async def set_timezone(db: Database, email: str, zone: str | None) -> User:
    """Set (or with None, forget) a person's time zone, by email: an operator's command."""
    zone = canonical_timezone(zone) if zone is not None else None
    async with db.session(Identity.system()) as s:
        user = await s.users.get_by_email(email)
        if user is None:
            email = email.strip().lower()
            raise UserError(
                f"There is no user {email!r}.",
                hint=f"Create it with `coherex users add {email} --team TEAM`.",
            )
        await s.users.set_timezone(user.id, zone)
        return user.model_copy(update={"timezone": zone})


async def set_my_timezone(db: Database, who: Identity, zone: str | None) -> str | None:
    """The signed-in person sets (or with None, forgets) their own time zone (the chat settings)."""
    zone = canonical_timezone(zone) if zone is not None else None
    if who.user_id is None:
        raise UserError("Only a signed-in person has a time zone of their own.")
    async with db.session(who) as s:
        await s.users.set_timezone(who.user_id, zone)
    return zone


async def remember_browser_timezone(db: Database, who: Identity, zone: str | None) -> str | None:
    """Keep the zone the person's browser reports, only when they have none stored (one set in the
    chat settings or with `coherex users set-timezone` is never replaced). The zone stored now, if
    this stored it; a value that is no zone is ignored (the browser is not the person typing)."""
    if who.user_id is None or not zone:
        return None
    try:
        zone = canonical_timezone(zone)
    except UserError:
        log.info("the browser reported %r as its time zone; ignored", zone[:80])
        return None
    async with db.session(who) as s:
        return zone if await s.users.set_timezone(who.user_id, zone, only_if_unset=True) else None
