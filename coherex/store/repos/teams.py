"""Users, teams and memberships."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from uuid import UUID, uuid5

from coherex.errors import LoginThrottled, PermissionDenied, UserError
from coherex.store.models import Member, MyTeam, Role, Team, User
from coherex.store.repos._base import Jsonb, Repo, require

# rate-limit keys of sign-in attempts: uuid5(this, email), apart from every other bucket's key
_LOGIN_NAMESPACE = UUID("5f0e4c7e-2b0a-4d55-9a51-6c6f67696e73")

_USER_COLS = "p.id, p.email, p.display_name, p.timezone, p.created_at"
_TEAM_COLS = (
    "id, slug, name, quota_executions_month, quota_cost_month_usd, max_concurrent_runs, network_min_role, "
    "created_at"
)

# scrypt: memory-hard, in the standard library; parameters stored with the hash so they can change.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str | None) -> bool:
    try:
        kind, n, r, p, salt, digest = (stored or "").split("$")
    except ValueError:
        return False
    if kind != "scrypt":
        return False
    got = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), dklen=32, n=int(n), r=int(r), p=int(p)
    )
    return hmac.compare_digest(got, base64.b64decode(digest))


class UserRepo(Repo):
    async def create(self, email: str, *, display_name: str = "", password: str | None = None) -> User:
        """Create a login (embedded auth). Needs the system identity; on Supabase, Supabase Auth does this."""
        email = email.strip().lower()
        if "@" not in email or len(email) > 320:
            raise UserError(f"{email!r} is not an email address.")
        if password is not None and len(password) < 8:
            raise UserError("A password needs at least 8 characters.")
        uid = await self._scalar(
            "insert into auth.users (email, encrypted_password, raw_user_meta_data) values (%s, %s, %s) "
            "returning id",
            (email, hash_password(password) if password else None, Jsonb({"display_name": display_name})),
        )
        await self._exec(
            "insert into public.profiles (id, email, display_name) values (%s, %s, %s)",
            (uid, email, display_name),
        )
        return require(await self.get(uid), "user")

    async def get(self, user_id: UUID) -> User | None:
        return await self._one(
            User, f"select {_USER_COLS} from public.profiles p where p.id = %s", (user_id,)
        )

    async def get_by_email(self, email: str) -> User | None:
        return await self._one(
            User, f"select {_USER_COLS} from public.profiles p where p.email = %s", (email.strip().lower(),)
        )

    async def authenticate(self, email: str, password: str) -> User | None:
        """The user if the password matches (system identity: reads auth.users).

        Raises `LoginThrottled` after too many failed tries for this email (settings
        `login_attempts`, `login_retry_seconds`) without checking the password at all."""
        from coherex.settings import get_settings
        from coherex.store.repos.rate_limits import RateLimitRepo

        settings = get_settings()
        email = email.strip().lower()
        bucket = (uuid5(_LOGIN_NAMESPACE, email), 1 / settings.login_retry_seconds, settings.login_attempts)
        limits = RateLimitRepo(self.conn, self.identity)
        if await limits.available(*bucket) < 1:
            raise LoginThrottled(
                "Too many failed sign-ins for this account.",
                hint=f"Try again in {settings.login_retry_seconds:.0f} s, or ask an admin for a new password "
                "(`coherex users passwd`).",
            )
        row = await self._scalar("select encrypted_password from auth.users where email = %s", (email,))
        ok = check_password(password, row)
        user = await self.get_by_email(email)
        await self._exec(
            "select coherex_private.record_login(%s, %s, %s)",  # audit_log: logins, good and bad
            (email[:320], user.id if user else None, ok),
        )
        if not ok:
            await limits.take(*bucket)
        return user if ok else None

    async def sign_in_external(self, email: str, provider: str) -> User | None:
        """The user an identity provider vouched for (OAuth), if Coherex knows them; recorded like a login."""
        user = await self.get_by_email(email)
        await self._exec(
            "select coherex_private.record_login(%s, %s, %s)",
            (
                f"{email.strip().lower()[:300]} via {provider[:15]}",
                user.id if user else None,
                user is not None,
            ),
        )
        return user

    async def set_password(self, user_id: UUID, password: str) -> None:
        if len(password) < 8:
            raise UserError("A password needs at least 8 characters.")
        await self._exec(
            "update auth.users set encrypted_password = %s where id = %s", (hash_password(password), user_id)
        )

    async def set_timezone(self, user_id: UUID, zone: str | None, *, only_if_unset: bool = False) -> bool:
        """Store the person's time zone (a checked IANA name, or None to forget it); with
        `only_if_unset`, only when none is stored (in one statement: a zone set meanwhile is kept).
        Whether a row changed."""
        unset = " and timezone is null" if only_if_unset else ""
        return (
            await self._exec(
                f"update public.profiles set timezone = %s where id = %s{unset}", (zone, user_id)
            )
            > 0
        )


class TeamRepo(Repo):
    async def create(self, slug: str, name: str, *, owner_id: UUID | None = None) -> Team:
        """A new team whose owner is the caller (or `owner_id` for the system identity)."""
        if self.identity.user_id is not None:
            team_id = await self._scalar("select public.create_team(%s, %s)", (slug, name))
        else:
            if owner_id is None:
                raise UserError("A team needs an owner.")
            team_id = await self._scalar(
                "insert into public.teams (slug, name) values (%s, %s) returning id", (slug, name)
            )
            await self._exec(
                "insert into public.team_members (team_id, user_id, role) values (%s, %s, 'owner')",
                (team_id, owner_id),
            )
        return require(await self.get(team_id), "team")

    async def get(self, team_id: UUID) -> Team | None:
        return await self._one(Team, f"select {_TEAM_COLS} from public.teams where id = %s", (team_id,))

    async def get_by_slug(self, slug: str) -> Team | None:
        return await self._one(Team, f"select {_TEAM_COLS} from public.teams where slug = %s", (slug,))

    async def list(self) -> list[Team]:
        return await self._all(Team, f"select {_TEAM_COLS} from public.teams order by slug")

    async def set_quotas(
        self,
        team_id: UUID,
        *,
        executions_month: int | None,
        cost_month_usd: float | None,
        max_concurrent_runs: int | None,
    ) -> Team:
        n = await self._exec(
            "update public.teams set quota_executions_month = %s, quota_cost_month_usd = %s, "
            "max_concurrent_runs = %s where id = %s",
            (executions_month, cost_month_usd, max_concurrent_runs, team_id),
        )
        if n == 0:
            raise PermissionDenied("Only an admin or owner of the team can change its quotas.")
        return require(await self.get(team_id), "team")

    async def set_network_min_role(self, team_id: UUID, role: str) -> Team:
        """Owners only (a database trigger refuses anyone else)."""
        n = await self._exec("update public.teams set network_min_role = %s where id = %s", (role, team_id))
        if n == 0:
            raise PermissionDenied("Only an owner of the team can change who may turn sandbox network on.")
        return require(await self.get(team_id), "team")

    async def delete(self, team_id: UUID) -> None:
        n = await self._exec("delete from public.teams where id = %s", (team_id,))
        if n == 0:
            raise PermissionDenied("Only the platform can delete a team.")


class MemberRepo(Repo):
    _COLS = "m.team_id, m.user_id, m.role, p.email, p.timezone, m.created_at"

    async def add(self, team_id: UUID, user_id: UUID, role: Role = "member") -> Member:
        await self._exec(
            "insert into public.team_members (team_id, user_id, role) values (%s, %s, %s) "
            "on conflict (team_id, user_id) do update set role = excluded.role",
            (team_id, user_id, role),
        )
        return require(await self.get(team_id, user_id), "membership")

    async def get(self, team_id: UUID, user_id: UUID) -> Member | None:
        return await self._one(
            Member,
            f"select {self._COLS} from public.team_members m left join public.profiles p on p.id = m.user_id "
            "where m.team_id = %s and m.user_id = %s",
            (team_id, user_id),
        )

    async def list(self, team_id: UUID) -> list[Member]:
        return await self._all(
            Member,
            f"select {self._COLS} from public.team_members m left join public.profiles p on p.id = m.user_id "
            "where m.team_id = %s order by m.created_at",
            (team_id,),
        )

    async def teams_of(self, user_id: UUID) -> list[Member]:
        return await self._all(
            Member,
            f"select {self._COLS} from public.team_members m left join public.profiles p on p.id = m.user_id "
            "where m.user_id = %s order by m.created_at",
            (user_id,),
        )

    async def teams_with_roles(self, user_id: UUID) -> list[MyTeam]:
        """The user's teams with their role in each, the first joined first (one query)."""
        cols = ", ".join(f"t.{c.strip()}" for c in _TEAM_COLS.split(","))
        return await self._all(
            MyTeam,
            f"select {cols}, m.role from public.team_members m join public.teams t on t.id = m.team_id "
            "where m.user_id = %s order by m.created_at, t.slug",
            (user_id,),
        )

    async def remove(self, team_id: UUID, user_id: UUID) -> None:
        n = await self._exec(
            "delete from public.team_members where team_id = %s and user_id = %s", (team_id, user_id)
        )
        if n == 0:
            raise PermissionDenied("No such member, or only an admin can remove members.")
