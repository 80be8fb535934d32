"""Faces partitioned by collection, against the real PostgreSQL: a query plans and locks
only its own collection's partition, creating and deleting collections blocks no other
collection, parallel creates all succeed, and a gallery of the first schema migrates in place."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import numpy as np
import psycopg
import pytest
from pgvector import HalfVector
from pgvector.psycopg import register_vector, register_vector_async

from gateway.errors import Conflict
from gateway.gallery_ports import EMBEDDING_DIM, NewFace
from gateway.storage.migrations import apply_migrations, schema_version
from gateway.storage.partitions import index_name, partition_name
from gateway.storage.postgres import PostgresGalleryStore, open_store
from gateway.storage.search import search_pipelined

pytestmark = [pytest.mark.gallery, pytest.mark.integration]
SHA = "0" * 64
# A bound on how long a step may take before the test calls it blocked (it only ends a
# failing test; it is not a speed expectation).
BLOCKED_AFTER_S = 60.0


def _face(seed: int) -> NewFace:
    v = np.random.default_rng(seed).standard_normal(EMBEDDING_DIM).astype(np.float32)
    return NewFace(v / np.linalg.norm(v), None, None)


async def _collection_id(url: str, name: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        row = await (
            await conn.execute("SELECT id FROM gallery_collections WHERE name = %s", (name,))
        ).fetchone()
    assert row is not None
    return int(row[0])


async def _wait_until_waiting(url: str, statement: str) -> None:
    """Until a backend runs `statement...` and waits (on a lock or another transaction)."""
    deadline = time.monotonic() + BLOCKED_AFTER_S
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = await (
                await conn.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE query ILIKE %s"
                    " AND wait_event_type = 'Lock' AND datname = current_database()",
                    (statement + "%",),
                )
            ).fetchone()
            if row is not None:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{statement} never waited on the open transaction")


async def _enrol_and_identify(store: PostgresGalleryStore, collection: str, seed: int) -> None:
    await asyncio.wait_for(
        store.add_faces(collection, [(f"p{seed}", [_face(seed)])]), BLOCKED_AFTER_S
    )
    query = _face(seed).embedding[None, :]
    (matches,) = await asyncio.wait_for(store.search(collection, query, 3), BLOCKED_AFTER_S)
    assert matches[0].subject == f"p{seed}"


async def _open_writer(
    url: str, collection_id: int, subject: str
) -> psycopg.AsyncConnection[tuple[object, ...]]:
    """A connection with an uncommitted enrolment in the collection."""
    conn = await psycopg.AsyncConnection.connect(url)
    await register_vector_async(conn)
    await conn.execute(
        "INSERT INTO gallery_subjects (collection_id, name) VALUES (%s, %s)",
        (collection_id, subject),
    )
    await conn.execute(
        "INSERT INTO gallery_faces (collection_id, subject, embedding) VALUES (%s, %s, %s)",
        (collection_id, subject, HalfVector(_face(99).embedding)),
    )
    return conn


def test_collection_ddl_blocks_no_other_collection(fresh_database: str) -> None:
    async def scenario() -> None:
        store = await open_store(fresh_database, pool_size=4, timeout_s=30, migrate=True)
        try:
            await store.create_collection("a", {}, SHA)
            cid_a = await _collection_id(fresh_database, "a")
            writer = await _open_writer(fresh_database, cid_a, "w1")
            # A new collection's partition attaches while an enrolment is open elsewhere.
            await asyncio.wait_for(store.create_collection("b", {}, SHA), BLOCKED_AFTER_S)
            await _enrol_and_identify(store, "b", 1)
            # Deleting 'b' detaches its partition online: it waits for the open transaction,
            # and enrolment and identify in 'a' go on meanwhile.
            cid_b = await _collection_id(fresh_database, "b")
            deleting = asyncio.create_task(store.delete_collection("b"))
            await _wait_until_waiting(fresh_database, "ALTER TABLE gallery_faces DETACH")
            await _enrol_and_identify(store, "a", 2)
            await writer.commit()
            await writer.close()
            await asyncio.wait_for(deleting, BLOCKED_AFTER_S)
            async with await psycopg.AsyncConnection.connect(fresh_database) as conn:
                gone = await (
                    await conn.execute("SELECT to_regclass(%s)", (partition_name(cid_b),))
                ).fetchone()
                assert gone == (None,)
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_search_plans_and_locks_only_its_own_partition(fresh_database: str) -> None:
    """Locks held by a search do not grow with the number of collections (migration 1's
    partial indexes made every query lock every collection's index)."""

    async def scenario() -> tuple[int, set[str]]:
        store = await open_store(fresh_database, pool_size=1, timeout_s=30, migrate=True)
        try:
            for i in range(60):
                await store.create_collection(f"c{i}", {}, SHA)
            await store.add_faces("c7", [(f"p{i}", [_face(i)]) for i in range(50)])
            cid = await _collection_id(fresh_database, "c7")
            async with store._pool.connection() as conn, conn.transaction():
                vectors = [HalfVector(_face(3).embedding)]
                (matches,), _ = await search_pipelined(conn, "c7", cid, vectors, 40, 5)
                assert matches[0].subject == "p3"
                rows = await (
                    await conn.execute(
                        "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
                        " WHERE l.pid = pg_backend_pid() AND c.relname LIKE 'gallery_faces%%'"
                    )
                ).fetchall()
            return cid, {str(r[0]) for r in rows}
        finally:
            await store.close()

    cid, locked = asyncio.run(scenario())
    partitions = {m.group(1) for name in locked if (m := re.match(r"gallery_faces_(\d+)", name))}
    assert partitions == {str(cid)}, locked


def test_the_search_uses_the_collections_hnsw_index(fresh_database: str) -> None:
    async def scenario() -> int:
        store = await open_store(fresh_database, pool_size=2, timeout_s=30, migrate=True)
        try:
            await store.create_collection("c", {}, SHA)
            await store.create_collection("d", {}, SHA)
            # Enough faces that the planner prefers the index to sorting them all.
            await store.add_faces("c", [(f"p{i}", [_face(i)]) for i in range(3000)])
            return await _collection_id(fresh_database, "c")
        finally:
            await store.close()

    cid = asyncio.run(scenario())
    with psycopg.connect(fresh_database) as conn:
        conn.execute(f"ANALYZE {partition_name(cid)}")
        vector = "[" + ",".join(["0.04"] * EMBEDDING_DIM) + "]"
        plan = "\n".join(
            str(r[0])
            for r in conn.execute(
                f"EXPLAIN SELECT id FROM gallery_faces WHERE collection_id = {cid}"
                " ORDER BY embedding <=> %s::halfvec LIMIT 10",
                (vector,),
            ).fetchall()
        )
    assert f"Index Scan using {index_name(cid)}" in plan, plan


def test_parallel_creates_all_succeed_under_a_1_s_bound(fresh_database: str) -> None:
    """20 creates at once: each 201 and usable; the same name twice: one 201, one 409."""

    async def scenario() -> None:
        store = await open_store(
            fresh_database, pool_size=20, timeout_s=30, migrate=True, statement_timeout_s=1
        )
        try:
            names = [f"p{i}" for i in range(20)]
            created = await asyncio.gather(*(store.create_collection(n, {}, SHA) for n in names))
            assert [c.name for c in created] == names
            for i, name in enumerate(names):
                await store.add_faces(name, [("x", [_face(i)])])
            assert {c.name: c.faces for c in await store.list_collections()} == dict.fromkeys(
                names, 1
            )
            twice = await asyncio.gather(
                store.create_collection("same", {}, SHA),
                store.create_collection("same", {}, SHA),
                return_exceptions=True,
            )
            assert sum(isinstance(r, Conflict) for r in twice) == 1, twice
        finally:
            await store.close()

    asyncio.run(scenario())


def test_pooled_connections_keep_the_per_call_bound(fresh_database: str) -> None:
    """No call leaves a setting of its own on a pooled connection (an index build used to
    leave statement_timeout = 0 behind, a search its hnsw.ef_search)."""

    async def scenario() -> tuple[object, ...]:
        store = await open_store(
            fresh_database, pool_size=1, timeout_s=30, migrate=True, statement_timeout_s=1.5
        )
        try:
            await store.create_collection("c", {}, SHA)
            await store.add_faces("c", [("x", [_face(0)])])
            await store.search("c", _face(0).embedding[None, :], 3, ef_search=123)
            await store.delete_collection("c")
            async with store._pool.connection() as conn:
                row = await (
                    await conn.execute(
                        "SELECT current_setting('statement_timeout'),"
                        " current_setting('hnsw.ef_search')"
                    )
                ).fetchone()
            assert row is not None
            return tuple(row)
        finally:
            await store.close()

    assert asyncio.run(scenario()) == ("1500ms", "40")


def _old_gallery(url: str) -> dict[str, list[tuple[str, str]]]:
    """A gallery made by the first schema (one table, a partial HNSW index per collection)."""
    apply_migrations(url, up_to=1)
    faces: dict[str, list[tuple[str, str]]] = {}
    with psycopg.connect(url) as conn:
        register_vector(conn)
        for c, size in (("big", 300), ("small", 3), ("empty", 0)):
            cid = conn.execute(
                "INSERT INTO gallery_collections (name, metadata, recognizer_sha256)"
                " VALUES (%s, '{\"k\": 1}', %s) RETURNING id",
                (c, SHA),
            ).fetchone()
            assert cid is not None
            conn.execute(
                f"CREATE INDEX gallery_faces_hnsw_{cid[0]} ON gallery_faces USING hnsw"
                f" (embedding halfvec_cosine_ops) WHERE collection_id = {cid[0]}"
            )
            conn.execute(
                "INSERT INTO gallery_subjects (collection_id, name) VALUES (%s, 'lonely')", cid
            )
            for i in range(size):
                face_id = str(uuid.uuid4())
                conn.execute(
                    "INSERT INTO gallery_subjects (collection_id, name) VALUES (%s, %s)"
                    " ON CONFLICT DO NOTHING",
                    (cid[0], f"s{i % 50}"),
                )
                conn.execute(
                    "INSERT INTO gallery_faces (id, collection_id, subject, embedding, bbox, score)"
                    " VALUES (%s, %s, %s, %s, '{1,2,3,4}', 0.9)",
                    (face_id, cid[0], f"s{i % 50}", HalfVector(_face(i).embedding)),
                )
                faces.setdefault(c, []).append((face_id, f"s{i % 50}"))
    return faces


def test_a_gallery_of_the_first_schema_migrates_in_place(fresh_database: str) -> None:
    before = _old_gallery(fresh_database)
    assert schema_version(fresh_database) == 1
    apply_migrations(fresh_database)
    assert schema_version(fresh_database) >= 2

    async def scenario() -> None:
        store = await open_store(fresh_database, pool_size=2, timeout_s=30, migrate=False)
        try:
            listed = {c.name: (c.subjects, c.faces) for c in await store.list_collections()}
            assert listed == {"big": (51, 300), "small": (4, 3), "empty": (1, 0)}
            (matches,) = await store.search("big", _face(17).embedding[None, :], 1)
            assert (matches[0].face_id, matches[0].subject) == before["big"][17]
            subject = await store.get_subject("small", "s1")
            assert subject.face_ids == (before["small"][1][0],)
            await _enrol_and_identify(store, "empty", 5)
        finally:
            await store.close()

    asyncio.run(scenario())
    with psycopg.connect(fresh_database) as conn:
        old = conn.execute(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'gallery_faces_v1%%'"
            " OR relname LIKE 'gallery_faces_hnsw_%%'"
        ).fetchone()
        assert old == (0,)  # the old table and its partial indexes are gone
        valid = conn.execute(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE c.relname LIKE 'gallery_faces_%%_hnsw' AND i.indisvalid"
        ).fetchone()
        assert valid == (3,)
