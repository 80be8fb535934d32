"""`facegate gallery bench`: N random faces in PostgreSQL + pgvector, index build, identify
latency at concurrency 1, throughput at 8, and recall against an exact search.

Queries are enrolled faces plus noise (a new photo of a known person: cosine ~0.7 to its
own face), so the true nearest face is known. Recall@k compares the index's top k with an
exact search of the same half-precision vectors in numpy, so it measures the index, not
the rounding. Latency is the store's search (embedding in), without HTTP.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from gateway.gallery_ports import EMBEDDING_DIM
from gateway.storage import bulk
from gateway.storage.migrations import apply_migrations
from gateway.storage.postgres import PostgresGalleryStore, open_store

RECOGNIZER = "bench-random-vectors"
CHUNK = 20_000


TOP = 10


@dataclass(frozen=True)
class SearchFigures:
    """Identify (embedding in, top 10) at one HNSW search breadth."""

    ef_search: int
    p50_ms: float
    p95_ms: float
    throughput_c8: float
    recall_at_1: float
    recall_at_10: float


@dataclass(frozen=True)
class GalleryBenchResult:
    faces: int
    load_s: float
    index_s: float
    searches: list[SearchFigures]
    sizes_mib: dict[str, float]
    postgres_pss_mib: float | None


def unit_vectors(n: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """n random L2-normalised float32 (n, EMBEDDING_DIM) vectors, rounded to half precision."""
    x = rng.standard_normal((n, EMBEDDING_DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float16).astype(np.float32)


def noisy_queries(
    stored: npt.NDArray[np.float32], picks: npt.NDArray[np.int64], rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """The picked faces plus isotropic noise, normalised: cosine ~0.7 to their source."""
    noise = rng.standard_normal((len(picks), EMBEDDING_DIM), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    q = stored[picks] + noise
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q.astype(np.float32)


def exact_top(
    stored: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], k: int
) -> npt.NDArray[np.int64]:
    """Row indexes of the k most similar stored vectors per query, best first (exact)."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for lo in range(0, len(queries), 64):
        sims = queries[lo : lo + 64] @ stored.T
        top = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        out[lo : lo + 64] = np.take_along_axis(top, order, axis=1)
    return out


def _pss_mib(pid: int) -> float | None:
    """Proportional set size of a process tree (shared buffers counted once), in MiB."""
    from gateway.ops.procfs import descendants

    total_kib = 0
    for p in descendants(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
        except OSError:
            continue
    return total_kib / 1024 if total_kib else None


async def _measure(
    store: PostgresGalleryStore,
    collection: str,
    queries: npt.NDArray[np.float32],
    truth: list[list[str]],
    ef_search: int,
) -> SearchFigures:
    latencies: list[float] = []
    hits1 = hits10 = 0
    for q, true in zip(queries, truth, strict=True):
        started = time.perf_counter()
        (matches,) = await store.search(collection, q[None, :], TOP, ef_search)
        latencies.append((time.perf_counter() - started) * 1000)
        found = [m.subject for m in matches[:TOP]]
        hits1 += found[:1] == true[:1]
        hits10 += len(set(found) & set(true))

    async def worker(rows: npt.NDArray[np.float32]) -> None:
        for q in rows:
            await store.search(collection, q[None, :], TOP, ef_search)

    started = time.perf_counter()
    await asyncio.gather(*(worker(queries[i::8]) for i in range(8)))
    throughput = len(queries) / (time.perf_counter() - started)
    return SearchFigures(
        ef_search,
        float(np.percentile(latencies, 50)),
        float(np.percentile(latencies, 95)),
        throughput,
        hits1 / len(queries),
        hits10 / (TOP * len(queries)),
    )


def bench_gallery(
    url: str,
    faces: int,
    queries: int,
    seed: int,
    keep: bool,
    ef_searches: tuple[int, ...] = (40, 100, 200),
) -> GalleryBenchResult:
    """Load, index, measure; the collection is dropped afterwards unless keep."""
    apply_migrations(url)
    rng = np.random.default_rng(seed)
    collection = f"bench-{seed}-{faces}"
    stored = unit_vectors(faces, rng)
    subjects = [f"s{i:07d}" for i in range(faces)]

    async def run() -> GalleryBenchResult:
        store = await open_store(url, pool_size=8, timeout_s=30, migrate=False)
        try:
            names = {c.name for c in await store.list_collections()}
            if collection in names:
                await store.delete_collection(collection)
            await store.create_collection(collection, {"bench": True}, RECOGNIZER)
            started = time.perf_counter()
            for lo in range(0, faces, CHUNK):
                await asyncio.to_thread(
                    bulk.copy_faces,
                    url,
                    collection,
                    subjects[lo : lo + CHUNK],
                    stored[lo : lo + CHUNK],
                )
            load_s = time.perf_counter() - started
            index_s = await asyncio.to_thread(bulk.build_index, url, collection)
            picks = rng.choice(faces, size=min(queries, faces), replace=False)
            q = noisy_queries(stored, picks, rng)
            truth = [[subjects[i] for i in row] for row in exact_top(stored, q, TOP)]
            for row in q[:50]:  # warm the index into shared buffers before timing
                await store.search(collection, row[None, :], TOP, ef_searches[0])
            searches = [await _measure(store, collection, q, truth, ef) for ef in ef_searches]
            sizes = await asyncio.to_thread(bulk.relation_sizes_mib, url, collection)
            pss = _pss_mib(await asyncio.to_thread(bulk.server_pid, url))
            if not keep:
                await store.delete_collection(collection)
            return GalleryBenchResult(faces, load_s, index_s, searches, sizes, pss)
        finally:
            await store.close()

    return asyncio.run(run())


def report_lines(result: GalleryBenchResult) -> list[str]:
    """The result as aligned text lines."""
    return [
        f"faces                 {result.faces}",
        f"load (binary COPY)    {result.load_s:.1f} s",
        f"HNSW index build      {result.index_s:.1f} s",
        "identify, embedding in, top 10 (p50/p95 at c=1, throughput at c=8, recall vs exact):",
        *(
            f"  ef_search {f.ef_search:<4d}  {f.p50_ms:6.2f} / {f.p95_ms:6.2f} ms  "
            f"{f.throughput_c8:5.0f}/s  recall@1 {f.recall_at_1:.3f}  recall@10 {f.recall_at_10:.3f}"
            for f in result.searches
        ),
        "sizes (MiB)           " + ", ".join(f"{k} {v:.0f}" for k, v in result.sizes_mib.items()),
        f"PostgreSQL PSS        {result.postgres_pss_mib:.0f} MiB"
        if result.postgres_pss_mib is not None
        else "PostgreSQL PSS        n/a (not on this machine)",
    ]
