"""What an MCP data source stores: its settings (where the server is) and its credentials (vault).

coherex sources add mcp docs --url https://mcp.example.com/mcp --header "Authorization=Bearer …"
coherex sources add mcp fs --command "npx -y @modelcontextprotocol/server-filesystem /home/user"
"""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from coherex.integrations.base import Model

REFRESH_MARGIN = timedelta(seconds=60)  # an access token this close to its expiry is refreshed first


class McpConfig(Model):
    """Exactly one of `url` (a remote server) and `command` (a local one, run in a sandbox box)."""

    url: str | None = Field(None, description="The server's endpoint, e.g. https://mcp.example.com/mcp")
    command: str | None = Field(
        None,
        description="A command that starts a stdio server, e.g. `npx -y @modelcontextprotocol/server-memory`",
    )
    transport: Literal["streamable-http", "sse"] | None = Field(
        None, description="Remote transport; unset: SSE when `url` ends in /sse, Streamable HTTP otherwise"
    )
    network: bool = Field(
        True,
        description="A local server's box may reach the internet (npx/uvx fetch packages); "
        "never the platform",
    )
    timeout: float = Field(60.0, gt=0, le=600, description="Seconds one tool call may take")

    @model_validator(mode="after")
    def _one_target(self) -> McpConfig:
        if bool(self.url) == bool(self.command):
            raise ValueError("give exactly one of `url` (a remote MCP server) and `command` (a local one)")
        if self.command and self.transport:
            raise ValueError("`transport` is for a remote server (`url`); a `command` always speaks stdio")
        return self

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"`url` must be an http(s) URL with a host, not {v!r}")
        return v

    @field_validator("command")
    @classmethod
    def _command(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            words = shlex.split(v)
        except ValueError as exc:
            raise ValueError(f"`command` is not a valid command line ({exc})") from None
        if not words:
            raise ValueError("`command` is empty")
        return v


class OAuthState(Model):
    """OAuth 2.1 for a remote server: a pre-registered client (`client_id`, `client_secret`) or one
    registered dynamically (`client_info`), the tokens, and what discovery found (so that a refresh
    in a later process reaches the right token endpoint)."""

    grant: Literal["authorization_code", "client_credentials"] = "authorization_code"
    client_id: str | None = None
    client_secret: SecretStr | None = None
    scope: str | None = None
    #: client_credentials with private_key_jwt (RFC 7523) instead of a secret: the PEM key and algorithm
    private_key: SecretStr | None = None
    signing_algorithm: str = "RS256"
    #: an https URL serving this platform's OAuth client metadata document (CIMD), used as the
    #: client id where the authorization server supports it (instead of registering a client)
    client_metadata_url: str | None = None
    access_token: SecretStr | None = None
    refresh_token: SecretStr | None = None
    expires_at: datetime | None = None
    token_type: str = "Bearer"
    #: the registered client (dynamic client registration), JSON without the secret
    client_info: dict[str, Any] | None = None
    #: the authorization server's metadata and the protected resource's, as discovered
    server_metadata: dict[str, Any] | None = None
    resource_metadata: dict[str, Any] | None = None

    def expires_soon(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        return (now or datetime.now(UTC)) >= self.expires_at - REFRESH_MARGIN


class McpCredentials(Model):
    """Secrets: HTTP headers for a remote server, environment variables for a local one, OAuth."""

    headers: dict[str, SecretStr] = Field(default_factory=dict)
    env: dict[str, SecretStr] = Field(default_factory=dict)
    oauth: OAuthState | None = None

    def header_values(self) -> dict[str, str]:
        return {k: v.get_secret_value() for k, v in self.headers.items()}

    def env_values(self) -> dict[str, str]:
        return {k: v.get_secret_value() for k, v in self.env.items()}

    def secrets(self) -> list[str]:
        out = [v.get_secret_value() for v in (*self.headers.values(), *self.env.values())]
        if self.oauth is not None:
            o = self.oauth
            for v in (o.client_secret, o.private_key, o.access_token, o.refresh_token):
                if v is not None:
                    out.append(v.get_secret_value())
            if self.oauth.client_info and self.oauth.client_info.get("client_secret"):
                out.append(str(self.oauth.client_info["client_secret"]))
        return [s for s in out if s]


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    """`["K=V", ...]` (CLI `--header`/`--env`) → dict; ValueError names the bad one."""
    out = {}
    for p in pairs:
        key, sep, value = p.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{what} {p.split('=')[0]!r} must look like NAME=VALUE")
        out[key.strip()] = value
    return out
