"""`facegate gallery bench-cluster`: cluster time of a collection of modelled faces.

A collection of N faces from people_data's model (people with 2-12 faces, same-person
cosines 0.5-0.75, strangers below 0.2, singletons): some people named (a few enrolled faces
each), everything else unassigned. Loaded by COPY with one index build, then one cluster
run over every unassigned face (timed, step by step), scored against the truth; then an
incremental run over `increment` faces held back and enrolled afterwards (timed).
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg
from pgvector import HalfVector
from pgvector.psycopg import register_vector
from psycopg import sql

from gateway.ops.bench.people_data import ModelledPeople, adjusted_rand_index, modelled_people
from gateway.service.clustering import Clustering, ClusterResult
from gateway.service.grouping import GroupParams
from gateway.storage import bulk
from gateway.storage.migrations import apply_migrations
from gateway.storage.partitions import index_name
from gateway.storage.postgres import open_store

RECOGNIZER = "bench-modelled-people"
MEAN_FACES_PER_PERSON = 7  # the model draws 2..12 uniformly


@dataclass(frozen=True)
class ClusterBenchOptions:
    """What to load and run."""

    faces: int = 100_000
    seed: int = 0
    singleton_share: float = 0.1
    named_share: float = 0.05
    enrolled_per_named: int = 3
    increment: int = 1000
    min_faces: int = 3
    max_distance: float = 0.5
    ef_search: int = 100
    keep: bool = False
    progress: bool = False


@dataclass(frozen=True)
class ClusterScore:
    """The outcome against the truth."""

    ari: float
    named_joined: float
    new_subjects: int
    purity: float
    singletons_unassigned: float
    named_moved: int


@dataclass(frozen=True)
class ClusterBenchResult:
    faces: int
    unassigned: int
    load_s: float
    index_s: float
    cluster_s: float
    first: ClusterResult
    score: ClusterScore
    increment: int
    increment_s: float
    second: ClusterResult


def _say(options: ClusterBenchOptions, message: str) -> None:
    if options.progress:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


def _copy(
    url: str,
    collection: str,
    subjects: list[str | None],
    embeddings: npt.NDArray[np.float32],
    drop_index: bool,
) -> list[str]:
    """COPY faces (None: unassigned) and their named subjects; returns face ids. Loading
    into a new collection drops its index first (bulk.build_index builds it once after)."""
    ids = [uuid.uuid4() for _ in subjects]
    with psycopg.connect(url) as conn:
        register_vector(conn)
        row = conn.execute("SELECT id FROM gallery_collections WHERE name = %s", (collection,))
        found = row.fetchone()
        assert found is not None
        cid = int(str(found[0]))
        if drop_index:
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(index_name(cid))))
        names = [s for s in dict.fromkeys(subjects) if s is not None]
        conn.execute(
            "INSERT INTO gallery_subjects (collection_id, name) SELECT %s, unnest(%s::text[])"
            " ON CONFLICT DO NOTHING",
            (cid, names),
        )
        with conn.cursor().copy(
            "COPY gallery_faces (id, collection_id, subject, embedding) FROM STDIN"
            " WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["uuid", "bigint", "text", "halfvec"])
            for face_id, name, vector in zip(ids, subjects, embeddings, strict=True):
                copy.write_row((face_id, cid, name, HalfVector(vector)))
    return [str(i) for i in ids]


def _subjects_now(url: str, collection: str) -> dict[str, str | None]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT f.id, f.subject FROM gallery_faces f JOIN gallery_collections c"
            " ON c.id = f.collection_id WHERE c.name = %s",
            (collection,),
        ).fetchall()
    return {str(fid): subject for fid, subject in rows}


def score_cluster(
    data: ModelledPeople,
    rows: dict[str, int],
    named: dict[str, str | None],
    now: dict[str, str | None],
) -> ClusterScore:
    """`rows`: face id -> row of data; `named`: the subject each face had before the run."""
    people = data.people
    named_people = {int(people[rows[f]]): s for f, s in named.items() if s is not None}
    theirs = [f for f, r in rows.items() if int(people[r]) in named_people and named[f] is None]
    joined = [now[f] == named_people[int(people[rows[f]])] for f in theirs]
    members: dict[str, list[int]] = {}
    for fid, subject in now.items():
        if subject is not None and subject.startswith("unknown-"):
            members.setdefault(subject, []).append(int(people[rows[fid]]))
    majority = sum(Counter(m).most_common(1)[0][1] for m in members.values())
    total = sum(len(m) for m in members.values())
    singles = [now[f] is None for f, r in rows.items() if data.singleton[r]]
    ids = list(rows)
    label = {s: i for i, s in enumerate(sorted({s for s in now.values() if s is not None}))}
    found = np.array(
        [label[now[f]] if now[f] is not None else len(label) + i for i, f in enumerate(ids)]  # type: ignore[index]
    )
    truth = np.array([people[rows[f]] for f in ids])
    return ClusterScore(
        ari=adjusted_rand_index(truth, found),
        named_joined=float(np.mean(joined)) if joined else 1.0,
        new_subjects=len(members),
        purity=majority / total if total else 1.0,
        singletons_unassigned=float(np.mean(singles)) if singles else 1.0,
        named_moved=sum(1 for f, s in named.items() if s is not None and now[f] != s),
    )


def bench_cluster(url: str, options: ClusterBenchOptions) -> ClusterBenchResult:
    """Load, index, cluster, score, then an incremental run; the collection is dropped
    afterwards unless options.keep."""
    apply_migrations(url)
    singletons = round(options.faces * options.singleton_share)
    people = max(1, (options.faces - singletons) // MEAN_FACES_PER_PERSON)
    _say(options, f"generating ~{options.faces} modelled faces ({people} people)")
    data = modelled_people(options.seed, people, singletons)
    held = min(options.increment, len(data.people) // 10)
    named_count = math.ceil(people * options.named_share)
    subjects: list[str | None] = [None] * len(data.people)
    seen: Counter[int] = Counter()
    for row, person in enumerate(data.people.tolist()):
        if person < named_count and seen[person] < options.enrolled_per_named:
            seen[person] += 1
            subjects[row] = f"named-{person:05d}"
    first_rows = len(data.people) - held
    collection = f"bench-cluster-{options.seed}-{options.faces}"

    async def run() -> ClusterBenchResult:
        store = await open_store(url, pool_size=4, timeout_s=30, migrate=False)
        try:
            if collection in {c.name for c in await store.list_collections()}:
                await store.delete_collection(collection)
            await store.create_collection(collection, {"bench": True}, RECOGNIZER)
            started = time.perf_counter()
            ids = await asyncio.to_thread(
                _copy, url, collection, subjects[:first_rows], data.embeddings[:first_rows], True
            )
            load_s = time.perf_counter() - started
            _say(options, f"loaded {first_rows} faces in {load_s:.1f} s; building the index")
            index_s = await asyncio.to_thread(bulk.build_index, url, collection)
            _say(options, f"index built in {index_s:.1f} s; clustering")
            clustering = Clustering(store, ef_search=options.ef_search)
            params = GroupParams(options.max_distance, options.min_faces)

            def step(result: ClusterResult) -> None:
                phases = ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items())
                _say(
                    options,
                    f"  {time.perf_counter() - started:7.1f} s: {result.assigned} assigned, "
                    f"{len(result.subjects_created)} new subjects ({phases})",
                )

            started = time.perf_counter()
            first = await clustering.run(collection, params, math.inf, on_step=step)
            cluster_s = time.perf_counter() - started
            rows = dict(zip(ids, range(first_rows), strict=True))
            before = dict(zip(ids, subjects[:first_rows], strict=True))
            now = await asyncio.to_thread(_subjects_now, url, collection)
            score = score_cluster(data, rows, before, now)
            _say(options, f"clustered in {cluster_s:.1f} s; {held} faces more, incrementally")
            more = await asyncio.to_thread(
                _copy, url, collection, subjects[first_rows:], data.embeddings[first_rows:], False
            )
            assert len(more) == held
            started = time.perf_counter()
            second = await clustering.run(collection, params, math.inf)
            increment_s = time.perf_counter() - started
            if not options.keep:
                await store.delete_collection(collection)
            return ClusterBenchResult(
                first_rows,
                first_rows - sum(s is not None for s in subjects[:first_rows]),
                load_s,
                index_s,
                cluster_s,
                first,
                score,
                held,
                increment_s,
                second,
            )
        finally:
            await store.close()

    return asyncio.run(run())


def report_lines(result: ClusterBenchResult) -> list[str]:
    """The result as aligned text lines."""
    s = result.score
    return [
        f"faces                 {result.faces} ({result.unassigned} unassigned)",
        f"load (binary COPY)    {result.load_s:.1f} s, HNSW index build {result.index_s:.1f} s",
        f"cluster, all faces    {result.cluster_s:.1f} s "
        f"({result.unassigned / result.cluster_s:.0f} faces/s): {result.first.assigned} "
        f"assigned, {len(result.first.subjects_created)} new subjects, "
        f"{result.first.unassigned} left unassigned",
        f"  ARI {s.ari:.4f}, named people's faces joined {s.named_joined:.4f}, "
        f"new-subject purity {s.purity:.4f}, singletons unassigned "
        f"{s.singletons_unassigned:.4f}, named faces moved {s.named_moved}",
        "  seconds by phase    "
        + ", ".join(f"{k} {v:.1f}" for k, v in result.first.seconds.items()),
        f"cluster, {result.increment} new   {result.increment_s:.1f} s: "
        f"{result.second.assigned} assigned, {len(result.second.subjects_created)} new subjects",
    ]
