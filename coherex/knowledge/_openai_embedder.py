"""Adapter: embeddings from OpenAI or any OpenAI-compatible server, through the `openai` SDK.

The SDK's own retries (with backoff and Retry-After) handle 429 and 5xx; what is left is mapped
to a `BackendError` that names the setting to change.
"""

from __future__ import annotations

from collections.abc import Sequence

import openai

from coherex.errors import BackendError


class OpenAIEmbedder:
    def __init__(self, model: str, *, api_key: str | None, base_url: str | None, timeout: float = 60.0):
        self.model = f"openai:{model}"
        self._name = model
        self._dim: int | None = None
        self._client = openai.OpenAI(
            api_key=api_key or "not-needed", base_url=base_url, timeout=timeout, max_retries=3
        )

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = len(self.embed(["dimension probe"])[0])
        return self._dim

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        try:
            response = self._client.embeddings.create(model=self._name, input=list(texts))
        except openai.AuthenticationError as exc:
            raise BackendError(
                "The embeddings server refused the API key.",
                hint="Check OPENAI_API_KEY, or set COHEREX_EMBEDDINGS=local.",
            ) from exc
        except openai.NotFoundError as exc:
            raise BackendError(
                f"The embeddings model {self._name!r} does not exist on the server.",
                hint="Set COHEREX_OPENAI_EMBEDDINGS_MODEL to a model the server has.",
            ) from exc
        except openai.APIError as exc:
            raise BackendError(
                f"The embeddings request failed: {exc}",
                hint="Check OPENAI_BASE_URL, or set COHEREX_EMBEDDINGS=local.",
            ) from exc
        vectors = [d.embedding for d in sorted(response.data, key=lambda d: d.index)]
        self._dim = len(vectors[0]) if vectors else self._dim
        return vectors
