"""OAuth 2.1 for remote MCP servers, with the SDK's `OAuthClientProvider` (protected-resource
metadata discovery, authorization-server metadata, pre-registered clients or dynamic client
registration, PKCE, refresh) and its token storage backed by the source's credentials in the vault.

Two things the SDK leaves to its storage and that a platform needs: tokens loaded in a later
process are refreshed *before* they expire (the SDK only knows the expiry of tokens it obtained
itself), and the refresh goes to the token endpoint discovered at sign-in (not a guess from the
server's origin). Both are restored in `_initialize` from what `VaultTokenStorage` kept.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.shared.auth import (
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthMetadata,
    OAuthToken,
    ProtectedResourceMetadata,
)
from pydantic import SecretStr

from coherex.tools.providers.mcp.config import REFRESH_MARGIN, McpCredentials, OAuthState

#: called with the changed credentials, to seal them into the vault again
Save = Callable[[McpCredentials], Awaitable[None]]
CLIENT_NAME = "Coherex"


class VaultTokenStorage:
    """The SDK's `TokenStorage` over `McpCredentials.oauth`; every change is saved through `save`."""

    def __init__(self, credentials: McpCredentials, save: Save | None):
        self.credentials = credentials
        self._save = save
        self.provider: OAuthClientProvider | None = None  # set by the provider: what discovery found

    @property
    def state(self) -> OAuthState:
        if self.credentials.oauth is None:
            self.credentials.oauth = OAuthState()
        return self.credentials.oauth

    async def get_tokens(self) -> OAuthToken | None:
        s = self.state
        if s.access_token is None:
            return None
        expires_in = None
        if s.expires_at is not None:
            expires_in = max(0, int((s.expires_at - datetime.now(UTC)).total_seconds()))
        return OAuthToken(
            access_token=s.access_token.get_secret_value(),
            token_type="Bearer",
            expires_in=expires_in,
            refresh_token=s.refresh_token.get_secret_value() if s.refresh_token else None,
            scope=s.scope,
        )

    async def set_tokens(self, tokens: OAuthToken) -> None:
        s = self.state
        s.access_token = SecretStr(tokens.access_token)
        if tokens.refresh_token:  # a refresh answer may omit it: the old one stays valid
            s.refresh_token = SecretStr(tokens.refresh_token)
        s.expires_at = datetime.now(UTC) + timedelta(seconds=tokens.expires_in) if tokens.expires_in else None
        if tokens.scope:
            s.scope = tokens.scope
        self._remember_discovery()
        await self._changed()

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        s = self.state
        if s.client_info:
            return OAuthClientInformationFull.model_validate(s.client_info)
        if s.client_id:  # a pre-registered client
            secret = s.client_secret.get_secret_value() if s.client_secret else None
            return OAuthClientInformationFull(
                client_id=s.client_id,
                client_secret=secret,
                token_endpoint_auth_method="client_secret_basic" if secret else "none",
                redirect_uris=None,
            )
        return None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.state.client_info = client_info.model_dump(mode="json", exclude_none=True)
        await self._changed()

    def _remember_discovery(self) -> None:
        ctx = self.provider.context if self.provider is not None else None
        if ctx is None:
            return
        if ctx.oauth_metadata is not None:
            self.state.server_metadata = ctx.oauth_metadata.model_dump(mode="json", exclude_none=True)
        if ctx.protected_resource_metadata is not None:
            self.state.resource_metadata = ctx.protected_resource_metadata.model_dump(
                mode="json", exclude_none=True
            )

    async def _changed(self) -> None:
        if self._save is not None:
            await self._save(self.credentials)


class _Restoring:
    """Mixin for the SDK's providers: restore the expiry and the discovered metadata of stored tokens."""

    context: object
    _initialized: bool

    async def _initialize(self) -> None:
        await super()._initialize()  # type: ignore[misc]
        storage: VaultTokenStorage = self.context.storage  # type: ignore[attr-defined]
        s = storage.state
        ctx = self.context
        if s.expires_at is not None:
            # refresh this much before the expiry: a call must not start with a token about to lapse
            ctx.token_expiry_time = s.expires_at.timestamp() - REFRESH_MARGIN.total_seconds()  # type: ignore[attr-defined]
            tokens = ctx.current_tokens  # type: ignore[attr-defined]
            if ctx.token_expiry_time < time.time() and not (tokens and tokens.refresh_token):  # type: ignore[attr-defined]
                ctx.token_expiry_time = None  # type: ignore[attr-defined]  # nothing to refresh with: try it
        if s.server_metadata and ctx.oauth_metadata is None:  # type: ignore[attr-defined]
            ctx.oauth_metadata = OAuthMetadata.model_validate(s.server_metadata)  # type: ignore[attr-defined]
        if s.resource_metadata and ctx.protected_resource_metadata is None:  # type: ignore[attr-defined]
            ctx.protected_resource_metadata = ProtectedResourceMetadata.model_validate(s.resource_metadata)  # type: ignore[attr-defined]


class AuthorizationCodeProvider(_Restoring, OAuthClientProvider):
    pass


class ClientCredentialsProvider(_Restoring, ClientCredentialsOAuthProvider):
    pass


class PrivateKeyJWTProvider(_Restoring, PrivateKeyJWTOAuthProvider):
    pass


def auth_provider(
    server_url: str,
    credentials: McpCredentials,
    save: Save | None,
    *,
    redirect_uri: str = "http://127.0.0.1:8765/callback",
    redirect_handler: Callable[[str], Awaitable[None]] | None = None,
    callback_handler: Callable[[], Awaitable[tuple[str, str | None]]] | None = None,
) -> OAuthClientProvider | None:
    """The httpx auth for a source with OAuth, or None. Without handlers (a worker), an expired
    sign-in that cannot be refreshed fails with the SDK's OAuthFlowError: the caller says to sign in again."""
    state = credentials.oauth
    if state is None:
        return None
    storage = VaultTokenStorage(credentials, save)
    provider: OAuthClientProvider
    if state.grant == "client_credentials" and state.private_key is not None:
        if not state.client_id:
            raise ValueError("OAuth client_credentials with a private key needs `client_id`")
        signer = SignedJWTParameters(
            issuer=state.client_id,
            subject=state.client_id,
            signing_key=state.private_key.get_secret_value(),
            signing_algorithm=state.signing_algorithm,
        )
        provider = PrivateKeyJWTProvider(
            server_url,
            storage,  # type: ignore[arg-type]
            state.client_id,
            signer.create_assertion_provider(),
            scopes=state.scope,
        )
    elif state.grant == "client_credentials":
        if not state.client_id or state.client_secret is None:
            raise ValueError(
                "OAuth client_credentials needs `client_id` and `client_secret` (or `private_key`)"
            )
        provider = ClientCredentialsProvider(
            server_url,
            storage,  # type: ignore[arg-type]
            state.client_id,
            state.client_secret.get_secret_value(),
            scopes=state.scope,
        )
    else:
        metadata = OAuthClientMetadata(
            client_name=CLIENT_NAME,
            redirect_uris=[redirect_uri],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="client_secret_basic" if state.client_secret else "none",
            scope=state.scope,
        )
        provider = AuthorizationCodeProvider(
            server_url,
            metadata,
            storage,  # type: ignore[arg-type]
            redirect_handler=redirect_handler,
            callback_handler=callback_handler,
            client_metadata_url=state.client_metadata_url,
        )
    storage.provider = provider
    return provider
