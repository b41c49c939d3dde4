"""The LLM layer: one async `LLMClient` port, two adapters chosen by settings.

- `OPENAI_API_KEY` or `OPENAI_BASE_URL` set → `OpenAIClient` (OpenAI or any compatible server).
- neither → `LocalModelClient`: a small model shipped in a PyPI package, on the CPU, no account.
"""

from __future__ import annotations

from coherex.llm.types import ChatResult, LLMClient, Message, StreamHandler, Tool, ToolCall, Usage
from coherex.settings import Settings, get_settings

__all__ = ["ChatResult", "LLMClient", "Message", "StreamHandler", "Tool", "ToolCall", "Usage", "get_llm_client"]


def get_llm_client(settings: Settings | None = None) -> LLMClient:
    settings = settings or get_settings()
    # Imported lazily: the offline model pulls in torch, the hosted path must not pay for it.
    if settings.llm_offline:
        from coherex.llm.local_model import LocalModelClient

        return LocalModelClient.shared()
    from coherex.llm.openai_client import OpenAIClient

    return OpenAIClient.from_settings(settings)
