"""Erasure of any size against the real PostgreSQL: invisible at once, removed in batches by a
job that survives a SIGKILL of PostgreSQL and a new store, vectors gone from the disk."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest

from gateway.errors import Conflict, NotFound
from gateway.gallery_ports import EMBEDDING_DIM, ErasureJob, NewFace
from gateway.storage import erasure
from gateway.storage.partitions import partition_name
from gateway.storage.postgres import PostgresGalleryStore, open_store

from .conftest import started_postgres

pytestmark = [pytest.mark.gallery, pytest.mark.integration]
SHA = "0" * 64
WAIT_S = 120.0


def _faces(seed: int, n: int) -> list[NewFace]:
    v = np.random.default_rng(seed).standard_normal((n, EMBEDDING_DIM)).astype(np.float32)
    return [NewFace(row / np.linalg.norm(row)) for row in v]


async def _fill(store: PostgresGalleryStore, name: str, subjects: int, per: int = 1) -> None:
    await store.create_collection(name, {}, SHA)
    for lo in range(0, subjects, 500):
        batch = [(f"s{i}", _faces(i, per)) for i in range(lo, min(subjects, lo + 500))]
        await store.add_faces(name, batch)


async def _until_done(store: PostgresGalleryStore, job: ErasureJob) -> ErasureJob:
    deadline = time.monotonic() + WAIT_S
    while not job.done:
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.1)
        job = await store.get_job(job.id)
    return job


def _partition_file(url: str, cid: int) -> Path:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT current_setting('data_directory') || '/' || pg_relation_filepath(%s)",
            (partition_name(cid),),
        ).fetchone()
    assert row is not None
    return Path(str(row[0]))


def _cid(url: str, name: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT id FROM gallery_collections WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return int(str(row[0]))


def test_a_collection_is_invisible_at_once_and_its_vectors_leave_the_disk(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(erasure, "ERASE_BATCH", 50)
    probe = _faces(7, 1)[0].embedding

    async def scenario() -> None:
        loader = await open_store(fresh_database, pool_size=1, timeout_s=30, migrate=True)
        await _fill(loader, "big", 1000)
        await loader.close()
        # Erased through the store under a 1 s per-call bound.
        store = await open_store(
            fresh_database, pool_size=4, timeout_s=30, migrate=False, statement_timeout_s=1
        )
        try:
            cid = _cid(fresh_database, "big")
            with psycopg.connect(fresh_database, autocommit=True) as conn:
                conn.execute("CHECKPOINT")
            stored = _partition_file(fresh_database, cid)
            half = probe.astype(np.float16).tobytes()
            assert half in stored.read_bytes()  # the vector is on the disk
            job = await store.delete_collection("big")
            # Gone for every call at once, and the name is free again.
            with pytest.raises(NotFound):
                await store.search("big", probe[None, :], 1)
            assert "big" not in {c.name for c in await store.list_collections()}
            await store.create_collection("big", {}, SHA)
            assert (await store.get_collection("big")).faces == 0
            if job.id:
                job = await _until_done(store, job)
            assert job.subjects_removed == 1000
            # The dropped partition's file is truncated at once (unlinked at the next
            # checkpoint): the vectors are gone from the disk.
            assert not stored.exists() or stored.stat().st_size == 0
            with psycopg.connect(fresh_database) as conn:
                left = conn.execute(
                    "SELECT (SELECT count(*) FROM gallery_subjects WHERE collection_id = %s),"
                    " (SELECT count(*) FROM gallery_collections WHERE id = %s),"
                    " to_regclass(%s)",
                    (cid, cid, partition_name(cid)),
                ).fetchone()
            assert left == (0, 0, None)
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_large_subject_is_hidden_at_once_and_erased_by_a_job(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(erasure, "SUBJECT_INLINE_FACES", 10)
    monkeypatch.setattr(erasure, "ERASE_BATCH", 7)

    async def scenario() -> None:
        store = await open_store(fresh_database, pool_size=4, timeout_s=30, migrate=True)
        try:
            await store.create_collection("c", {}, SHA)
            big = _faces(1, 60)
            await store.add_faces("c", [("big", big), ("small", _faces(2, 3))])
            small = await store.delete_subject("c", "small")
            assert small.done and small.faces_removed == 3 and not small.id
            # The job is made, not yet run: the subject is hidden from every read.
            job = await store._begin_subject_erasure("c", "big")
            assert job.state == "running" and job.subject == "big"
            with pytest.raises(NotFound):
                await store.get_subject("c", "big")
            assert (await store.list_subjects("c", 10, None)).subjects == []
            (matches,) = await store.search("c", big[0].embedding[None, :], 10)
            assert matches == []
            with pytest.raises(Conflict, match="being erased"):
                await store.add_faces("c", [("big", _faces(3, 1))])
            with pytest.raises(NotFound):
                await store.delete_subject("c", "big")
            done = await _until_done(store, await store._run_for_a_while(job))
            assert (done.faces_removed, done.subjects_removed, done.subject) == (60, 1, None)
            cid = _cid(fresh_database, "c")
            with psycopg.connect(fresh_database) as conn:
                left = conn.execute(
                    "SELECT count(*) FROM gallery_faces WHERE collection_id = %s", (cid,)
                ).fetchone()
                vacuumed = conn.execute(
                    "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = %s",
                    (partition_name(cid),),
                ).fetchone()
            assert left == (0,) and vacuumed is not None and int(str(vacuumed[0])) >= 1
            # The name can be enrolled again, as a new subject.
            await store.add_faces("c", [("big", _faces(4, 1))])
            assert (await store.get_subject("c", "big")).faces == 1
            with pytest.raises(NotFound):
                await store.get_job("00000000-0000-0000-0000-000000000000")
        finally:
            await store.close()

    asyncio.run(scenario())


def test_an_erasure_resumes_after_postgres_is_killed_and_the_store_replaced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(erasure, "ERASE_BATCH", 20)

    async def scenario(server: object) -> None:
        from gateway.ops.servers.postgres import EmbeddedPostgres

        assert isinstance(server, EmbeddedPostgres)
        url = server.url()
        first = await open_store(url, pool_size=4, timeout_s=30, migrate=True)
        first.lease_s = 2
        await _fill(first, "doomed", 3000)
        job = await first._begin_collection_erasure("doomed")
        first._start(job.id)
        deadline = time.monotonic() + WAIT_S
        while (await first.get_job(job.id)).subjects_removed < 100:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        os.kill(server.pid, signal.SIGKILL)  # mid-job
        server.wait()
        await first.close()
        server.start()
        second = await open_store(url, pool_size=4, timeout_s=30, migrate=True, run_jobs=True)
        second.job_poll_s = 0.2
        try:
            done = await _until_done(second, job)
            assert done.subjects_removed == 3000, done
            with psycopg.connect(url) as conn:
                left = conn.execute(
                    "SELECT (SELECT count(*) FROM gallery_subjects),"
                    " (SELECT count(*) FROM gallery_collections),"
                    " (SELECT count(*) FROM pg_inherits"
                    "  WHERE inhparent = 'gallery_faces'::regclass)"
                ).fetchone()
            assert left == (0, 0, 0)
        finally:
            await second.close()

    with started_postgres() as server:
        asyncio.run(scenario(server))


def _job_row(url: str, job_id: str) -> tuple[object, ...]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT state, lease_owner, subject FROM gallery_jobs WHERE id = %s", (job_id,)
        ).fetchone()
    assert row is not None
    return tuple(row)


def test_a_subject_job_whose_collection_is_erased_meanwhile_finishes(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collection's partition is gone: no VACUUM of it, the job is done, the name forgotten."""
    monkeypatch.setattr(erasure, "SUBJECT_INLINE_FACES", 10)

    async def scenario() -> None:
        store = await open_store(fresh_database, pool_size=4, timeout_s=30, migrate=True)
        try:
            await store.create_collection("c", {}, SHA)
            await store.add_faces("c", [("big", _faces(1, 30))])
            cid = _cid(fresh_database, "c")
            job = await store._begin_subject_erasure("c", "big")  # recorded, not run yet
            assert (await store.delete_collection("c")).done
            await store._vacuum(cid)  # a dropped partition: nothing to do, no error
            await store._start(job.id)
            done = await store.get_job(job.id)
            assert (done.state, done.subject, done.subjects_removed) == ("done", None, 1)
        finally:
            await store.close()

    asyncio.run(scenario())


def test_the_poller_survives_an_unexpected_error_and_logs_it(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(erasure, "JOB_POLL_S", 0.05)
    polls = 0

    async def claim() -> list[str]:
        nonlocal polls
        polls += 1
        if polls == 1:
            raise RuntimeError("unexpected")
        return []

    async def scenario() -> None:
        store = await open_store(
            fresh_database, pool_size=2, timeout_s=30, migrate=True, run_jobs=True
        )
        monkeypatch.setattr(store, "_claim_orphans", claim)
        try:
            deadline = time.monotonic() + WAIT_S
            while polls < 3:
                assert time.monotonic() < deadline, polls
                await asyncio.sleep(0.05)
        finally:
            await store.close()

    with caplog.at_level(logging.ERROR, logger="gateway.background"):
        asyncio.run(scenario())
    assert any(
        r.levelno == logging.ERROR and "gallery-erasure-jobs" in r.getMessage()
        for r in caplog.records
    )


def test_only_a_store_opened_to_run_jobs_claims_them(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI's store (the default) leaves an orphaned job alone; the gateway's claims it."""
    monkeypatch.setattr(erasure, "JOB_POLL_S", 0.05)
    monkeypatch.setattr(erasure, "SUBJECT_INLINE_FACES", 10)

    async def scenario() -> None:
        maker = await open_store(fresh_database, pool_size=2, timeout_s=30, migrate=True)
        maker.lease_s = 0  # its lease runs out at once: an orphan
        await maker.create_collection("c", {}, SHA)
        await maker.add_faces("c", [("big", _faces(1, 30))])
        job = await maker._begin_subject_erasure("c", "big")
        await maker.close()
        cli = await open_store(fresh_database, pool_size=1, timeout_s=30, migrate=False)
        await asyncio.sleep(0.5)
        await cli.close()
        assert _job_row(fresh_database, job.id)[:2] == ("running", maker._owner)
        gateway = await open_store(
            fresh_database, pool_size=2, timeout_s=30, migrate=False, run_jobs=True
        )
        try:
            assert (await _until_done(gateway, job)).faces_removed == 30
        finally:
            await gateway.close()

    asyncio.run(scenario())


def test_a_long_step_keeps_its_lease(fresh_database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No other gateway takes a job over while its VACUUM runs longer than the lease."""
    monkeypatch.setattr(erasure, "JOB_POLL_S", 0.05)
    monkeypatch.setattr(erasure, "SUBJECT_INLINE_FACES", 10)

    async def scenario() -> None:
        first = await open_store(fresh_database, pool_size=2, timeout_s=30, migrate=True)
        first.lease_s = 1
        vacuum = first._vacuum

        async def slow_vacuum(cid: int) -> None:
            await asyncio.sleep(2.5)
            await vacuum(cid)

        monkeypatch.setattr(first, "_vacuum", slow_vacuum)
        other = await open_store(
            fresh_database, pool_size=2, timeout_s=30, migrate=False, run_jobs=True
        )
        try:
            await first.create_collection("c", {}, SHA)
            await first.add_faces("c", [("big", _faces(1, 30))])
            job = await first._begin_subject_erasure("c", "big")
            running = first._start(job.id)
            taken = False
            while not running.done():
                taken = taken or job.id in other._running
                await asyncio.sleep(0.02)
            await running
            assert not taken
            assert (await first.get_job(job.id)).state == "done"
        finally:
            await other.close()
            await first.close()

    asyncio.run(scenario())


def test_a_partition_whose_collection_row_an_older_gateway_deleted_is_erased(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(erasure, "JOB_POLL_S", 0.05)

    async def scenario() -> None:
        store = await open_store(fresh_database, pool_size=2, timeout_s=30, migrate=True)
        await _fill(store, "old", 20)
        await _fill(store, "kept", 5)
        await store.close()
        cid = _cid(fresh_database, "old")
        with psycopg.connect(fresh_database) as conn:  # what a gateway before fc62e53 does
            conn.execute("DELETE FROM gallery_collections WHERE id = %s", (cid,))
        gateway = await open_store(
            fresh_database, pool_size=2, timeout_s=30, migrate=False, run_jobs=True
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                with psycopg.connect(fresh_database) as conn:
                    left = conn.execute("SELECT to_regclass(%s)", (partition_name(cid),)).fetchone()
                    jobs = conn.execute(
                        "SELECT kind, collection_id, state FROM gallery_jobs"
                    ).fetchall()
                if left == (None,) and jobs and jobs[0][2] == "done":
                    break
                assert time.monotonic() < deadline, (left, jobs)
                await asyncio.sleep(0.1)
            assert jobs == [("erase_collection", cid, "done")]
            assert (await gateway.get_collection("kept")).faces == 5
        finally:
            await gateway.close()

    asyncio.run(scenario())


def test_moving_a_face_while_its_subject_is_erased_does_not_deadlock(fresh_database: str) -> None:
    """Erasure locks the subject, then its faces; moving a face must take them in that order.

    The old order (the face, then its subject) deadlocked with an inline subject erasure:
    PostgreSQL aborted one of the two after deadlock_timeout and the caller got a 409.
    """

    async def scenario() -> None:
        store = await open_store(fresh_database, pool_size=2, timeout_s=30, migrate=True)
        try:
            await store.create_collection("c", {}, SHA)
            ((face_id,),) = await store.add_faces("c", [("a", _faces(1, 1))])
            cid = _cid(fresh_database, "c")
            eraser = await psycopg.AsyncConnection.connect(fresh_database)
            try:
                # What an inline subject erasure does first (storage/erasure.py).
                await eraser.execute(
                    "SELECT 1 FROM gallery_subjects WHERE collection_id = %s AND name = 'a'"
                    " FOR UPDATE",
                    (cid,),
                )
                moving = asyncio.ensure_future(store.set_face_subject("c", face_id, "b"))
                await asyncio.sleep(0.5)  # the move now waits for a lock
                assert not moving.done()
                # Then its faces: with the old order the move held this face -> deadlock.
                await eraser.execute(
                    "DELETE FROM gallery_subjects WHERE collection_id = %s AND name = 'a'", (cid,)
                )
                await eraser.execute(
                    "DELETE FROM gallery_faces WHERE collection_id = %s AND subject = 'a'", (cid,)
                )
                await eraser.commit()
            finally:
                await eraser.close()
            with pytest.raises(NotFound):  # the face went with its subject
                await asyncio.wait_for(moving, 10)
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_store_whose_lease_another_took_stops_and_leaves_the_lease_alone(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renewal (heartbeat or batch) never takes back a lease another gateway holds now."""
    monkeypatch.setattr(erasure, "SUBJECT_INLINE_FACES", 10)

    async def scenario() -> None:
        first = await open_store(fresh_database, pool_size=2, timeout_s=30, migrate=True)
        try:
            await first.create_collection("c", {}, SHA)
            await first.add_faces("c", [("big", _faces(1, 30))])
            job = await first._begin_subject_erasure("c", "big")  # recorded, not run yet
            # First's lease ran out and another gateway claimed the job meanwhile.
            other = uuid.uuid4()
            with psycopg.connect(fresh_database) as conn:
                conn.execute(
                    "UPDATE gallery_jobs SET lease_owner = %s,"
                    " lease_until = now() + interval '1 minute' WHERE id = %s",
                    (other, job.id),
                )
            with pytest.raises(erasure.LeaseLost):
                await first._renew(uuid.UUID(job.id))
            with pytest.raises(erasure.LeaseLost):  # its first batch finds the lease gone
                await first._start(job.id)
            assert _job_row(fresh_database, job.id) == ("running", other, "big")
            with psycopg.connect(fresh_database) as conn:  # and rolled its batch back
                row = conn.execute(
                    "SELECT count(*) FROM gallery_faces WHERE subject = 'big'"
                ).fetchone()
            assert row == (30,)
        finally:
            await first.close()

    asyncio.run(scenario())


def test_search_fills_top_k_past_the_faces_of_a_subject_being_erased(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nearest faces all belong to a subject being erased: the others take their places.

    The old search took the index's top k and dropped the hidden faces afterwards, answering
    fewer than k matches (none here) while the job ran.
    """
    monkeypatch.setattr(erasure, "SUBJECT_INLINE_FACES", 10)
    rng = np.random.default_rng(5)
    centre = _faces(9, 1)[0].embedding
    near = centre + 0.02 * rng.standard_normal((400, EMBEDDING_DIM)).astype(np.float32)
    near /= np.linalg.norm(near, axis=1, keepdims=True)

    async def scenario() -> None:
        store = await open_store(fresh_database, pool_size=2, timeout_s=30, migrate=True)
        try:
            await store.create_collection("c", {}, SHA)
            others = [(f"o{i}", _faces(100 + i, 1)) for i in range(60)]
            await store.add_faces("c", [("near", [NewFace(v) for v in near]), *others])
            await store._begin_subject_erasure("c", "near")  # hidden; the job not run yet
            for ef_search in (40, 100):
                (matches,) = await store.search("c", centre[None, :], 10, ef_search)
                assert len(matches) == 10, ef_search
                assert all(m.subject.startswith("o") for m in matches)
                similarities = [m.similarity for m in matches]
                assert similarities == sorted(similarities, reverse=True)
            assert store._iterative_scan is True  # pgvector 0.8.6 here, read once
            # A pgvector without iterative scans (0.7) must not be sent the setting: the
            # search still answers, leaving the hidden faces out (possibly fewer than k).
            store._iterative_scan = False
            (matches,) = await store.search("c", centre[None, :], 10, 40)
            assert all(m.subject.startswith("o") for m in matches)
        finally:
            await store.close()

    asyncio.run(scenario())


def test_a_face_moved_between_its_read_and_its_lock_is_read_again(
    fresh_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The try that saw the old subject rolls back to its savepoint (its locks with it)."""
    from gateway.storage import clustering

    real = clustering._subject_of
    reads: list[str] = []

    async def stale_once(conn: object, cid: int, face: uuid.UUID, lock: str) -> str | None:
        reads.append(lock)
        found = await real(conn, cid, face, lock)  # type: ignore[arg-type]
        return "someone-else" if len(reads) == 1 else found

    monkeypatch.setattr(clustering, "_subject_of", stale_once)

    async def scenario() -> None:
        store = await open_store(fresh_database, pool_size=2, timeout_s=30, migrate=True)
        try:
            await store.create_collection("c", {}, SHA)
            ((face_id,),) = await store.add_faces("c", [("a", _faces(1, 1))])
            moved = await store.set_face_subject("c", face_id, "b")
            assert moved.subject == "b"
            # Two tries: unlocked read, locked read; then again after the mismatch.
            assert reads == ["", " FOR UPDATE", "", " FOR UPDATE"]
            with psycopg.connect(fresh_database) as conn:  # no lock left behind by try one
                conn.execute("SET lock_timeout = '1s'")
                conn.execute("SELECT 1 FROM gallery_faces WHERE id = %s FOR UPDATE", (face_id,))
        finally:
            await store.close()

    asyncio.run(scenario())
