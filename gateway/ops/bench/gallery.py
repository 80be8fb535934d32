"""`facegate gallery bench`: a synthetic gallery in PostgreSQL + pgvector, the index build,
identify latency at concurrency 1, throughput at 8, and recall against an exact search.

The data come from gallery_data (uniform random faces, or subjects with several faces each).
Recall@k compares the index's top k faces with an exact search of the same half-precision
vectors in numpy, so it measures the index, not the rounding; the identification rate is how
often the best face belongs to the subject the query shows. Latency is the store's search
(embedding in), without HTTP.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import psycopg

from gateway.ops.bench.gallery_data import SyntheticGallery, exact_top, make_gallery
from gateway.storage import bulk
from gateway.storage.migrations import apply_migrations
from gateway.storage.partitions import HNSW_EF_CONSTRUCTION, HNSW_M
from gateway.storage.postgres import PostgresGalleryStore, open_store

RECOGNIZER = "bench-random-vectors"
CHUNK = 20_000
TOP = 10
# SearchFigures.ef_search of the exact scan.
EXACT = 0
PROGRESS_EVERY_S = 15.0


@dataclass(frozen=True)
class BenchOptions:
    """What to load and measure."""

    faces: int = 100_000
    queries: int = 300
    seed: int = 0
    keep: bool = False
    ef_searches: tuple[int, ...] = (40, 100, 200)
    distribution: str = "uniform"
    faces_per_subject: int = 5
    maintenance_work_mem: str = "2GB"
    progress: bool = False
    # Also measure an exact scan of the partition (no index), for the crossover with HNSW.
    exact: bool = False
    # Run on a database that holds collections other than the bench's own.
    allow_foreign: bool = False
    # The store's per-call bound (a gateway's FACEGATE_GALLERY_STATEMENT_TIMEOUT_S): searches
    # and the erasure's steps run under it; None: unbounded.
    statement_timeout_s: float | None = 10.0


class BenchRefused(Exception):
    """The bench will not run on this database; the message says why and what to do."""


def refuse_foreign(url: str, own_prefix: str, allowed: bool) -> None:
    """Refuse a database with collections not made by a bench, unless `allowed`.

    A bench loads and indexes a large collection and measures with the machine to itself:
    on a live gallery it competes with every identify for the CPU and shared buffers (it
    locks nothing of theirs: its collection is a partition of its own).
    """
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT name FROM gallery_collections WHERE erasing_since IS NULL"
            " AND name NOT LIKE %s ORDER BY name LIMIT 6",
            (own_prefix + "%",),
        ).fetchall()
    if rows and not allowed:
        names = ", ".join(str(r[0]) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
        raise BenchRefused(
            f"the database holds collections that are not the bench's ({names}): point --url "
            "at an empty database (or the default embedded one in a fresh --data-dir), or pass "
            "--i-know-this-is-live to share this one"
        )


@dataclass(frozen=True)
class SearchFigures:
    """Identify (embedding in, top 10 faces) at one HNSW search breadth, or exact (0)."""

    ef_search: int
    p50_ms: float
    p95_ms: float
    throughput_c8: float
    recall_at_1: float
    recall_at_10: float
    identification_rate: float


@dataclass(frozen=True)
class GalleryBenchResult:
    faces: int
    distribution: str
    load_s: float
    index_s: float
    searches: list[SearchFigures]
    sizes_mib: dict[str, float]
    postgres_pss_mib: float | None
    settings: dict[str, str]
    # DELETE of the collection: until the call answered, and until its erasure job was done
    # (the partition dropped, its subjects and row deleted); None with --keep.
    erase_call_s: float | None = None
    erase_done_s: float | None = None


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


def _say(options: BenchOptions, message: str) -> None:
    """A progress line on stderr (the bench's result goes to stdout)."""
    if options.progress:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


class _BuildProgress(threading.Thread):
    """Prints pg_stat_progress_create_index every PROGRESS_EVERY_S while an index builds."""

    def __init__(self, url: str) -> None:
        super().__init__(name="index-progress", daemon=True)
        self._url = url
        self.done = threading.Event()

    def run(self) -> None:
        started = time.perf_counter()
        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self.done.wait(PROGRESS_EVERY_S):
                row = conn.execute(
                    "SELECT phase, tuples_done, tuples_total, blocks_done, blocks_total"
                    " FROM pg_stat_progress_create_index LIMIT 1"
                ).fetchone()
                if row is not None:
                    phase, tuples, tuples_total, blocks, blocks_total = row
                    sys.stderr.write(
                        f"  index build {time.perf_counter() - started:6.0f} s: {phase}, "
                        f"tuples {tuples}/{tuples_total}, blocks {blocks}/{blocks_total}\n"
                    )
                    sys.stderr.flush()


def _server_settings(url: str) -> dict[str, str]:
    names = ("shared_buffers", "max_parallel_maintenance_workers", "effective_cache_size")
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
            (list(names),),
        ).fetchall()
    return {str(name): str(value) for name, value in rows}


async def _measure(
    store: PostgresGalleryStore,
    collection: str,
    data: SyntheticGallery,
    truth: npt.NDArray[np.int64],
    row_of: dict[str, int],
    ef_search: int,
) -> SearchFigures:
    exact = ef_search == EXACT
    latencies: list[float] = []
    hits1 = hits10 = identified = 0
    for q, true, subject in zip(data.queries, truth, data.query_subjects, strict=True):
        started = time.perf_counter()
        (matches,) = await store.search(collection, q[None, :], TOP, ef_search, exact)
        latencies.append((time.perf_counter() - started) * 1000)
        found = [row_of[m.face_id] for m in matches[:TOP]]
        hits1 += found[:1] == [int(true[0])]
        hits10 += len(set(found) & {int(t) for t in true})
        identified += bool(found) and int(data.face_subjects[found[0]]) == int(subject)

    async def worker(rows: npt.NDArray[np.float32]) -> None:
        for q in rows:
            await store.search(collection, q[None, :], TOP, ef_search, exact)

    started = time.perf_counter()
    await asyncio.gather(*(worker(data.queries[i::8]) for i in range(8)))
    throughput = len(data.queries) / (time.perf_counter() - started)
    n = len(data.queries)
    return SearchFigures(
        ef_search,
        float(np.percentile(latencies, 50)),
        float(np.percentile(latencies, 95)),
        throughput,
        hits1 / n,
        hits10 / (TOP * n),
        identified / n,
    )


async def _load(
    store: PostgresGalleryStore,
    url: str,
    collection: str,
    data: SyntheticGallery,
    options: BenchOptions,
) -> dict[str, int]:
    """Bulk-load the faces; returns face id -> row of data.faces."""
    names = {c.name for c in await store.list_collections()}
    if collection in names:
        await store.delete_collection(collection)
    await store.create_collection(collection, {"bench": True}, RECOGNIZER)
    subjects = [f"s{int(s):07d}" for s in data.face_subjects]
    # Whole subjects per chunk: bulk.copy_faces creates each chunk's subjects once.
    chunk = max(1, CHUNK // options.faces_per_subject) * options.faces_per_subject
    row_of: dict[str, int] = {}
    for lo in range(0, len(subjects), chunk):
        ids = await asyncio.to_thread(
            bulk.copy_faces, url, collection, subjects[lo : lo + chunk], data.faces[lo : lo + chunk]
        )
        row_of.update({face_id: lo + i for i, face_id in enumerate(ids)})
        _say(options, f"  loaded {min(lo + chunk, len(subjects))}/{len(subjects)} faces")
    return row_of


async def _erase(store: PostgresGalleryStore, collection: str) -> tuple[float, float]:
    """DELETE the collection as the API does: seconds until the call answered, until done.

    The job runs in this process (the bench's store polls for no jobs): once it is neither
    done nor running here, it failed, and the bench says so instead of waiting for ever.
    """
    started = time.perf_counter()
    job = await store.delete_collection(collection)
    answered_s = time.perf_counter() - started
    while job.state != "done":
        await asyncio.sleep(0.05)
        running = store.job_running(job.id)
        job = await store.get_job(job.id)
        if job.state != "done" and not running:
            raise BenchRefused(
                f"the erasure of the bench collection stopped (job {job.id}); a gateway on "
                "this database finishes it, or run the bench again"
            )
    return answered_s, time.perf_counter() - started


def bench_gallery(url: str, options: BenchOptions) -> GalleryBenchResult:
    """Load, index, measure; the collection is dropped afterwards unless options.keep."""
    apply_migrations(url)
    refuse_foreign(url, "bench-", options.allow_foreign)
    collection = f"bench-{options.distribution}-{options.seed}-{options.faces}"
    _say(options, f"generating {options.faces} {options.distribution} faces")
    data = make_gallery(
        options.distribution,
        options.faces,
        options.queries,
        options.faces_per_subject if options.distribution == "clustered" else 1,
        options.seed,
    )

    async def run() -> GalleryBenchResult:
        store = await open_store(
            url,
            pool_size=8,
            timeout_s=30,
            migrate=False,
            statement_timeout_s=options.statement_timeout_s,
        )
        try:
            started = time.perf_counter()
            row_of = await _load(store, url, collection, data, options)
            load_s = time.perf_counter() - started
            _say(options, f"loaded in {load_s:.1f} s; building the HNSW index")
            progress = _BuildProgress(url)
            if options.progress:
                progress.start()
            try:
                index_s = await asyncio.to_thread(
                    bulk.build_index, url, collection, options.maintenance_work_mem
                )
            finally:
                progress.done.set()
            _say(options, f"index built in {index_s:.1f} s; exact search for the truth")
            truth = exact_top(data.faces, data.queries, TOP)
            for row in data.queries[:50]:  # warm the index into shared buffers before timing
                await store.search(collection, row[None, :], TOP, options.ef_searches[0])
            searches = []
            for ef in options.ef_searches:
                searches.append(await _measure(store, collection, data, truth, row_of, ef))
                _say(options, f"  measured ef_search {ef}")
            if options.exact:
                searches.append(await _measure(store, collection, data, truth, row_of, EXACT))
                _say(options, "  measured the exact scan")
            sizes = await asyncio.to_thread(bulk.relation_sizes_mib, url, collection)
            pss = _pss_mib(await asyncio.to_thread(bulk.server_pid, url))
            settings = await asyncio.to_thread(_server_settings, url)
            settings.update(
                m=str(HNSW_M),
                ef_construction=str(HNSW_EF_CONSTRUCTION),
                maintenance_work_mem=options.maintenance_work_mem,
            )
            erase_call_s = erase_done_s = None
            if not options.keep:
                _say(options, "erasing the bench collection")
                erase_call_s, erase_done_s = await _erase(store, collection)
            return GalleryBenchResult(
                options.faces,
                options.distribution,
                load_s,
                index_s,
                searches,
                sizes,
                pss,
                settings,
                erase_call_s,
                erase_done_s,
            )
        finally:
            await store.close()

    return asyncio.run(run())


def report_lines(result: GalleryBenchResult) -> list[str]:
    """The result as aligned text lines."""
    return [
        f"faces                 {result.faces} ({result.distribution})",
        f"load (binary COPY)    {result.load_s:.1f} s",
        f"HNSW index build      {result.index_s:.1f} s",
        "settings              " + ", ".join(f"{k} {v}" for k, v in result.settings.items()),
        "identify, embedding in, top 10 faces (p50/p95 at c=1, throughput at c=8, recall vs "
        "exact, identification rate):",
        *(
            f"  {'exact scan' if f.ef_search == EXACT else f'ef_search {f.ef_search}':<14}"
            f"  {f.p50_ms:6.2f} / {f.p95_ms:6.2f} ms  "
            f"{f.throughput_c8:5.0f}/s  recall@1 {f.recall_at_1:.3f}  "
            f"recall@10 {f.recall_at_10:.3f}  identified {f.identification_rate:.3f}"
            for f in result.searches
        ),
        "sizes (MiB)           " + ", ".join(f"{k} {v:.0f}" for k, v in result.sizes_mib.items()),
        f"PostgreSQL PSS        {result.postgres_pss_mib:.0f} MiB"
        if result.postgres_pss_mib is not None
        else "PostgreSQL PSS        n/a (not on this machine)",
        f"erasure (DELETE)      answered in {result.erase_call_s:.2f} s, job done in "
        f"{result.erase_done_s:.2f} s"
        if result.erase_call_s is not None and result.erase_done_s is not None
        else "erasure (DELETE)      not measured (--keep)",
    ]
