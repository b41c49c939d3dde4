"""The model a team's runs and builder use: the team's connected `model` source if it has one
(its newest active one), else the install-wide default (`OPENAI_*` settings, or the offline model).

A team's client talks to its server through the egress guard and is kept per source (and
rebuilt when the source changes), so its key is decrypted once per process, not per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from coherex.llm.types import LLMClient
from coherex.settings import Settings, get_settings
from coherex.store.db import Database, Identity


@dataclass(frozen=True)
class TeamModel:
    """The team's connected model: which source, which server, which model by default."""

    source: str
    base_url: str
    model: str
    client: LLMClient

    @property
    def label(self) -> str:
        return f"{self.model} (the team's model {self.source!r})"


_clients: dict[tuple[UUID, datetime], TeamModel] = {}


async def team_model(db: Database, team_id: UUID, settings: Settings | None = None) -> TeamModel | None:
    """The team's model, or None when it has connected none (the install's default applies)."""
    async with db.session(Identity.system()) as s:
        sources = [x for x in await s.sources.list(team_id) if x.type == "model" and x.status == "active"]
    if not sources:
        return None
    source = max(sources, key=lambda x: x.created_at)
    key = (source.id, source.updated_at)
    if key not in _clients:
        from coherex import egress
        from coherex.integrations.service import open_source
        from coherex.llm.openai_client import OpenAIClient
        from coherex.retry import RetryPolicy

        settings = settings or get_settings()
        opened = await open_source(db, source)
        cfg, creds = opened.call.config, opened.call.credentials
        client = OpenAIClient(
            api_key=creds.api_key.get_secret_value() if creds.api_key else None,
            base_url=cfg.base_url,
            default_model=cfg.model,
            timeout=settings.llm_timeout,
            retry=RetryPolicy(max_attempts=settings.llm_max_attempts),
            http_client=egress.async_client(timeout=settings.llm_timeout, follow_redirects=False),
        )
        _clients[key] = TeamModel(source.name, cfg.base_url, cfg.model, client)
    return _clients[key]


async def model_label(db: Database, team_id: UUID, requested: str | None = None) -> str:
    """What a person is told runs their agents: the spec's model on the team's server, the team's
    model, or the install's default (the offline model when nothing is set)."""
    from coherex.llm import model_in_use

    team = await team_model(db, team_id)
    if team is None:
        return model_in_use(requested)
    return f"{requested} (on the team's model server {team.source!r})" if requested else team.label
