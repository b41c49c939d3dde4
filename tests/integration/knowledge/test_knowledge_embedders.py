"""The ONNX Runtime adapter runs the same packaged weights as the sentence-transformers one: its
vectors must be interchangeable (a collection embedded with one is searched with the other)."""

from __future__ import annotations

import numpy as np
import pytest

from coherex.errors import UserError
from coherex.knowledge.chunk import chunk_blocks
from coherex.knowledge.parse import parse

from .conftest import FABLES_DOCX, FABLES_PDF, FIXTURES
from .test_knowledge_search import QUESTIONS

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    out = [q for q, _, _ in QUESTIONS] + [text for _, text in FABLES_PDF + FABLES_DOCX]
    for path in sorted(FIXTURES.iterdir()):
        out += [c.text for c in chunk_blocks(parse(path.read_bytes(), path.name).blocks)]
    out += ["a", "word " * 400]  # one token; longer than the model's 256 tokens (truncated)
    return out


@pytest.fixture(scope="module")
def torch_vectors(texts) -> np.ndarray:
    from coherex.knowledge._local_embedder import LocalEmbedder

    return np.array(LocalEmbedder().embed(texts))


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_onnx_vectors_match_the_torch_model(tmp_path_factory, texts, torch_vectors, precision):
    from coherex.knowledge._onnx_embedder import OnnxEmbedder

    embedder = OnnxEmbedder(tmp_path_factory.mktemp("models"), precision)
    vectors = np.array(embedder.embed(texts))
    assert vectors.shape == (len(texts), embedder.dim) == torch_vectors.shape
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    cosine = (vectors * torch_vectors).sum(axis=1)
    assert cosine.min() >= (0.999 if precision == "fp32" else 0.98), sorted(cosine)[:3]
    # what a user notices: every question finds the same passage first with either model
    questions = len(QUESTIONS)
    assert [int(np.argmax(vectors[questions:] @ q)) for q in vectors[:questions]] == [
        int(np.argmax(torch_vectors[questions:] @ q)) for q in torch_vectors[:questions]
    ]
    # order is kept although texts are run sorted by length
    assert np.allclose(embedder.embed(texts[3:5]), vectors[3:5], atol=1e-5)
    assert embedder.embed([]) == []
    # the empty text (never embedded: empty queries are refused, chunks have text) is [CLS] [SEP]
    # only, a vector with no meaning, and the one text where int8 strays further (cosine ~0.98)
    [empty] = embedder.embed([""])
    assert abs(np.linalg.norm(empty) - 1) < 1e-4


def test_the_exported_model_is_cached_and_reused(tmp_path):
    from coherex.knowledge import _onnx_embedder

    _onnx_embedder.OnnxEmbedder(tmp_path, "fp32")
    [cached] = tmp_path.iterdir()
    assert cached.name == _onnx_embedder.model_path(tmp_path, "fp32").name
    stamp = cached.stat().st_mtime_ns
    _onnx_embedder.OnnxEmbedder(tmp_path, "fp32")
    assert [p.name for p in tmp_path.iterdir()] == [cached.name] and cached.stat().st_mtime_ns == stamp


def test_an_unknown_precision_names_the_setting(tmp_path):
    from coherex.knowledge._onnx_embedder import OnnxEmbedder

    with pytest.raises(UserError) as err:
        OnnxEmbedder(tmp_path, "fp8")
    assert "COHEREX_EMBEDDINGS_PRECISION" in str(err.value.hint)


def test_without_onnxruntime_the_torch_model_is_used(monkeypatch):
    import sys

    from coherex.knowledge import embed
    from coherex.knowledge._local_embedder import LocalEmbedder

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    embed._local.cache_clear()
    try:
        local = embed._local()
        assert isinstance(local, LocalEmbedder) and local.model == "all-MiniLM-L6-v2"
    finally:
        embed._local.cache_clear()


def test_a_failed_export_falls_back_to_torch(monkeypatch, tmp_path, caplog):
    from coherex.knowledge import _onnx_embedder, embed
    from coherex.knowledge._local_embedder import LocalEmbedder

    monkeypatch.setattr(embed, "get_settings", lambda: type("S", (), {"models_path": tmp_path / "models"})())

    def broken(*_):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(_onnx_embedder, "export", broken)
    embed._local.cache_clear()
    try:
        assert isinstance(embed._local(), LocalEmbedder)
        assert "exporter exploded" in caplog.text
    finally:
        embed._local.cache_clear()
