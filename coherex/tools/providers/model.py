"""A team's model: OpenAI, or any OpenAI-compatible server (Ollama, vLLM, LM Studio, llama.cpp,
OpenRouter, Azure OpenAI's compatible endpoint), connected like any data source.

Its key is sealed in the vault with the team's other credentials; the connection test lists the
server's models and asks the chosen one for one token, so a wrong key, a wrong URL and a model the
server does not have are each told apart before anything is saved. It offers no tools: the
runtime and the builder use it as the team's LLM (`coherex.llm.team`). Every connection passes the
egress guard (a server on this host or the private network needs `COHEREX_EGRESS_ALLOW`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from coherex.integrations.base import Call, Check, Model, ServiceError, SourceType, http_client, json_of, send
from coherex.tools.port import Provider

OPENAI_URL = "https://api.openai.com/v1"


class ModelConfig(Model):
    base_url: str = Field(
        OPENAI_URL,
        title="Base URL",
        description="the server's OpenAI-compatible API, e.g. https://api.openai.com/v1 or http://ollama:11434/v1",
    )
    model: str = Field(
        "gpt-4o-mini", title="Model", description="what runs use unless an agent's spec names another model"
    )

    @field_validator("base_url")
    @classmethod
    def _absolute_http(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.query:
            raise ValueError("must be an http(s) URL with a host, e.g. https://api.openai.com/v1")
        return v.rstrip("/")

    @field_validator("model")
    @classmethod
    def _named(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("name the model, e.g. gpt-4o-mini or llama3.1")
        return v.strip()


class ModelCredentials(Model):
    api_key: SecretStr | None = Field(
        None, title="API key", description="local servers (Ollama, vLLM) usually need none"
    )


def _headers(creds: ModelCredentials) -> dict[str, str]:
    return {"Authorization": f"Bearer {creds.api_key.get_secret_value()}"} if creds.api_key else {}


async def test_connection(call: Call[ModelConfig, ModelCredentials]) -> Check:
    cfg, service = call.config, f"The model server at {call.config.base_url}"
    async with http_client(cfg.base_url, _headers(call.credentials)) as client:
        listed = await send(client, service, "GET", f"{cfg.base_url}/models", check=False)
        if listed.status_code in (401, 403):
            raise ServiceError(f"{service} refused the API key (HTTP {listed.status_code}).", auth=True)
        if listed.status_code == 404:
            raise ServiceError(
                f"{service} has no /models: is this the OpenAI-compatible API's base URL "
                "(often ending in /v1)?"
            )
        names = _model_ids(json_of(listed, service)) if listed.status_code < 400 else []
        if names and cfg.model not in names:
            shown = ", ".join(sorted(names)[:12]) + (" …" if len(names) > 12 else "")
            raise ServiceError(f"{service} has no model {cfg.model!r}. It has: {shown}.")
        answer = await send(
            client,
            service,
            "POST",
            f"{cfg.base_url}/chat/completions",
            check=False,
            json={"model": cfg.model, "messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 1},
        )
        if answer.status_code in (401, 403):
            raise ServiceError(f"{service} refused the API key (HTTP {answer.status_code}).", auth=True)
        if answer.status_code == 404:
            raise ServiceError(f"{service} has no model {cfg.model!r} (HTTP 404).")
        if answer.status_code >= 400:
            raise ServiceError(f"{service} could not answer with {cfg.model!r} (HTTP {answer.status_code}).")
    return Check(True, f"{cfg.model} answers at {cfg.base_url}.", {"models": len(names)})


def _model_ids(body: Any) -> list[str]:
    data = body.get("data") if isinstance(body, dict) else None
    return [str(m["id"]) for m in data or [] if isinstance(m, dict) and m.get("id")]


def _destinations(cfg: ModelConfig, creds: ModelCredentials) -> list[tuple[str, int]]:
    from coherex.egress import destination

    return [destination(cfg.base_url)]


MODEL = SourceType(
    name="model",
    title="Model (OpenAI or an OpenAI-compatible server)",
    config_model=ModelConfig,
    credentials_model=ModelCredentials,
    test_connection=test_connection,
    destinations=_destinations,
)

#: no tools: the team's runs and builder use the source as their LLM
PROVIDER = Provider("model", (), source_type=MODEL)
