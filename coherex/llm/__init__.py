"""The LLM layer: one async `LLMClient` port, two adapters chosen by settings.

- `OPENAI_API_KEY` or `OPENAI_BASE_URL` set → `OpenAIClient` (OpenAI or any compatible server).
- neither → `LocalModelClient`: a small model shipped in a PyPI package, on the CPU, no account.
"""

from __future__ import annotations

from coherex.llm.types import ChatResult, LLMClient, Message, StreamHandler, Tool, ToolCall, Usage
from coherex.settings import Settings, get_settings

__all__ = [
    "ChatResult",
    "LLMClient",
    "Message",
    "StreamHandler",
    "Tool",
    "ToolCall",
    "Usage",
    "get_llm_client",
    "model_in_use",
]


def get_llm_client(settings: Settings | None = None) -> LLMClient:
    settings = settings or get_settings()
    # Imported lazily: the offline model pulls in torch, the hosted path must not pay for it.
    if settings.llm_offline:
        from coherex.llm.local_model import LocalModelClient

        return LocalModelClient.shared()
    from coherex.llm.openai_client import OpenAIClient

    return OpenAIClient.from_settings(settings)


def model_in_use(requested: str | None, settings: Settings | None = None) -> str:
    """The model runs actually talk to, for labels (drafts, the Agents page): the spec's model (else the
    default), or the offline model — which answers whatever a spec asks for — when no OpenAI key or
    server is set."""
    settings = settings or get_settings()
    if settings.llm_offline:
        from coherex.llm.local_model import MODEL_NAME  # no torch at import

        asked = f"; the spec asks for {requested}" if requested else ""
        return f"{MODEL_NAME} (offline: no OPENAI_API_KEY or OPENAI_BASE_URL set{asked})"
    return requested or settings.default_model
