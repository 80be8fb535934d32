"""`facegate gallery bench-tenants`: the gallery as a shared service, many collections at once.

Creates N collections of a few faces each, then runs identify and enrolment (embedding in,
through the store, no HTTP) at concurrency C against collections picked at random, with the
store's per-call bound and pool as a gateway worker has them; then P collections created at
once. Reports latency per kind, every error by kind, and what the parallel creates answered.
The figures of a run with 2 collections against one with thousands say whether the cost of
a call grows with the number of collections.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gateway.errors import FacegateError
from gateway.gallery_ports import EMBEDDING_DIM, NewFace
from gateway.ops.bench.gallery import refuse_foreign
from gateway.storage.migrations import apply_migrations
from gateway.storage.postgres import PostgresGalleryStore, open_store

RECOGNIZER = "bench-random-vectors"
PREFIX = "tenants-"
TOP = 10


@dataclass(frozen=True)
class TenantsOptions:
    """What to create and run."""

    collections: int = 2
    faces_per_collection: int = 20
    concurrency: int = 32
    calls: int = 2000
    enrol_share: float = 0.5
    parallel_creates: int = 20
    pool_size: int = 8
    statement_timeout_s: float = 10.0
    seed: int = 0
    keep: bool = False
    progress: bool = False
    allow_foreign: bool = False


@dataclass
class TenantsResult:
    collections: int
    setup_s: float
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    mixed_s: float = 0.0
    creates: Counter[str] = field(default_factory=Counter)
    creates_s: float = 0.0


def _unit(rng: np.random.Generator, n: int) -> npt.NDArray[np.float32]:
    x = rng.standard_normal((n, EMBEDDING_DIM)).astype(np.float32)
    out: npt.NDArray[np.float32] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _say(options: TenantsOptions, message: str) -> None:
    if options.progress:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, FacegateError):
        return f"{exc.status_code} {type(exc).__name__}: {exc.message[:80]}"
    return f"{type(exc).__name__}: {str(exc)[:80]}"


async def _setup(store: PostgresGalleryStore, names: list[str], options: TenantsOptions) -> None:
    existing = {c.name for c in await store.list_collections()}
    rng = np.random.default_rng(options.seed)
    queue = [n for n in names if n not in existing]

    async def worker() -> None:
        while queue:
            name = queue.pop()
            await store.create_collection(name, {"bench": True}, RECOGNIZER)
            faces = _unit(rng, options.faces_per_collection)
            await store.add_faces(name, [(f"s{i}", [NewFace(f)]) for i, f in enumerate(faces)])
            done = len(names) - len(queue)
            if done % 500 == 0:
                _say(options, f"  {done}/{len(names)} collections")

    await asyncio.gather(*(worker() for _ in range(min(4, options.pool_size))))


async def _mixed(
    store: PostgresGalleryStore, names: list[str], options: TenantsOptions, result: TenantsResult
) -> None:
    rng = random.Random(options.seed)
    vectors = _unit(np.random.default_rng(options.seed + 1), 256)
    remaining = [options.calls]

    async def worker(w: int) -> None:
        n = 0
        while remaining[0] > 0:
            remaining[0] -= 1
            n += 1
            name = rng.choice(names)
            v = vectors[rng.randrange(len(vectors))]
            kind = "enrol" if rng.random() < options.enrol_share else "identify"
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                if kind == "enrol":
                    await store.add_faces(name, [(f"w{w}-{n}", [NewFace(v)])])
                else:
                    await store.search(name, v[None, :], TOP)
            except Exception as exc:  # every failure is counted and reported
                error = exc
            elapsed = (time.perf_counter() - started) * 1000
            result.latencies_ms.setdefault(kind, []).append(elapsed)
            if error is not None:
                result.errors[f"{kind}: {_outcome(error)}"] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(options.concurrency)))
    result.mixed_s = time.perf_counter() - started


async def _creates(
    store: PostgresGalleryStore, options: TenantsOptions, result: TenantsResult
) -> list[str]:
    stamp = f"{int(time.time())}"
    names = [f"{PREFIX}new-{stamp}-{i}" for i in range(options.parallel_creates)]
    started = time.perf_counter()
    answers = await asyncio.gather(
        *(store.create_collection(n, {}, RECOGNIZER) for n in names), return_exceptions=True
    )
    result.creates_s = time.perf_counter() - started
    for answer in answers:
        result.creates[_outcome(answer if isinstance(answer, BaseException) else None)] += 1
    existing = {c.name for c in await store.list_collections()}
    result.creates["exist afterwards"] = len(set(names) & existing)
    return names


def bench_tenants(url: str, options: TenantsOptions) -> TenantsResult:
    """Create, run mixed traffic, create in parallel; drops what it made unless options.keep."""
    names = [f"{PREFIX}{i:05d}" for i in range(options.collections)]
    apply_migrations(url)
    refuse_foreign(url, PREFIX, options.allow_foreign)

    async def run() -> TenantsResult:
        store = await open_store(
            url,
            pool_size=options.pool_size,
            timeout_s=30,
            migrate=True,
            statement_timeout_s=options.statement_timeout_s,
        )
        try:
            started = time.perf_counter()
            _say(options, f"creating {len(names)} collections of {options.faces_per_collection}")
            await _setup(store, names, options)
            result = TenantsResult(len(names), time.perf_counter() - started)
            _say(options, f"mixed identify/enrol: {options.calls} calls at c={options.concurrency}")
            await _mixed(store, names, options, result)
            _say(options, f"{options.parallel_creates} creates at once")
            created = await _creates(store, options, result)
            if not options.keep:
                _say(options, "deleting the bench collections")
                for name in [*created, *names]:
                    try:
                        await store.delete_collection(name)
                    except FacegateError:
                        continue
            return result
        finally:
            await store.close()

    return asyncio.run(run())


def tenants_report_lines(result: TenantsResult, options: TenantsOptions) -> list[str]:
    lines = [
        f"collections           {result.collections} x {options.faces_per_collection} faces "
        f"(set up in {result.setup_s:.1f} s)",
        f"mixed calls           {options.calls} at c={options.concurrency}, pool "
        f"{options.pool_size}, bound {options.statement_timeout_s:g} s, "
        f"{options.calls / result.mixed_s:.0f}/s",
    ]
    for kind, values in sorted(result.latencies_ms.items()):
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        lines.append(
            f"  {kind:<9} n={len(values):<6d} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  "
            f"p99 {p99:7.1f} ms"
        )
    lines.append(f"errors                {sum(result.errors.values())}")
    lines += [f"  {n:5d}  {what}" for what, n in result.errors.most_common()]
    lines.append(f"parallel creates      {options.parallel_creates} in {result.creates_s:.2f} s:")
    lines += [f"  {n:5d}  {what}" for what, n in sorted(result.creates.items())]
    return lines
