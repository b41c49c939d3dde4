"""OAuth2 authorization code flow with PKCE and state, token refresh and revocation.

Providers: Google (for Gmail), GitHub and Slack. Every endpoint and client id comes from
settings, so tests point them at the fake token server.

    url = await start_authorization(db, identity, team_id, "gmail", "work-mail")   # send the browser there
    source = await complete_authorization(db, code=..., state=...)                  # the callback

The state is random, stored hashed, expires after 10 minutes and works once; the PKCE verifier
is stored as vault ciphertext and only ever sent to the token endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from uuid import UUID

from pydantic import SecretStr, ValidationError

from coherex.errors import BackendError, PermissionDenied, UserError
from coherex.integrations.base import Model, ServiceError, check_status, http_client, json_of, send
from coherex.settings import Settings, get_settings

if TYPE_CHECKING:
    import httpx

    # imported lazily below: the source types import this module
    from coherex.store.db import Database, Identity
    from coherex.store.models import DataSource

STATE_TTL = timedelta(minutes=10)
#: refresh this long before the access token expires, so a call never starts with a dying token
REFRESH_MARGIN = timedelta(minutes=2)


class OAuthToken(Model):
    """Credentials obtained through OAuth2 (the Gmail source type stores these)."""

    access_token: SecretStr
    refresh_token: SecretStr | None = None
    expires_at: datetime | None = None
    scope: str = ""

    def expires_soon(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        return (now or datetime.now(UTC)) >= self.expires_at - REFRESH_MARGIN


@dataclass(frozen=True)
class Provider:
    name: str
    title: str
    auth_url: str
    token_url: str
    revoke_url: str | None
    client_id: str | None
    client_secret: SecretStr | None
    scopes: list[str]
    scope_separator: str = " "
    extra_params: dict[str, str] = field(default_factory=dict)
    #: the setting names, for messages when the app is not configured
    client_setting: str = ""

    def require_client(self) -> tuple[str, str]:
        if not self.client_id or self.client_secret is None:
            raise UserError(
                f"{self.title} sign-in is not configured on this Coherex installation.",
                hint=f"Register an OAuth app with {self.title} and set {self.client_setting}_ID and "
                f"{self.client_setting}_SECRET (redirect URL: COHEREX_OAUTH_REDIRECT_URL).",
            )
        return self.client_id, self.client_secret.get_secret_value()


def provider(name: str, settings: Settings | None = None) -> Provider:
    s = settings or get_settings()
    if name == "google":
        return Provider(
            "google",
            "Google",
            s.google_auth_url,
            s.google_token_url,
            s.google_revoke_url,
            s.google_client_id,
            s.google_client_secret,
            # modify = read, label and send; not permanent deletion
            ["https://www.googleapis.com/auth/gmail.modify"],
            # offline + consent: Google returns a refresh token (also on a second connect)
            extra_params={"access_type": "offline", "prompt": "consent"},
            client_setting="GOOGLE_CLIENT",
        )
    if name == "github":
        return Provider(
            "github",
            "GitHub",
            s.github_auth_url,
            s.github_token_url,
            None,
            s.github_client_id,
            s.github_client_secret,
            ["repo"],
            client_setting="GITHUB_CLIENT",
        )
    if name == "slack":
        return Provider(
            "slack",
            "Slack",
            s.slack_auth_url,
            s.slack_api_url.rstrip("/") + "/oauth.v2.access",
            None,
            s.slack_client_id,
            s.slack_client_secret,
            ["channels:read", "channels:history", "groups:read", "groups:history", "chat:write"],
            scope_separator=",",
            client_setting="SLACK_CLIENT",
        )
    raise UserError(f"No OAuth provider {name!r}.")


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge) as RFC 7636 describes."""
    verifier = secrets.token_urlsafe(64)[:96]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


def authorization_url(p: Provider, *, state: str, challenge: str, redirect_uri: str) -> str:
    client_id, _ = p.require_client()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": p.scope_separator.join(p.scopes),
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **p.extra_params,
    }
    return f"{p.auth_url}?{urlencode(params)}"


async def _token_request(p: Provider, data: dict[str, str]) -> dict[str, Any]:
    client_id, client_secret = p.require_client()
    async with http_client() as client:
        r = await send(
            client,
            f"{p.title}'s token endpoint",
            "POST",
            p.token_url,
            check=False,
            data={**data, "client_id": client_id, "client_secret": client_secret},
            headers={"Accept": "application/json"},
        )
    if r.status_code in (400, 401):
        body = _maybe_json(r)
        raise ServiceError(
            f"{p.title} refused the token request: {body.get('error', f'HTTP {r.status_code}')}"
            f"{' — ' + str(body['error_description']).rstrip('.') if body.get('error_description') else ''}.",
            status=r.status_code,
            auth=True,
        )
    check_status(r, p.title)
    body = json_of(r, p.title)
    # GitHub and Slack answer errors with HTTP 200
    if (
        not isinstance(body, dict)
        or body.get("error")
        or body.get("ok") is False
        or "access_token" not in body
    ):
        error = (
            body.get("error", "no access token in the answer")
            if isinstance(body, dict)
            else "unexpected answer"
        )
        raise ServiceError(f"{p.title} refused the token request: {error}.", auth=True)
    return body


def _maybe_json(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
        return body if isinstance(body, dict) else {}
    except ValueError:
        return {}


def token_from_response(body: dict[str, Any], previous: OAuthToken | None = None) -> OAuthToken:
    expires_in = body.get("expires_in")
    refresh = body.get("refresh_token")
    return OAuthToken(
        access_token=SecretStr(body["access_token"]),
        # Google sends no new refresh token on refresh: keep the one we have
        refresh_token=SecretStr(refresh) if refresh else (previous.refresh_token if previous else None),
        expires_at=datetime.now(UTC) + timedelta(seconds=int(expires_in)) if expires_in else None,
        scope=body.get("scope") or (previous.scope if previous else ""),
    )


async def exchange_code(p: Provider, *, code: str, verifier: str, redirect_uri: str) -> dict[str, Any]:
    return await _token_request(
        p,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
    )


async def refresh(p: Provider, token: OAuthToken) -> OAuthToken:
    if token.refresh_token is None:
        raise ServiceError(f"The {p.title} access token expired and there is no refresh token.", auth=True)
    body = await _token_request(
        p, {"grant_type": "refresh_token", "refresh_token": token.refresh_token.get_secret_value()}
    )
    return token_from_response(body, token)


async def revoke_google(p: Provider, token: OAuthToken) -> None:
    # revoking the refresh token revokes the whole grant (and its access tokens)
    value = (token.refresh_token or token.access_token).get_secret_value()
    assert p.revoke_url
    async with http_client() as client:
        r = await send(
            client,
            f"{p.title} (revoking the token)",
            "POST",
            p.revoke_url,
            check=False,
            data={"token": value},
        )
    # 400 invalid_token: already revoked or expired — the goal is reached
    if r.status_code != 400:
        check_status(r, p.title)


# ---------------------------------------------------------------- the flow, with the database

#: source type → (provider, how to turn the token answer into that type's credentials)
CredentialsFactory = Callable[[dict[str, Any]], Model]


def _factories() -> dict[str, tuple[str, CredentialsFactory]]:
    """Source type → (its OAuth provider, its credentials from the token answer), from the tool
    providers' source types."""
    from coherex.tools.registry import source_types

    return {
        name: (kind.oauth_provider, kind.credentials_from_oauth)
        for name, kind in source_types().items()
        if kind.oauth_provider and kind.credentials_from_oauth
    }


def connect_url(source_type: str, name: str, team: str | None = None) -> str | None:
    """The web app's link that connects a new `source_type` source named `name` through its
    provider's consent page — None when that type has no OAuth or this install has no client id
    for it. `team` (a slug) picks the team of a person in several."""
    from urllib.parse import urlencode

    if source_type not in _factories():
        return None
    if not provider(provider_for(source_type)).client_id:
        return None
    query = {"name": name, **({"team": team} if team else {})}
    return f"/oauth/{source_type}/start?{urlencode(query)}"


def provider_for(source_type: str) -> str:
    try:
        return _factories()[source_type][0]
    except KeyError:
        raise UserError(
            f"Data sources of type {source_type!r} do not connect through OAuth.",
            hint="Add them with the connect form (/connect), `POST /api/sources` or "
            "`coherex sources add TYPE NAME --secret key=value`.",
        ) from None


async def start_authorization(
    db: Database,
    identity: Identity,
    team_id: UUID,
    source_type: str,
    name: str,
    config: dict[str, Any] | None = None,
    *,
    redirect_uri: str | None = None,
) -> str:
    """Begin connecting a source through OAuth: → the provider URL to send the person's browser to."""
    from coherex.store.db import Identity
    from coherex.store.repos.sources import OAuthState
    from coherex.tools.registry import source_type as get_type

    kind = get_type(source_type)
    p = provider(provider_for(source_type))  # a type without sign-in is refused before its settings are read
    try:
        config = kind.config_model.model_validate(config or {}).model_dump(mode="json")
    except ValidationError as exc:
        raise UserError(
            f"Invalid settings for a {source_type} source: "
            + "; ".join(f"{'.'.join(map(str, e['loc'])) or '(all)'}: {e['msg']}" for e in exc.errors())
        ) from None
    redirect_uri = redirect_uri or get_settings().oauth_redirect_url
    async with db.session(identity) as s:
        member = await s.members.get(team_id, identity.user_id)
        if member is None or member.role not in ("owner", "admin"):
            raise PermissionDenied("Only a team owner or admin can connect data sources.")
        if await s.sources.get_by_name(team_id, name):
            raise UserError(
                f"A data source named {name!r} already exists in this team.",
                hint=f"Pick another name, or remove it first with `coherex sources remove {name}`.",
            )
    from coherex.integrations.vault import Vault

    state = secrets.token_urlsafe(32)
    verifier, challenge = pkce_pair()
    url = authorization_url(p, state=state, challenge=challenge, redirect_uri=redirect_uri)
    sealed, _ = Vault.from_settings().encrypt(verifier.encode(), context=str(team_id))
    async with db.session(Identity.system()) as s:
        await s.sources.put_oauth_state(
            OAuthState(
                state_hash=hash_state(state),
                team_id=team_id,
                user_id=identity.user_id,
                provider=p.name,
                source_type=source_type,
                source_name=name,
                config=config,
                verifier_encrypted=sealed,
                redirect_uri=redirect_uri,
                expires_at=datetime.now(UTC) + STATE_TTL,
            )
        )
    return url


async def complete_authorization(
    db: Database, *, code: str | None, state: str | None, error: str | None = None
) -> DataSource:
    """The callback: check the state, exchange the code (with the PKCE verifier), store the source.

    → the new DataSource. Raises PermissionDenied for an unknown, used or expired state."""
    from coherex.integrations import service
    from coherex.integrations.vault import Vault
    from coherex.store.db import Identity

    if not state:
        raise PermissionDenied("The sign-in answer carries no state; start connecting again.")
    async with db.session(Identity.system()) as s:
        pending = await s.sources.take_oauth_state(hash_state(state))
    if pending is None:
        raise PermissionDenied(
            "This sign-in link is unknown, already used or expired (10 minutes); "
            "start connecting the data source again."
        )
    p = provider(pending.provider)
    if error:
        raise UserError(f"{p.title} did not grant access: {error}.")
    if not code:
        raise UserError(f"{p.title} sent no authorization code; start connecting again.")
    verifier = (
        Vault.from_settings().decrypt(pending.verifier_encrypted, context=str(pending.team_id)).decode()
    )
    try:
        body = await exchange_code(p, code=code, verifier=verifier, redirect_uri=pending.redirect_uri)
    except ServiceError as exc:
        raise BackendError(exc.message) from None
    credentials = _factories()[pending.source_type][1](body)
    return await service.add_source(
        db,
        Identity.user(pending.user_id),
        pending.team_id,
        pending.source_type,
        pending.source_name,
        config=pending.config,
        credentials=credentials,
        via="oauth",
    )
