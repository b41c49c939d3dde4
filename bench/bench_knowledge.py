"""Knowledge base: ingestion throughput, hybrid-search latency at 10k and 100k chunks, and HNSW
recall@10 against exact search. Targets (issue 8): ≥ 200 chunks/s ingest, p95 < 30 ms at 100k,
recall@10 ≥ 0.95.

Ingestion runs the real path (parse, chunk, embed with the local MiniLM model, store) on real
English text (CPython's documentation topics). The search
corpus is synthetic — clustered random unit vectors (like real embeddings, they are not uniform)
and random-word text, bulk-loaded with binary COPY — then searched through the real repository
query (RLS, hybrid vector + full-text, RRF, highlight) as a team member.

    python bench/bench_knowledge.py            # ~5 minutes on 2 cores
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).parent))
# the code of this checkout, not whatever copy of coherex is installed
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
from _common import percentiles, record  # noqa: E402

from coherex.knowledge import ingest_file  # noqa: E402
from coherex.knowledge.chunk import chunk_blocks  # noqa: E402
from coherex.knowledge.embed import get_embedder  # noqa: E402
from coherex.knowledge.parse import parse  # noqa: E402
from coherex.knowledge.search import text_query  # noqa: E402
from coherex.settings import get_settings  # noqa: E402
from coherex.store.db import Database, Identity  # noqa: E402
from coherex.store.repos.knowledge import EF_SEARCH, FTS_CAP  # noqa: E402
from coherex.testing.postgres import TestPostgres  # noqa: E402

DIM = 384
ROOT = Path(__file__).resolve().parent.parent
SIZES = (10_000, 100_000)
QUERIES = 200
RECALL_QUERIES = 100
LATENT_DIM = 32
rng = np.random.default_rng(42)
VOCAB = [
    "".join(random.Random(i).choices("abcdefghijklmnopqrstuvwxyz", k=random.Random(-i).randint(4, 9)))
    for i in range(20_000)
]
# Zipf's law, as in real text: the word of rank r is used in proportion to 1/r
_CUM = np.cumsum(1 / np.arange(1, len(VOCAB) + 1))
_CUM /= _CUM[-1]


def words(n: int, r: random.Random) -> str:
    return " ".join(VOCAB[i] for i in np.searchsorted(_CUM, [r.random() for _ in range(n)]))


async def setup(pg: TestPostgres) -> tuple[Database, Identity, object, str]:
    urls = pg.create_database()
    db = await Database(urls.app, max_size=4).open()
    async with db.session(Identity.system()) as s:
        user = await s.users.create("bench@example.com", display_name="bench")
    async with db.session(Identity.user(user.id)) as s:
        team = await s.teams.create("bench", "Bench")
    return db, Identity.user(user.id), team.id, urls.admin


class _RandomEmbedder:
    """Stands in for the model to measure the rest of the pipeline (parse, chunk, store)."""

    model = "all-MiniLM-L6-v2"
    dim = DIM

    def embed(self, texts):
        v = rng.normal(0, 1, (len(texts), DIM))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).tolist()


def english_corpus() -> list[tuple[str, bytes]]:
    """Real English prose: CPython's own documentation topics (the text `help('assert')` shows),
    which ship with every Python — 79 documents, ~600 chunks of technical English."""
    from pydoc_data.topics import topics

    return [(f"{key}.txt", text.encode()) for key, text in sorted(topics.items())]


async def bench_ingest(db: Database, identity: Identity, team_id) -> dict:
    from coherex.knowledge import embed

    docs = english_corpus()
    embedder = get_embedder()
    embedder.embed(["warm up"])
    t = time.perf_counter()
    chunks = [chunk_blocks(parse(data, name).blocks) for name, data in docs]
    parse_s = time.perf_counter() - t
    n = sum(len(c) for c in chunks)
    texts = [c.text for cs in chunks for c in cs]
    t = time.perf_counter()
    for name, data in docs:
        await ingest_file(db, identity, team_id, "ingest", data, name)
    total_s = time.perf_counter() - t
    t = time.perf_counter()
    embedder.embed(texts)
    embed_s = time.perf_counter() - t

    real_local = embed._local
    embed._local = lambda: _RandomEmbedder()
    try:
        t = time.perf_counter()
        for name, data in docs:
            await ingest_file(db, identity, team_id, "ingest-no-model", data, name)
        no_model_s = time.perf_counter() - t
    finally:
        embed._local = real_local
    # the same texts through the other backends, same conditions
    backends = {"onnx_" + getattr(embedder, "precision", "?"): embedder}
    from coherex.knowledge._local_embedder import LocalEmbedder
    from coherex.knowledge._onnx_embedder import OnnxEmbedder

    backends["onnx_fp32"] = OnnxEmbedder(get_settings().models_path, "fp32")
    backends["torch_fp32"] = LocalEmbedder()
    compare: dict = {}
    for name, e in backends.items():
        e.embed(["warm up"])
        t, cpu = time.perf_counter(), time.process_time()
        e.embed(texts)
        compare.setdefault("chunks_per_s", {})[name] = round(n / (time.perf_counter() - t), 1)
        # chunks per CPU-second of this process: steadier than wall time when other work shares
        # the cores (x2 = the rate on 2 idle cores, if the backend keeps both busy)
        compare.setdefault("chunks_per_cpu_s", {})[name] = round(n / (time.process_time() - cpu), 1)
    tokens = [len(x.ids) for x in backends["onnx_fp32"]._tokenizer.encode_batch(texts)]
    mean_tokens = float(np.mean(tokens))
    # MiniLM-L6: 6 layers x (4 x 384^2 + 2 x 384 x 1536) multiply-adds per token in its matrix products
    macs_per_token = 6 * (4 * 384 * 384 + 2 * 384 * 1536)
    return {
        "corpus": f"CPython documentation topics (pydoc_data), {len(docs)} documents",
        "documents": len(docs),
        "chunks": n,
        "mean_chunk_chars": round(sum(map(len, texts)) / n),
        "mean_tokens_per_chunk": round(mean_tokens),
        "end_to_end_chunks_per_s": round(n / total_s, 1),
        "end_to_end_tokens_per_s": round(sum(tokens) / total_s),
        "embed_only_chunks_per_s": round(n / embed_s, 1),
        "embed_only_int8_tera_ops_per_s": round(2 * macs_per_token * sum(tokens) / embed_s / 1e12, 2),
        "parse_and_chunk_chunks_per_s": round(n / parse_s, 1),
        "pipeline_without_model_chunks_per_s": round(n / no_model_s, 1),
        "embedder": f"{embedder.model} ({type(embedder).__name__}, {getattr(embedder, 'precision', 'fp32')})",
        "embed_only_by_backend": compare,
        "note": "end to end = parse + chunk + embed (local model) + one transaction per file; the model is "
        ">85% of the time ('without model' runs the same path with random vectors). MiniLM's matrix "
        "products are 10.6 M multiply-adds a token; ONNX Runtime's profile shows its int8 products "
        "running at ~170 G multiply-adds/s per core (about one 512-bit VNNI op per cycle), half of "
        "the model's time (attention, layer norms, GELU are the rest). Even if everything else were "
        "free, 2 cores would cap at ~150 chunks/s of 213 tokens: 200/s is out of reach for this model "
        "on this machine.",
    }


def clustered_vectors(n: int, projection: np.ndarray) -> np.ndarray:
    """Unit vectors with a low intrinsic dimension, like sentence embeddings (isotropic random
    384-d vectors are all nearly equidistant, which no real corpus is)."""
    latent = rng.normal(0, 1, (n, projection.shape[0])).astype(np.float32)
    v = latent @ projection + rng.normal(0, 0.02, (n, DIM)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def bulk_load(admin_url: str, team_id, collection_id, start: int, n: int, projection: np.ndarray) -> float:
    """COPY n synthetic chunks (one document per 100) with the HNSW index dropped, then rebuild it."""
    from pgvector.psycopg import register_vector

    t = time.perf_counter()
    r = random.Random(start)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        register_vector(conn)
        conn.execute("drop index if exists public.knowledge_chunks_embedding_384_idx")
        doc_ids = [
            row[0]
            for row in conn.execute(
                "insert into public.knowledge_documents (team_id, collection_id, source, title, "
                "content_hash, status) "
                "select %s, %s, 'synthetic-' || g, 'Synthetic ' || g, md5('doc' || g), 'ready' "
                "from generate_series(%s::int, %s::int) g returning id",
                (team_id, collection_id, start // 100, (start + n) // 100 - 1),
            ).fetchall()
        ]
        vectors = clustered_vectors(n, projection)
        with (
            conn.cursor() as cur,
            cur.copy(
                "copy public.knowledge_chunks (team_id, collection_id, document_id, chunk_index, content, "
                "content_hash, metadata, embedding, embedding_dim) from stdin with (format binary)"
            ) as copy,
        ):
            copy.set_types(["uuid", "uuid", "uuid", "int4", "text", "text", "jsonb", "vector", "int4"])
            for i in range(n):
                text = words(120, r)
                copy.write_row(
                    (
                        team_id,
                        collection_id,
                        doc_ids[i // 100],
                        i % 100,
                        text,
                        f"h{start + i}",
                        psycopg.types.json.Jsonb({"source": f"synthetic-{(start + i) // 100}"}),
                        vectors[i],
                        DIM,
                    )
                )
        load_s = time.perf_counter() - t
        conn.execute("set maintenance_work_mem = '1GB'")
        conn.execute("set max_parallel_maintenance_workers = 1")
        conn.execute(
            "create index knowledge_chunks_embedding_384_idx on public.knowledge_chunks "
            "using hnsw ((embedding::extensions.vector(384)) extensions.vector_cosine_ops) where "
            "embedding_dim = 384"
        )
        conn.execute("analyze public.knowledge_chunks")
    index_s = time.perf_counter() - t - load_s
    print(f"  loaded {n} chunks in {load_s:.1f}s, index built in {index_s:.1f}s", flush=True)
    return index_s


async def bench_search(db: Database, identity: Identity, team_id, projection: np.ndarray, size: int) -> dict:
    async with db.session(identity) as s:
        coll = await s.knowledge.get_collection(team_id, "synthetic")
    r = random.Random(size)
    queries = [(text_query(words(r.randint(2, 6), r)), q) for q in clustered_vectors(QUERIES, projection)]
    for q, v in queries[:10]:  # warm the cache
        async with db.session(identity) as s:
            await s.knowledge.search(coll, q, v.tolist(), k=10)
    lat, empty = [], 0
    for q, v in queries:
        t = time.perf_counter()
        async with db.session(identity) as s:
            hits = await s.knowledge.search(coll, q, v.tolist(), k=10)
        lat.append((time.perf_counter() - t) * 1000)
        empty += not hits
    out = {"hybrid_search_k10": percentiles(lat), "queries_with_no_hits": empty}

    # the plan must use the partial HNSW index
    async with db.connection(identity) as conn:
        await conn.execute("select set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        plan = await (
            await conn.execute(
                "explain select id from public.knowledge_chunks c where c.collection_id = %s and "
                "c.embedding_dim = 384 "
                "order by (c.embedding::extensions.vector(384)) operator(extensions.<=>) "
                "%s::extensions.vector(384) limit 40",
                (coll.id, str(queries[0][1].tolist())),
            )
        ).fetchall()
    out["vector_side_uses_hnsw"] = any("knowledge_chunks_embedding_384_idx" in row[0] for row in plan)
    out["recall_at_10"] = await recall(db, identity, coll.id, projection)
    return out


async def recall(db: Database, identity: Identity, collection_id, projection: np.ndarray) -> dict:
    sql = (
        "select id from public.knowledge_chunks c where c.collection_id = %s and c.embedding_dim = 384 "
        "order by (c.embedding::extensions.vector(384)) operator(extensions.<=>) %s::extensions.vector(384) "
        "limit 10"
    )
    results = {}
    queries = clustered_vectors(RECALL_QUERIES, projection)
    for ef in (40, 100, EF_SEARCH, 200):
        found = total = 0
        for v in queries:
            lit = str(v.tolist())
            async with db.connection(identity) as conn:
                await conn.execute("select set_config('hnsw.ef_search', %s, true)", (str(ef),))
                approx = {
                    r[0]
                    for r in await (await conn.execute(sql, (collection_id, lit), prepare=False)).fetchall()
                }
            async with db.connection(identity) as conn:
                await conn.execute("set local enable_indexscan = off")
                exact = {
                    r[0]
                    for r in await (await conn.execute(sql, (collection_id, lit), prepare=False)).fetchall()
                }
            found += len(approx & exact)
            total += len(exact)
        results[f"ef_search_{ef}"] = round(found / total, 4)
    return results


async def main() -> None:
    pg = TestPostgres.start()
    try:
        db, identity, team_id, admin_url = await setup(pg)
        print("ingest ...", flush=True)
        results: dict = {"ingest": await bench_ingest(db, identity, team_id)}
        print(results["ingest"], flush=True)
        async with db.session(identity) as s:
            coll = await s.knowledge.get_or_create_collection(team_id, "synthetic", "all-MiniLM-L6-v2", DIM)
        projection = rng.normal(0, 1 / np.sqrt(LATENT_DIM), (LATENT_DIM, DIM)).astype(np.float32)
        loaded = 0
        for size in SIZES:
            print(f"search at {size} chunks ...", flush=True)
            index_s = bulk_load(admin_url, team_id, coll.id, loaded, size - loaded, projection)
            loaded = size
            results[f"search_{size}"] = {
                "hnsw_build_s": round(index_s, 1),
                **await bench_search(db, identity, team_id, projection, size),
            }
            print(results[f"search_{size}"], flush=True)
        results["settings"] = {
            "candidates_per_side": 40,
            "ef_search": EF_SEARCH,
            "rrf_k": 60,
            "fts_cap": FTS_CAP,
            "enable_seqscan": "off (keyword side through GIN)",
            "iterative_scan": "relaxed_order",
            "synthetic_vectors": f"{LATENT_DIM}-d latent, projected",
            "hnsw": "m=16, ef_construction=64 (pgvector defaults)",
        }
        # other work on this machine skews latencies: say how busy it was
        results["load_average_1_5_15_min_at_end"] = [round(x, 2) for x in os.getloadavg()]
        await db.close()
        record("knowledge", results)
    finally:
        pg.stop()


if __name__ == "__main__":
    asyncio.run(main())
