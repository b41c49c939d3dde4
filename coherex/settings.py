"""Typed settings from the environment and `.env`; they pick every backend.

With nothing set, Coherex runs on the embedded default: Postgres+pgvector in the data dir, the
local sandbox server, the offline model. Setting `DATABASE_URL`, `E2B_API_KEY` or
`OPENAI_API_KEY`/`OPENAI_BASE_URL` switches to the hosted backend — never a code edit.
Every variable is documented in `.env.example`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


def default_data_dir() -> Path:
    """/var/lib/coherex as root, else $XDG_DATA_HOME/coherex (~/.local/share/coherex). Never under
    /root: as root, pgserver makes every parent of its data dir world-traversable."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/coherex")
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "coherex"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # where the embedded database, vault key, sandbox scratch space and logs live: one per user (or
    # per host as root), so every command finds the running platform from any directory
    data_dir: Path = Field(
        default_factory=lambda: default_data_dir(), validation_alias=_env("COHEREX_DATA_DIR")
    )
    #: where model files made at first use are kept (the embedder's ONNX export); default DATA_DIR/models.
    #: Several data dirs (tests, staging) may share one, so the export happens once per machine.
    models_dir: Path | None = Field(None, validation_alias=_env("COHEREX_MODELS_DIR"))
    #: load the offline model when the web process starts, not at the first test run (`coherex up`
    #: sets it; tests that start many web processes leave it off)
    preload_model: bool = Field(False, validation_alias=_env("COHEREX_PRELOAD_MODEL"))

    # --- database ---
    database_url: SecretStr | None = Field(None, validation_alias=_env("DATABASE_URL"))
    db_port: int = Field(54330, validation_alias=_env("COHEREX_DB_PORT"))
    db_pool_max: int = Field(10, validation_alias=_env("COHEREX_DB_POOL_MAX"))

    # --- sandbox ---
    sandbox_backend: Literal["local", "e2b"] | None = Field(None, validation_alias=_env("COHEREX_SANDBOX"))
    e2b_api_key: SecretStr | None = Field(None, validation_alias=_env("E2B_API_KEY"))
    e2b_domain: str | None = Field(None, validation_alias=_env("E2B_DOMAIN"))
    sandbox_port: int = Field(49982, validation_alias=_env("COHEREX_SANDBOX_PORT"))
    sandbox_pool_size: int = Field(2, validation_alias=_env("COHEREX_SANDBOX_POOL_SIZE"))
    # size of a local sandbox's root file system (/, /root, /opt, ...; /tmp and the home dir have their own)
    sandbox_root_mb: int = Field(256, ge=16, validation_alias=_env("COHEREX_SANDBOX_ROOT_MB"))
    # E2B-compatible endpoints other than E2B's cloud (a self-hosted E2B, another local server)
    e2b_api_url: str | None = Field(None, validation_alias=_env("E2B_API_URL"))
    e2b_sandbox_url: str | None = Field(None, validation_alias=_env("E2B_SANDBOX_URL"))

    # --- LLM ---
    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(None, validation_alias=_env("OPENAI_BASE_URL"))
    default_model: str = Field("gpt-4o-mini", validation_alias=_env("COHEREX_MODEL"))
    # attempts per LLM call (1 = no retry) on 429/5xx/timeouts; seconds before one attempt times out
    llm_max_attempts: int = Field(4, ge=1, validation_alias=_env("COHEREX_LLM_MAX_ATTEMPTS"))
    llm_timeout: float = Field(120.0, gt=0, validation_alias=_env("COHEREX_LLM_TIMEOUT"))

    # --- credentials vault ---
    secret_key: SecretStr | None = Field(None, validation_alias=_env("COHEREX_SECRET_KEY"))

    # --- integrations: service and OAuth endpoints are settings so tests (and proxies) can point
    # them at another server; client ids/secrets are the OAuth apps registered with each provider ---
    slack_api_url: str = Field("https://slack.com/api/", validation_alias=_env("COHEREX_SLACK_API_URL"))
    github_api_url: str = Field("https://api.github.com", validation_alias=_env("COHEREX_GITHUB_API_URL"))
    gmail_api_url: str = Field("https://gmail.googleapis.com", validation_alias=_env("COHEREX_GMAIL_API_URL"))
    google_auth_url: str = Field(
        "https://accounts.google.com/o/oauth2/v2/auth", validation_alias=_env("COHEREX_GOOGLE_AUTH_URL")
    )
    google_token_url: str = Field(
        "https://oauth2.googleapis.com/token", validation_alias=_env("COHEREX_GOOGLE_TOKEN_URL")
    )
    google_revoke_url: str = Field(
        "https://oauth2.googleapis.com/revoke", validation_alias=_env("COHEREX_GOOGLE_REVOKE_URL")
    )
    google_client_id: str | None = Field(None, validation_alias=_env("GOOGLE_CLIENT_ID"))
    google_client_secret: SecretStr | None = Field(None, validation_alias=_env("GOOGLE_CLIENT_SECRET"))
    github_auth_url: str = Field(
        "https://github.com/login/oauth/authorize", validation_alias=_env("COHEREX_GITHUB_AUTH_URL")
    )
    github_token_url: str = Field(
        "https://github.com/login/oauth/access_token", validation_alias=_env("COHEREX_GITHUB_TOKEN_URL")
    )
    github_client_id: str | None = Field(None, validation_alias=_env("GITHUB_CLIENT_ID"))
    github_client_secret: SecretStr | None = Field(None, validation_alias=_env("GITHUB_CLIENT_SECRET"))
    slack_auth_url: str = Field(
        "https://slack.com/oauth/v2/authorize", validation_alias=_env("COHEREX_SLACK_AUTH_URL")
    )
    slack_client_id: str | None = Field(None, validation_alias=_env("SLACK_CLIENT_ID"))
    slack_client_secret: SecretStr | None = Field(None, validation_alias=_env("SLACK_CLIENT_SECRET"))
    # the public URL of the OAuth callback (`/oauth/callback` on the Chainlit server)
    oauth_redirect_url: str = Field(
        "http://localhost:8000/oauth/callback", validation_alias=_env("COHEREX_OAUTH_REDIRECT_URL")
    )
    # attempts per integration call on 429 (and 5xx for reads); longest Retry-After we wait for; timeout
    integration_max_attempts: int = Field(4, ge=1, validation_alias=_env("COHEREX_INTEGRATION_MAX_ATTEMPTS"))
    integration_max_retry_after: float = Field(
        60.0, ge=0, validation_alias=_env("COHEREX_INTEGRATION_MAX_RETRY_AFTER")
    )
    integration_timeout: float = Field(30.0, gt=0, validation_alias=_env("COHEREX_INTEGRATION_TIMEOUT"))
    # how old a data source's discovered tool list (MCP, OpenAPI) may get before maintenance reads it again
    tools_refresh_seconds: float = Field(3600.0, gt=0, validation_alias=_env("COHEREX_TOOLS_REFRESH_SECONDS"))
    # destinations data sources and agent tools may reach although they are loopback, private or the
    # platform's own (coherex/egress.py): a comma list of CIDRs, host:port and hosts
    egress_allow: str = Field("", validation_alias=_env("COHEREX_EGRESS_ALLOW"))

    # --- knowledge ---
    embeddings_backend: Literal["local", "openai"] = Field(
        "local", validation_alias=_env("COHEREX_EMBEDDINGS")
    )
    # the OpenAI (or OpenAI-compatible) embeddings model, used when COHEREX_EMBEDDINGS=openai
    openai_embeddings_model: str = Field(
        "text-embedding-3-small", validation_alias=_env("COHEREX_OPENAI_EMBEDDINGS_MODEL")
    )
    # texts per embedding call (also the step of ingest progress)
    embeddings_batch_size: int = Field(32, ge=1, validation_alias=_env("COHEREX_EMBEDDINGS_BATCH_SIZE"))
    # local model run by ONNX Runtime: int8 (default, cosine >= 0.99 to fp32) or fp32 (identical to torch)
    embeddings_precision: Literal["int8", "fp32"] = Field(
        "int8", validation_alias=_env("COHEREX_EMBEDDINGS_PRECISION")
    )
    # largest file `kb add` / upload accepts, checked before the file is read
    kb_max_file_mb: float = Field(50.0, gt=0, validation_alias=_env("COHEREX_KB_MAX_FILE_MB"))

    # --- queue and workers ---
    worker_concurrency: int = Field(4, ge=1, validation_alias=_env("COHEREX_WORKER_CONCURRENCY"))
    # a running execution proves it is alive this often; 3 missed beats and it is taken as dead
    heartbeat_seconds: float = Field(5.0, gt=0, validation_alias=_env("COHEREX_HEARTBEAT_SECONDS"))
    max_attempts: int = Field(3, ge=1, validation_alias=_env("COHEREX_MAX_ATTEMPTS"))
    #: how deep sub-agents may nest (a run calling an agent calling an agent is depth 2)
    max_agent_depth: int = Field(3, ge=0, le=10, validation_alias=_env("COHEREX_MAX_AGENT_DEPTH"))

    # --- chat (Chainlit builder) ---
    # the time zone of schedules made for a person whose own is not known (IANA name; each person's
    # comes from their browser, the chat settings or `coherex users set-timezone`)
    chat_timezone: str = Field("UTC", validation_alias=_env("COHEREX_TIMEZONE"))

    # --- the address people and scripts reach the web process at (https://coherex.example.com): the
    # only Origin a request signed in by the chat's cookie may come from; unset, the request's own host ---
    public_url: str | None = Field(None, validation_alias=_env("COHEREX_PUBLIC_URL"))
    # --- e-mail the platform sends (approval requests; coherex/mail.py): smtp://user:pass@host:587
    # (STARTTLS) or smtps://user:pass@host:465; unset, no mail is sent ---
    smtp_url: SecretStr | None = Field(None, validation_alias=_env("COHEREX_SMTP_URL"))
    smtp_from: str | None = Field(None, validation_alias=_env("COHEREX_SMTP_FROM"))
    #: an OAuth 2.1 authorization server that issues tokens for /mcp (named in its resource metadata)
    oauth_issuer: str | None = Field(None, validation_alias=_env("COHEREX_OAUTH_ISSUER"))
    # --- HTTP API: requests per API key or chat user, average and burst (shared by all web processes) ---
    api_rate_per_second: float = Field(20.0, gt=0, validation_alias=_env("COHEREX_API_RATE"))
    api_rate_burst: float = Field(60.0, ge=1, validation_alias=_env("COHEREX_API_BURST"))
    # --- password sign-in: failed tries allowed, then one more every N seconds (per account) ---
    login_attempts: int = Field(10, ge=1, validation_alias=_env("COHEREX_LOGIN_ATTEMPTS"))
    login_retry_seconds: float = Field(60.0, gt=0, validation_alias=_env("COHEREX_LOGIN_RETRY_SECONDS"))

    # --- who the CLI acts as (it connects to the database directly, under this identity) ---
    cli_user: str | None = Field(None, validation_alias=_env("COHEREX_USER"))
    cli_team: str | None = Field(None, validation_alias=_env("COHEREX_TEAM"))

    # --- dashboard: which reader it uses (`sql` over the database connection, or `supabase` through
    # PostgREST with the signed-in person's JWT, signed with the project's JWT secret) ---
    dashboard_reader: Literal["sql", "supabase"] = Field(
        "sql", validation_alias=_env("COHEREX_DASHBOARD_READER")
    )
    supabase_url: str | None = Field(None, validation_alias=_env("SUPABASE_URL"))
    supabase_anon_key: SecretStr | None = Field(None, validation_alias=_env("SUPABASE_ANON_KEY"))
    supabase_jwt_secret: SecretStr | None = Field(None, validation_alias=_env("SUPABASE_JWT_SECRET"))
    # seconds between refreshes of a running execution's steps
    dashboard_poll_seconds: float = Field(2.0, gt=0, validation_alias=_env("COHEREX_DASHBOARD_POLL_SECONDS"))

    log_level: str = Field("INFO", validation_alias=_env("COHEREX_LOG_LEVEL"))

    @field_validator("chat_timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        from coherex.errors import UserError
        from coherex.services.users import canonical_timezone

        try:
            return canonical_timezone(v)
        except UserError as exc:  # reported at start, naming the setting
            raise ValueError(f"COHEREX_TIMEZONE: {exc.message}") from None

    @field_validator("egress_allow")
    @classmethod
    def _egress_rules(cls, v: str) -> str:
        from coherex.egress import parse_allow

        parse_allow(v)  # a typo is reported at start, naming the entry, not at the first connection
        return v

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def models_path(self) -> Path:
        return self.models_dir.expanduser().resolve() if self.models_dir else self.data_path / "models"

    @property
    def pgdata(self) -> Path:
        return self.data_path / "pgdata"

    @property
    def embedded_db(self) -> bool:
        return self.database_url is None

    @property
    def sandbox(self) -> Literal["local", "e2b"]:
        if self.sandbox_backend:
            return self.sandbox_backend
        return "e2b" if self.e2b_api_key else "local"

    @property
    def llm_offline(self) -> bool:
        return self.openai_api_key is None and self.openai_base_url is None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    """Tests and `coherex` sub-commands that change the environment call this."""
    get_settings.cache_clear()
