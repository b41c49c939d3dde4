"""Typed settings from the environment and `.env`; they pick every backend.

With nothing set, Coherex runs on the embedded default: Postgres+pgvector in the data dir, the
local sandbox server, the offline model. Setting `DATABASE_URL`, `E2B_API_KEY` or
`OPENAI_API_KEY`/`OPENAI_BASE_URL` switches to the hosted backend — never a code edit.
Every variable is documented in `.env.example`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # where the embedded database, vault key, sandbox scratch space and logs live
    data_dir: Path = Field(Path(".coherex"), validation_alias=_env("COHEREX_DATA_DIR"))

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

    # --- LLM ---
    openai_api_key: SecretStr | None = Field(None, validation_alias=_env("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(None, validation_alias=_env("OPENAI_BASE_URL"))
    default_model: str = Field("gpt-4o-mini", validation_alias=_env("COHEREX_MODEL"))
    # attempts per LLM call (1 = no retry) on 429/5xx/timeouts; seconds before one attempt times out
    llm_max_attempts: int = Field(4, ge=1, validation_alias=_env("COHEREX_LLM_MAX_ATTEMPTS"))
    llm_timeout: float = Field(120.0, gt=0, validation_alias=_env("COHEREX_LLM_TIMEOUT"))

    # --- credentials vault ---
    secret_key: SecretStr | None = Field(None, validation_alias=_env("COHEREX_SECRET_KEY"))

    # --- knowledge ---
    embeddings_backend: Literal["local", "openai"] = Field("local", validation_alias=_env("COHEREX_EMBEDDINGS"))

    # --- who the CLI acts as (it connects to the database directly, under this identity) ---
    cli_user: str | None = Field(None, validation_alias=_env("COHEREX_USER"))
    cli_team: str | None = Field(None, validation_alias=_env("COHEREX_TEAM"))

    log_level: str = Field("INFO", validation_alias=_env("COHEREX_LOG_LEVEL"))

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

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
