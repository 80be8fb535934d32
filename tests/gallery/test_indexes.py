"""Per-collection HNSW indexes are built and dropped online, against the real PostgreSQL:
creating or deleting one collection never blocks enrolment or identify in another, and the
planner uses a collection's own index for its searches."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import psycopg
import pytest
from pgvector import HalfVector
from pgvector.psycopg import register_vector_async

from gateway.errors import GalleryUnavailable
from gateway.gallery_ports import EMBEDDING_DIM, NewFace
from gateway.storage.indexes import index_name
from gateway.storage.postgres import PostgresGalleryStore, open_store

pytestmark = [pytest.mark.gallery, pytest.mark.integration]
SHA = "0" * 64
# A bound on how long a step may take before the test calls it blocked: with the plain DDL
# these steps wait forever (until the open transaction ends), so the bound only ends a failing
# test; it is not a speed expectation.
BLOCKED_AFTER_S = 60.0
PLANNED_FACES = 3000


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
    """Until a backend runs `statement...` and waits on a lock (the open transaction's)."""
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


async def _enrol_and_identify_elsewhere(store: PostgresGalleryStore, seed: int) -> None:
    """Enrolment and identify in collection 'a' complete while the DDL waits."""
    await asyncio.wait_for(store.add_faces("a", [(f"p{seed}", [_face(seed)])]), BLOCKED_AFTER_S)
    query = _face(seed).embedding[None, :]
    (matches,) = await asyncio.wait_for(store.search("a", query, 3), BLOCKED_AFTER_S)
    assert matches[0].subject == f"p{seed}"


async def _open_writer(
    url: str, collection_id: int, subject: str
) -> psycopg.AsyncConnection[tuple[object, ...]]:
    """A connection with an uncommitted enrolment in the collection (locks gallery_faces)."""
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
            await store.add_faces("a", [("p0", [_face(0)])])
            cid_a = await _collection_id(fresh_database, "a")
            writer = await _open_writer(fresh_database, cid_a, "w1")
            # Creating 'b' waits for the open enrolment, and only 'b' waits.
            creating = asyncio.create_task(store.create_collection("b", {}, SHA))
            await _wait_until_waiting(fresh_database, "CREATE INDEX")
            await _enrol_and_identify_elsewhere(store, 1)
            assert not creating.done()
            await writer.commit()
            await asyncio.wait_for(creating, BLOCKED_AFTER_S)
            await store.add_faces("b", [("q", [_face(2)])])

            # Deleting 'b' drops its index online: searches in 'a' go on meanwhile.
            cid_b = await _collection_id(fresh_database, "b")
            writer2 = await _open_writer(fresh_database, cid_a, "w2")
            deleting = asyncio.create_task(store.delete_collection("b"))
            await _wait_until_waiting(fresh_database, "DROP INDEX")
            await _enrol_and_identify_elsewhere(store, 3)
            await writer2.commit()
            await asyncio.wait_for(deleting, BLOCKED_AFTER_S)
            await writer.close()
            await writer2.close()
            async with await psycopg.AsyncConnection.connect(fresh_database) as conn:
                gone = await (
                    await conn.execute("SELECT to_regclass(%s)", (index_name(cid_b),))
                ).fetchone()
                assert gone == (None,)
        finally:
            await store.close()

    asyncio.run(scenario())


def test_new_collections_index_is_valid_and_used(fresh_database: str) -> None:
    async def scenario() -> int:
        store = await open_store(fresh_database, pool_size=2, timeout_s=30, migrate=True)
        try:
            await store.create_collection("c", {}, SHA)
            # Enough faces that the planner prefers the index to sorting them all.
            await store.add_faces("c", [(f"p{i}", [_face(i)]) for i in range(PLANNED_FACES)])
            return await _collection_id(fresh_database, "c")
        finally:
            await store.close()

    cid = asyncio.run(scenario())
    with psycopg.connect(fresh_database) as conn:
        valid = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
            (index_name(cid),),
        ).fetchone()
        assert valid == (True,)
        # With the table's statistics a search plans on the collection's own HNSW index (an
        # index scan ordered by distance); the partial predicate matches the literal id.
        conn.execute("ANALYZE gallery_faces")
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


def test_a_create_whose_bound_runs_out_still_gets_a_valid_index(fresh_database: str) -> None:
    """The store's 1 s bound ends create_collection's wait (503), not the index build."""

    async def valid(cid: int) -> bool:
        async with await psycopg.AsyncConnection.connect(fresh_database) as conn:
            row = await (
                await conn.execute(
                    "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)",
                    (index_name(cid),),
                )
            ).fetchone()
        return row == (True,)

    async def scenario() -> None:
        store = await open_store(
            fresh_database, pool_size=4, timeout_s=30, migrate=True, statement_timeout_s=1
        )
        try:
            await store.create_collection("a", {}, SHA)
            cid_a = await _collection_id(fresh_database, "a")
            writer = await _open_writer(fresh_database, cid_a, "w")
            # The build of 'b' waits for the open enrolment, past the bound.
            with pytest.raises(GalleryUnavailable):
                await store.create_collection("b", {}, SHA)
            cid_b = await _collection_id(fresh_database, "b")
            await writer.commit()
            await writer.close()
            deadline = time.monotonic() + BLOCKED_AFTER_S
            while not await valid(cid_b) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert await valid(cid_b)
            await store.add_faces("b", [("q", [_face(5)])])
            (matches,) = await store.search("b", _face(5).embedding[None, :], 1)
            assert matches[0].subject == "q"
        finally:
            await store.close()

    asyncio.run(scenario())
