"""Erasure of collections and subjects of any size: invisible at once, removed in batches.

DELETE of a collection renames its row to "erasing/<id>" (a name the API never accepts, so
every lookup by name misses it from that commit on) and records a job; DELETE of a subject
with more than SUBJECT_INLINE_FACES faces flags it `erasing` (hidden from every read and
search) and records a job; a smaller subject goes within the call, in one transaction.

A job runs in steps, each one statement or one short transaction under the per-call bound:
the collection's partition is detached online and dropped (its files, the vectors with them,
are unlinked), then its subjects go ERASE_BATCH rows at a time, then its row. A subject's
faces go ERASE_BATCH at a time, then its partition is vacuumed, then its row. Every step is
idempotent, so a job interrupted anywhere (a PostgreSQL crash, a gateway restart) resumes
where it stopped. The call that made the job runs it at once; when it is not done within
half the call's bound the call answers 202 and the job goes on in the background. A store
opened with run_jobs (the gateway's, never a CLI's) also polls for jobs nobody runs: its own
that failed (database restart), and others' whose lease ran out (a gateway that died); and
for partitions whose collection row is gone (a gateway older than partitioning deleted the
row, relying on a cascade migration 2 removed), for which it records an erasure job. A job
holds a lease, renewed by every batch and, during a long step (a detach, a VACUUM), by a
heartbeat, so no other gateway runs it meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import sql

from gateway import background
from gateway.errors import FacegateError, NotFound
from gateway.gallery_ports import ErasureJob
from gateway.storage.base import Connection, StoreBase, bounded, translate_error
from gateway.storage.partitions import partition, partition_name

log = logging.getLogger(__name__)
# Rows per erasure statement: well inside a 1 s bound on a loaded machine.
ERASE_BATCH = 2000
# A subject with at most this many faces is erased within its call, in one transaction.
SUBJECT_INLINE_FACES = 2000
LEASE_S = 60
JOB_POLL_S = 5.0
# Finished jobs stay readable this long (they hold no name of a subject once done).
DONE_JOBS_KEPT = "7 days"
ERASING_PREFIX = "erasing/"
# Key of the advisory lock one poller holds while it looks for orphaned partitions ("facegor").
ORPHANS_LOCK_KEY = 0x66616365676F72

# The job runs and its lease is this store's (a parameter), or ran out: a store may renew it.
_OURS = "state = 'running' AND (lease_owner = %s OR lease_until IS NULL OR lease_until < now())"

_JOB_COLUMNS = (
    "id, kind, collection, subject, state, subjects_removed, faces_removed, created_at, finished_at"
)


class LeaseLost(Exception):
    """Another store holds the job's lease now (this one's ran out), or the job is done."""

    def __init__(self, key: uuid.UUID) -> None:
        super().__init__(f"erasure job {key}: another gateway holds its lease now")


def _job(row: Sequence[Any]) -> ErasureJob:
    jid, kind, collection, subject, state, subjects, faces, created, finished = row
    return ErasureJob(
        str(jid),
        "collection" if kind == "erase_collection" else "subject",
        collection,
        subject,
        state,
        int(subjects),
        None if kind == "erase_collection" else int(faces),
        created.isoformat(),
        finished.isoformat() if finished is not None else None,
    )


class ErasureMixin(StoreBase):
    """DELETE of collections and subjects, and the jobs that finish the large ones."""

    def __init__(self, conninfo: str, *, run_jobs: bool = False, **kwargs: Any) -> None:
        """run_jobs: poll for jobs nobody runs (the gateway's store; a CLI's never does)."""
        super().__init__(conninfo, **kwargs)
        self._run_jobs = run_jobs
        # This store's identity as the holder of job leases.
        self._owner = uuid.uuid4()
        self._running: dict[str, asyncio.Future[None]] = {}
        self._jobs_task: asyncio.Task[None] | None = None
        self._closing = False
        self.job_poll_s = JOB_POLL_S
        self.lease_s = LEASE_S

    async def open(self) -> None:
        await super().open()
        if self._run_jobs:
            self._jobs_task = background.start(
                background.keep_running(
                    "gallery-erasure-jobs",
                    self._job_loop,
                    self.job_poll_s,
                    stopping=lambda: self._closing,
                ),
                "gallery-erasure-jobs",
            )

    async def close(self) -> None:
        self._closing = True
        pending = [*self._running.values()]
        if self._jobs_task is not None:
            pending.append(self._jobs_task)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await super().close()

    # The calls
    async def delete_collection(self, name: str) -> ErasureJob:
        job = await self._begin_collection_erasure(name)
        self._collection_ids.pop(name, None)
        return await self._run_for_a_while(job)

    async def delete_subject(self, collection: str, subject: str) -> ErasureJob:
        job = await self._begin_subject_erasure(collection, subject)
        return job if job.done else await self._run_for_a_while(job)

    @bounded
    async def get_job(self, job_id: str) -> ErasureJob:
        try:
            key = uuid.UUID(job_id)
        except ValueError as exc:
            raise NotFound(f"no job '{job_id[:64]}' (job ids are UUIDs)") from exc
        async with self._connection() as conn:
            row = await (
                await conn.execute(f"SELECT {_JOB_COLUMNS} FROM gallery_jobs WHERE id = %s", (key,))
            ).fetchone()
        if row is None:
            raise NotFound(f"no job '{job_id}' (finished jobs are kept {DONE_JOBS_KEPT})")
        return _job(row)

    @bounded
    async def _begin_collection_erasure(self, name: str) -> ErasureJob:
        async with self._transaction() as conn:
            # Waits for enrolments in flight (they hold the row FOR SHARE): none can add a
            # face to the partition after this commits.
            row = await (
                await conn.execute(
                    "UPDATE gallery_collections SET name = %s || id, erasing_since = now()"
                    " WHERE name = %s AND erasing_since IS NULL RETURNING id",
                    (ERASING_PREFIX, name),
                )
            ).fetchone()
            if row is None:
                raise NotFound(f"no collection '{name}'")
            return await self._insert_job(conn, "erase_collection", int(row[0]), name, None)

    @bounded
    async def _begin_subject_erasure(self, collection: str, subject: str) -> ErasureJob:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection, lock=True)
            # The subject's row first: this waits for enrolments into it (storage/faces.py).
            row = await (
                await conn.execute(
                    "SELECT erasing FROM gallery_subjects WHERE collection_id = %s AND name = %s"
                    " FOR UPDATE",
                    (cid, subject),
                )
            ).fetchone()
            if row is None or row[0]:
                raise NotFound(f"no subject '{subject}' in collection '{collection}'")
            faces = await (
                await conn.execute(
                    "SELECT count(*) FROM (SELECT 1 FROM gallery_faces WHERE collection_id = %s"
                    " AND subject = %s LIMIT %s) f",
                    (cid, subject, SUBJECT_INLINE_FACES + 1),
                )
            ).fetchone()
            assert faces is not None
            if int(faces[0]) <= SUBJECT_INLINE_FACES:
                await conn.execute(
                    "DELETE FROM gallery_subjects WHERE collection_id = %s AND name = %s",
                    (cid, subject),
                )
                gone = await conn.execute(
                    "DELETE FROM gallery_faces WHERE collection_id = %s AND subject = %s",
                    (cid, subject),
                )
                now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
                return ErasureJob(
                    "", "subject", collection, subject, "done", 1, gone.rowcount, now, now
                )
            await conn.execute(
                "UPDATE gallery_subjects SET erasing = true WHERE collection_id = %s AND name = %s",
                (cid, subject),
            )
            return await self._insert_job(conn, "erase_subject", cid, collection, subject)

    async def _insert_job(
        self, conn: Connection, kind: str, cid: int, collection: str, subject: str | None
    ) -> ErasureJob:
        row = await (
            await conn.execute(
                "INSERT INTO gallery_jobs (kind, collection_id, collection, subject,"
                " lease_owner, lease_until) VALUES (%s, %s, %s, %s, %s,"
                f" now() + make_interval(secs => %s)) RETURNING {_JOB_COLUMNS}",
                (kind, cid, collection, subject, self._owner, self.lease_s),
            )
        ).fetchone()
        assert row is not None
        return _job(row)

    async def _run_for_a_while(self, job: ErasureJob) -> ErasureJob:
        """Run the job here; its state after half the call's bound (it goes on meanwhile)."""
        running = self._start(job.id)
        limit_s = self._statement_timeout_s
        await asyncio.wait({running}, timeout=None if limit_s is None else limit_s / 2)
        if running.done() and running.exception() is None:
            return await self.get_job(job.id)
        return job

    def _start(self, job_id: str) -> asyncio.Future[None]:
        """The job's task in this process (a new one unless it runs already)."""
        running = self._running.get(job_id)
        if running is None:
            running = asyncio.ensure_future(self._run_job(job_id))
            self._running[job_id] = running
            running.add_done_callback(lambda _: self._running.pop(job_id, None))
            running.add_done_callback(_log_failure)
        return running

    def job_running(self, job_id: str) -> bool:
        """Whether the job runs in this process now."""
        return job_id in self._running

    # The job's steps
    async def _run_job(self, job_id: str) -> None:
        key = uuid.UUID(job_id)
        async with self._connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT kind, collection_id, subject, state FROM gallery_jobs WHERE id = %s",
                    (key,),
                )
            ).fetchone()
        if row is None or row[3] == "done":
            return
        kind, cid, subject = str(row[0]), int(row[1]), row[2]
        if kind == "erase_collection":
            async with self._lease_kept(key):
                await self._drop_partition(cid)
            while await self._erase_batch(
                key,
                "DELETE FROM gallery_subjects WHERE collection_id = %s AND name IN"
                " (SELECT name FROM gallery_subjects WHERE collection_id = %s LIMIT %s)",
                (cid, cid, ERASE_BATCH),
                "subjects_removed",
            ):
                pass
            await self._finish(key, "DELETE FROM gallery_collections WHERE id = %s", (cid,))
        elif not await self._collection_alive(cid):
            # Its collection was erased meanwhile (its partition with it): nothing is left.
            await self._finish(
                key,
                "DELETE FROM gallery_subjects WHERE collection_id = %s AND name = %s",
                (cid, subject),
                subjects=1,
            )
        else:
            while await self._erase_batch(
                key,
                "DELETE FROM gallery_faces WHERE collection_id = %s AND id IN"
                " (SELECT id FROM gallery_faces WHERE collection_id = %s AND subject = %s"
                " LIMIT %s)",
                (cid, cid, subject, ERASE_BATCH),
                "faces_removed",
            ):
                pass
            async with self._lease_kept(key):
                await self._vacuum(cid)
            await self._finish(
                key,
                "DELETE FROM gallery_subjects WHERE collection_id = %s AND name = %s AND erasing",
                (cid, subject),
                subjects=1,
            )
        log.info("gallery: erasure job %s done", job_id)

    async def _collection_alive(self, cid: int) -> bool:
        """Whether the collection exists and is not being erased."""
        async with self._connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT 1 FROM gallery_collections WHERE id = %s AND erasing_since IS NULL",
                    (cid,),
                )
            ).fetchone()
        return row is not None

    async def _renew(self, key: uuid.UUID) -> None:
        """Extend this store's lease of the job; LeaseLost once another store holds it."""
        async with self._connection() as conn:
            renewed = await conn.execute(
                "UPDATE gallery_jobs SET lease_owner = %s,"
                f" lease_until = now() + make_interval(secs => %s) WHERE id = %s AND {_OURS}",
                (self._owner, self.lease_s, key, self._owner),
            )
        if renewed.rowcount == 0:
            raise LeaseLost(key)

    @asynccontextmanager
    async def _lease_kept(self, key: uuid.UUID) -> AsyncIterator[None]:
        """Renew the job's lease before a long step, every third of the lease during it, after it."""

        async def heartbeat() -> None:
            while True:
                await asyncio.sleep(self.lease_s / 3)
                try:
                    await self._renew(key)
                except LeaseLost:
                    return  # the step ends on its own; the renewal after it stops the job
                except FacegateError as exc:
                    log.warning("gallery: an erasure job's lease was not renewed (%s)", exc.message)

        await self._renew(key)
        beating = background.start(heartbeat(), "gallery-erasure-lease")
        try:
            yield
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
        await self._renew(key)

    async def _erase_batch(
        self, key: uuid.UUID, statement: str, params: tuple[object, ...], counter: str
    ) -> int:
        """One batch and the job's progress, in one transaction; the rows it removed."""
        async with self._transaction() as conn:
            removed = (await conn.execute(statement, params)).rowcount
            progress = await conn.execute(
                sql.SQL(
                    "UPDATE gallery_jobs SET {} = {} + %s, lease_owner = %s,"
                    " lease_until = now() + make_interval(secs => %s) WHERE id = %s AND " + _OURS
                ).format(sql.Identifier(counter), sql.Identifier(counter)),
                (removed, self._owner, self.lease_s, key, self._owner),
            )
            if progress.rowcount == 0:
                raise LeaseLost(key)  # rolls the batch back: the holder of the lease does it
        return removed

    async def _finish(
        self, key: uuid.UUID, statement: str, params: tuple[object, ...], subjects: int = 0
    ) -> None:
        async with self._transaction() as conn:
            await conn.execute(statement, params)
            await conn.execute(
                "UPDATE gallery_jobs SET state = 'done', finished_at = now(), subject = NULL,"
                " subjects_removed = subjects_removed + %s, lease_until = NULL"
                " WHERE id = %s AND state = 'running'",  # once, whoever finishes it
                (subjects, key),
            )

    async def _drop_partition(self, cid: int) -> None:
        """Detach the collection's partition online (or finish a detach cut short) and drop it."""
        name = partition(cid)
        async with self._connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT i.inhdetachpending FROM pg_class c LEFT JOIN pg_inherits i"
                    " ON i.inhrelid = c.oid WHERE c.oid = to_regclass(%s)",
                    (partition_name(cid),),
                )
            ).fetchone()
            if row is None:
                return  # dropped already
            if row[0] is not None:
                how = sql.SQL("FINALIZE" if row[0] else "CONCURRENTLY")
                await conn.execute(
                    sql.SQL("ALTER TABLE gallery_faces DETACH PARTITION {} {}").format(name, how)
                )
            await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))

    async def _vacuum(self, cid: int) -> None:
        """VACUUM the partition: the erased faces leave its index and its pages' tuples.

        On a connection of its own: VACUUM takes as long as the partition needs and cannot
        run in a transaction, so the per-call bound cannot be SET LOCAL around it.
        """
        try:
            async with await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, options="-c statement_timeout=0"
            ) as conn:
                # Locks the partition against a DROP until VACUUM takes it over (a collection
                # erased meanwhile): to_regclass is NULL once it is dropped.
                exists = await (
                    await conn.execute("SELECT to_regclass(%s)", (partition_name(cid),))
                ).fetchone()
                if exists is None or exists[0] is None:
                    return
                await conn.execute(sql.SQL("VACUUM {}").format(partition(cid)))
        except psycopg.errors.UndefinedTable:
            return  # dropped between the check and the VACUUM: nothing left to vacuum
        except psycopg.Error as exc:
            raise translate_error(exc) from exc

    # The background poller
    async def _job_loop(self) -> None:
        """Start jobs nobody runs: this store's that failed, and any whose lease ran out.

        Ends when the store closes (psycopg may turn the cancellation of a query into an
        error of its own, which would otherwise keep this loop alive).
        """
        while not self._closing:
            await asyncio.sleep(self.job_poll_s)
            try:
                await self._erase_orphaned_partitions()
                for job_id in await self._claim_orphans():
                    self._start(job_id)
            except FacegateError as exc:
                log.info("erasure jobs: poll failed (%s)", exc.message)

    async def _erase_orphaned_partitions(self) -> None:
        """An erasure job for each partition of faces whose collection row is gone.

        A gateway older than partitioning deletes a collection by its row alone (it relied
        on a cascade that migration 2 removed), leaving the partition with every vector.
        """
        async with self._transaction() as conn:
            locked = await (
                await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (ORPHANS_LOCK_KEY,))
            ).fetchone()
            if locked is None or not locked[0]:
                return  # another gateway looks now
            rows = await (
                await conn.execute(
                    "INSERT INTO gallery_jobs (kind, collection_id, collection)"
                    " SELECT 'erase_collection', p.cid, %s || p.cid FROM"
                    " (SELECT substring(c.relname FROM '^gallery_faces_([0-9]+)$')::bigint AS cid"
                    "  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    "  WHERE i.inhparent = 'gallery_faces'::regclass"
                    "  AND c.relname ~ '^gallery_faces_[0-9]+$') p"
                    " WHERE NOT EXISTS (SELECT 1 FROM gallery_collections g WHERE g.id = p.cid)"
                    " AND NOT EXISTS (SELECT 1 FROM gallery_jobs j WHERE j.state = 'running'"
                    "  AND j.kind = 'erase_collection' AND j.collection_id = p.cid)"
                    " RETURNING collection_id",
                    (ERASING_PREFIX,),
                )
            ).fetchall()
        for (cid,) in rows:
            log.warning(
                "gallery: the faces of collection id %s outlived its row (deleted by an older"
                " gateway): erasing them",
                cid,
            )

    async def _claim_orphans(self) -> list[str]:
        async with self._transaction() as conn:
            rows = await (
                await conn.execute(
                    "UPDATE gallery_jobs SET lease_owner = %s,"
                    " lease_until = now() + make_interval(secs => %s)"
                    " WHERE id IN (SELECT id FROM gallery_jobs WHERE state = 'running'"
                    " AND (lease_owner = %s OR lease_until IS NULL OR lease_until < now())"
                    " AND NOT id = ANY(%s::uuid[]) ORDER BY created_at LIMIT 10"
                    " FOR UPDATE SKIP LOCKED) RETURNING id",
                    (
                        self._owner,
                        self.lease_s,
                        self._owner,
                        list(self._running),
                    ),
                )
            ).fetchall()
            await conn.execute(
                "DELETE FROM gallery_jobs WHERE state = 'done'"
                f" AND finished_at < now() - interval '{DONE_JOBS_KEPT}'"
            )
        return [str(r[0]) for r in rows]


def _log_failure(task: asyncio.Future[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if isinstance(exc, LeaseLost):
        log.info("gallery: %s; this one stops running it", exc)
    elif exc is not None:
        reason = exc.message if isinstance(exc, FacegateError) else repr(exc)
        log.warning("gallery: an erasure job stopped (%s); it resumes on the next poll", reason)
