"""GalleryStore on PostgreSQL + pgvector (psycopg 3, async pool).

psycopg's exceptions are translated into the gateway's error tree here and nowhere else.
Each collection has its own partial HNSW index (cosine, halfvec) created with it and
dropped with it; searches name the collection id as a literal so the planner picks that
index (a bound parameter would not match a partial index's predicate in a generic plan).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt
import psycopg
import psycopg_pool
from pgvector import HalfVector
from pgvector.psycopg import register_vector_async
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg.types.json import Jsonb

from gateway.errors import (
    Conflict,
    FacegateError,
    GalleryStorageFull,
    GalleryUnavailable,
    InvalidParameter,
    NotFound,
)
from gateway.gallery_ports import (
    EMBEDDING_DIM,
    Collection,
    ExportedFace,
    Match,
    Metadata,
    NewFace,
    Subject,
    SubjectPage,
)
from gateway.storage.indexes import create_index_online, drop_index_online, index_name
from gateway.storage.migrations import apply_migrations

log = logging.getLogger(__name__)
Connection = psycopg.AsyncConnection[TupleRow]
# pgvector's default is 40; 100 costs about twice as much per query and finds more of the
# true neighbours (docs/BENCHMARKS.md, "Face gallery").
DEFAULT_EF_SEARCH = 100
MAX_EF_SEARCH = 1000
# Query vectors per bounded search call (a chunk takes ~1 s at 1M faces, ef_search 100).
SEARCH_CHUNK = 100
# Calls still running on a pool replaced by reconnect() get this long to finish.
RETIRE_TIMEOUT_S = 30.0
P = ParamSpec("P")
R = TypeVar("R")


async def open_store(
    conninfo: str,
    *,
    pool_size: int,
    timeout_s: float,
    migrate: bool,
    statement_timeout_s: float | None = None,
) -> PostgresGalleryStore:
    """Apply pending migrations (when asked) and open a pooled store; errors translated."""
    if migrate:
        try:
            applied = await asyncio.to_thread(apply_migrations, conninfo)
        except psycopg.Error as exc:
            raise translate_error(exc) from exc
        if applied:
            log.info("gallery schema migrated to version %d", applied[-1])
    store = PostgresGalleryStore(
        conninfo, pool_size=pool_size, timeout_s=timeout_s, statement_timeout_s=statement_timeout_s
    )
    await store.open()
    return store


def translate_error(exc: psycopg.Error | psycopg_pool.PoolTimeout) -> FacegateError:
    """A psycopg failure as a gateway error, by SQLSTATE class rather than message text."""
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return Conflict("it already exists")
    if isinstance(exc, psycopg.errors.SerializationFailure | psycopg.errors.DeadlockDetected):
        return Conflict("a concurrent change clashed with this one: retry the request")
    if isinstance(exc, psycopg.errors.DiskFull):
        # SQLSTATE 53100, e.g. "could not extend file": the transaction was rolled back.
        return GalleryStorageFull(
            "the gallery database's disk is full, so nothing was written: free space in its "
            "data folder (`facegate serve --gallery-dir`, or the database server's volume), "
            "then retry; identify and other reads still work",
            retry_after_s=30,
        )
    if isinstance(exc, psycopg.DataError):
        # SQLSTATE class 22 (and psycopg's own check): a value the database cannot store,
        # such as a NUL character in a name or in metadata.
        return InvalidParameter("a value cannot be stored (a NUL character?): remove it")
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return GalleryUnavailable(
            "no gallery database connection came free in time: the database is slow or "
            "unreachable; retry, or raise FACEGATE_GALLERY_POOL_SIZE",
            retry_after_s=1,
        )
    return GalleryUnavailable(
        f"the gallery database failed ({type(exc).__name__}): check that PostgreSQL at "
        "FACEGATE_GALLERY_URL is up, then retry",
        retry_after_s=1,
    )


def _forget(task: asyncio.Future[Any]) -> None:
    """Collect an abandoned call's outcome (else asyncio logs it as never retrieved)."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("an abandoned gallery call ended with %r", task.exception())


def _bounded(
    method: Callable[Concatenate[PostgresGalleryStore, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[PostgresGalleryStore, P], Coroutine[Any, Any, R]]:
    """Run a store call within the store's statement_timeout_s, else GalleryUnavailable (503).

    The call runs as a task that is cancelled, not awaited, when time is up (or the request
    is cancelled): psycopg answers a cancellation by asking the server to cancel and waiting
    up to 10 s more for it, which a hung server never grants. The abandoned task ends
    (rolling back) in the background and its connection goes back to the pool or is closed.
    """

    async def call(self: PostgresGalleryStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        limit_s = self._statement_timeout_s
        if limit_s is None:
            return await method(self, *args, **kwargs)
        task = asyncio.ensure_future(method(self, *args, **kwargs))
        try:
            done, _ = await asyncio.wait({task}, timeout=limit_s)
        finally:
            if not task.done():
                task.cancel()
                task.add_done_callback(_forget)
        if task in done:
            return task.result()
        raise GalleryUnavailable(
            f"the gallery database did not answer within {limit_s:g} s (overloaded or hung): "
            "retry shortly; a change that timed out may still have been applied, so read "
            "before repeating it",
            retry_after_s=5,
        )

    call.__name__, call.__qualname__, call.__doc__ = (
        method.__name__,
        method.__qualname__,
        method.__doc__,
    )
    return call


def _halfvec(embedding: npt.NDArray[np.float32]) -> HalfVector:
    if embedding.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(embedding)):
        raise ValueError(f"an embedding is a finite float32 ({EMBEDDING_DIM},) vector")
    return HalfVector(embedding.astype(np.float32))


def _face_uuid(face_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(face_id)
    except ValueError as exc:
        raise NotFound(f"no face '{face_id[:64]}' (face ids are UUIDs)") from exc


class PostgresGalleryStore:
    """The gallery in one PostgreSQL database; open() after migrations have run."""

    def __init__(
        self,
        conninfo: str,
        *,
        pool_size: int = 8,
        timeout_s: float = 10.0,
        statement_timeout_s: float | None = None,
    ) -> None:
        """statement_timeout_s bounds every call (connect, queries, commit); None: no bound.

        A database that hangs (stopped, or a network gone quiet) then costs a request that
        long and a 503, not the request's whole deadline.
        """
        self._statement_timeout_s = statement_timeout_s
        kwargs: dict[str, Any] = {"autocommit": True}
        if statement_timeout_s is not None:
            # libpq's connect_timeout is whole seconds (and 2 at the least); the server-side
            # statement_timeout ends a slow query in the database too, not only our wait.
            kwargs["connect_timeout"] = max(2, math.ceil(statement_timeout_s))
            kwargs["options"] = f"-c statement_timeout={round(statement_timeout_s * 1000)}"
        self._new_pool = functools.partial(
            psycopg_pool.AsyncConnectionPool,
            conninfo,
            min_size=1,
            max_size=pool_size,
            timeout=timeout_s,
            open=False,
            configure=register_vector_async,
            # One round trip per checkout buys a clean recovery after a database restart:
            # a dead connection is replaced instead of failing the request.
            check=psycopg_pool.AsyncConnectionPool.check_connection,
            kwargs=kwargs,
            name="facegate-gallery",
        )
        self._pool: psycopg_pool.AsyncConnectionPool[Connection] = self._new_pool()
        self._retired: set[asyncio.Task[None]] = set()
        # Index builds of new collections, kept referenced until they end (create_collection).
        self._builds: set[asyncio.Future[None]] = set()
        self._old_pools: list[psycopg_pool.AsyncConnectionPool[Connection]] = []
        # Collection name -> id, so a search needs no lookup first; every search checks the
        # id in the same round trip and corrects a stale entry (ids are never reused).
        self._collection_ids: dict[str, int] = {}

    async def open(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=self._pool.timeout)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise translate_error(exc) from exc

    async def close(self) -> None:
        await self._pool.close()
        for retiring in self._retired:
            retiring.cancel()
        await asyncio.gather(*self._retired, return_exceptions=True)
        for old in self._old_pools:
            await old.close()
        self._old_pools.clear()

    async def reconnect(self) -> None:
        """A fresh pool, for when the database is known to be back after a restart.

        The old pool's connections are dead and its reconnect attempts back off (1, 2, 4,
        8 s ...): a new pool connects at once. Calls in flight finish on the old pool, which
        is closed in the background a call's time later.
        """
        old, self._pool = self._pool, self._new_pool()
        await self._pool.open(wait=False)
        retiring = asyncio.create_task(self._retire(old), name="gallery-pool-retire")
        self._retired.add(retiring)
        retiring.add_done_callback(self._retired.discard)

    async def _retire(self, old: psycopg_pool.AsyncConnectionPool[Connection]) -> None:
        # Closing at once would fail the calls queued on it (PoolClosed): they get a call's
        # time to finish there first.
        self._old_pools.append(old)
        await asyncio.sleep(self._statement_timeout_s or RETIRE_TIMEOUT_S)
        await old.close(timeout=RETIRE_TIMEOUT_S)
        self._old_pools.remove(old)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A pooled autocommit connection; psycopg errors come out translated."""
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise translate_error(exc) from exc

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        """A pooled connection inside one transaction; psycopg errors come out translated."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                yield conn
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise translate_error(exc) from exc

    @staticmethod
    async def _collection_id(conn: Connection, name: str, *, lock: bool = False) -> int:
        query = "SELECT id FROM gallery_collections WHERE name = %s"
        # A share lock keeps the collection (and its index) alive until this transaction ends.
        row = await (await conn.execute(query + (" FOR SHARE" if lock else ""), (name,))).fetchone()
        if row is None:
            raise NotFound(f"no collection '{name}': create it with POST /v1/collections")
        return int(row[0])

    @staticmethod
    def _collection(row: Sequence[Any]) -> Collection:
        name, metadata, sha, created, subjects, faces = row
        return Collection(name, metadata, sha, created.isoformat(), int(subjects), int(faces))

    _COLLECTION_COLUMNS = """
        c.name, c.metadata, c.recognizer_sha256, c.created_at,
        (SELECT count(*) FROM gallery_subjects s WHERE s.collection_id = c.id),
        (SELECT count(*) FROM gallery_faces f WHERE f.collection_id = c.id)
        FROM gallery_collections c"""

    @_bounded
    async def create_collection(
        self, name: str, metadata: Metadata, recognizer_sha256: str
    ) -> Collection:
        try:
            async with self._transaction() as conn:
                row = await (
                    await conn.execute(
                        "INSERT INTO gallery_collections (name, metadata, recognizer_sha256) "
                        "VALUES (%s, %s, %s) RETURNING id, created_at",
                        (name, Jsonb(dict(metadata)), recognizer_sha256),
                    )
                ).fetchone()
                assert row is not None
        except Conflict as exc:
            raise Conflict(
                f"collection '{name}' already exists: pick another name or delete it first"
            ) from exc
        # The index is built after the row commits, online (storage/indexes.py): enrolments and
        # searches in other collections go on meanwhile. Until it is valid, searches in this
        # (still tiny) collection scan its rows by the (collection_id, subject) index. The
        # build is a task of its own, shielded: when this call's bound runs out (a build waits
        # for every older transaction) or the client goes away, the build still finishes, or
        # drops its invalid index, instead of leaving the committed collection without one.
        build = asyncio.ensure_future(self._build_index(row[0]))
        self._builds.add(build)
        build.add_done_callback(self._builds.discard)
        try:
            await asyncio.shield(build)
        except FacegateError:
            await self._forget_collection(row[0])
            raise
        return Collection(name, dict(metadata), recognizer_sha256, row[1].isoformat())

    async def _build_index(self, collection_id: int) -> None:
        """Build a new collection's index, unbounded by statement_timeout (see create_collection).

        A build that fails leaves no INVALID index behind: one would stay unused by every
        search and make later builds of the same name fail.
        """
        try:
            async with self._connection() as conn:
                await conn.execute("SET statement_timeout = 0")
                try:
                    await create_index_online(conn, collection_id)
                except BaseException:
                    with contextlib.suppress(psycopg.Error):
                        await drop_index_online(conn, collection_id)
                    raise
        except FacegateError:
            log.warning("the index of collection %d could not be built", collection_id)
            raise

    async def _forget_collection(self, collection_id: int) -> None:
        """Undo a collection whose index could not be built (best effort, logged).

        Only while it is still empty: it was visible from its commit on, so another client
        may have enrolled into it, and those faces were answered 201; such a collection stays
        (its searches scan its rows until an operator rebuilds the index).
        """
        try:
            async with self._connection() as conn:
                await conn.execute(
                    "DELETE FROM gallery_collections c WHERE c.id = %s AND NOT EXISTS "
                    "(SELECT 1 FROM gallery_subjects s WHERE s.collection_id = c.id)",
                    (collection_id,),
                )
        except FacegateError:
            log.warning("could not remove collection %d after its index failed", collection_id)

    @_bounded
    async def list_collections(self) -> list[Collection]:
        async with self._transaction() as conn:
            cursor = await conn.execute(f"SELECT {self._COLLECTION_COLUMNS} ORDER BY c.name")
            return [self._collection(row) for row in await cursor.fetchall()]

    @_bounded
    async def get_collection(self, name: str) -> Collection:
        async with self._transaction() as conn:
            cursor = await conn.execute(
                f"SELECT {self._COLLECTION_COLUMNS} WHERE c.name = %s", (name,)
            )
            row = await cursor.fetchone()
        if row is None:
            raise NotFound(f"no collection '{name}': create it with POST /v1/collections")
        return self._collection(row)

    @_bounded
    async def collection_recognizer(self, name: str) -> str:
        async with self._connection() as conn:  # one statement: no transaction round trips
            row = await (
                await conn.execute(
                    "SELECT recognizer_sha256 FROM gallery_collections WHERE name = %s", (name,)
                )
            ).fetchone()
        if row is None:
            raise NotFound(f"no collection '{name}': create it with POST /v1/collections")
        return str(row[0])

    @_bounded
    async def delete_collection(self, name: str) -> None:
        async with self._transaction() as conn:
            row = await (
                await conn.execute(
                    "DELETE FROM gallery_collections WHERE name = %s RETURNING id", (name,)
                )
            ).fetchone()
            if row is None:
                raise NotFound(f"no collection '{name}'")
        self._collection_ids.pop(name, None)
        # Its rows are gone (committed) and identify answers 404 from here on; the empty index
        # goes online. Should that fail, it is an empty leftover, never reused (ids are not).
        try:
            async with self._connection() as conn:
                await drop_index_online(conn, row[0])
        except FacegateError:
            log.warning("collection %d deleted; its index %s remains", row[0], index_name(row[0]))

    @_bounded
    async def put_subject(self, collection: str, subject: str, metadata: Metadata | None) -> bool:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection, lock=True)
            row = await (
                await conn.execute(
                    "INSERT INTO gallery_subjects (collection_id, name, metadata) "
                    "VALUES (%s, %s, %s) ON CONFLICT (collection_id, name) DO NOTHING RETURNING 1",
                    (cid, subject, Jsonb(dict(metadata or {}))),
                )
            ).fetchone()
            if row is None and metadata is not None:
                await conn.execute(
                    "UPDATE gallery_subjects SET metadata = %s WHERE collection_id = %s AND name = %s",
                    (Jsonb(dict(metadata)), cid, subject),
                )
            return row is not None

    @_bounded
    async def list_subjects(self, collection: str, limit: int, after: str | None) -> SubjectPage:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            cursor = await conn.execute(
                "SELECT s.name, s.metadata, (SELECT count(*) FROM gallery_faces f"
                " WHERE f.collection_id = s.collection_id AND f.subject = s.name)"
                ' FROM gallery_subjects s WHERE s.collection_id = %s AND s.name COLLATE "C" > %s'
                ' ORDER BY s.name COLLATE "C" LIMIT %s',
                (cid, after or "", limit + 1),
            )
            rows = await cursor.fetchall()
        subjects = [Subject(name, meta, int(count)) for name, meta, count in rows[:limit]]
        more = len(rows) > limit
        return SubjectPage(subjects, subjects[-1].name if more and subjects else None)

    @_bounded
    async def get_subject(self, collection: str, subject: str) -> Subject:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            row = await (
                await conn.execute(
                    "SELECT metadata FROM gallery_subjects WHERE collection_id = %s AND name = %s",
                    (cid, subject),
                )
            ).fetchone()
            if row is None:
                raise NotFound(f"no subject '{subject}' in collection '{collection}'")
            faces = await (
                await conn.execute(
                    "SELECT id FROM gallery_faces WHERE collection_id = %s AND subject = %s"
                    " ORDER BY created_at, id",
                    (cid, subject),
                )
            ).fetchall()
        return Subject(subject, row[0], len(faces), tuple(str(f[0]) for f in faces))

    @_bounded
    async def delete_subject(self, collection: str, subject: str) -> int:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            cursor = await conn.execute(
                "DELETE FROM gallery_faces WHERE collection_id = %s AND subject = %s",
                (cid, subject),
            )
            removed = cursor.rowcount
            gone = await conn.execute(
                "DELETE FROM gallery_subjects WHERE collection_id = %s AND name = %s",
                (cid, subject),
            )
            if gone.rowcount == 0:
                raise NotFound(f"no subject '{subject}' in collection '{collection}'")
            return removed

    @_bounded
    async def add_faces(
        self, collection: str, enrolments: Sequence[tuple[str, Sequence[NewFace]]]
    ) -> list[list[str]]:
        out: list[list[str]] = []
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection, lock=True)
            for subject, faces in enrolments:
                await conn.execute(
                    "INSERT INTO gallery_subjects (collection_id, name) VALUES (%s, %s)"
                    " ON CONFLICT (collection_id, name) DO NOTHING",
                    (cid, subject),
                )
                ids: list[str] = []
                for face in faces:
                    row = await (
                        await conn.execute(
                            "INSERT INTO gallery_faces (collection_id, subject, embedding, bbox, score)"
                            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                            (
                                cid,
                                subject,
                                _halfvec(face.embedding),
                                list(face.bbox) if face.bbox is not None else None,
                                face.score,
                            ),
                        )
                    ).fetchone()
                    assert row is not None
                    ids.append(str(row[0]))
                out.append(ids)
        return out

    @_bounded
    async def delete_face(self, collection: str, face_id: str) -> None:
        key = _face_uuid(face_id)
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            gone = await conn.execute(
                "DELETE FROM gallery_faces WHERE collection_id = %s AND id = %s", (cid, key)
            )
            if gone.rowcount == 0:
                raise NotFound(f"no face '{face_id}' in collection '{collection}'")

    async def search(
        self,
        collection: str,
        queries: npt.NDArray[np.float32],
        candidates: int,
        ef_search: int = DEFAULT_EF_SEARCH,
    ) -> list[list[Match]]:
        """Top `candidates` faces per row of `queries` (n, 512), in chunks of SEARCH_CHUNK rows.

        Each chunk is one bounded call: a request may carry up to 1,000 embeddings, and one
        bound over all of them would turn a large batch on a large gallery into a 503.
        """
        found: list[list[Match]] = []
        for start in range(0, len(queries), SEARCH_CHUNK):
            found += await self._search_chunk(
                collection, queries[start : start + SEARCH_CHUNK], candidates, ef_search
            )
        return found

    @_bounded
    async def _search_chunk(
        self,
        collection: str,
        queries: npt.NDArray[np.float32],
        candidates: int,
        ef_search: int,
    ) -> list[list[Match]]:
        # HNSW returns at most ef_search rows, so it is never below the rows asked for.
        ef = min(max(candidates, ef_search), MAX_EF_SEARCH)
        vectors = [_halfvec(row) for row in queries]
        async with self._connection() as conn:
            cid = self._collection_ids.get(collection)
            if cid is None:
                cid = await self._collection_id(conn, collection)
            found, current = await self._search_pipelined(
                conn, collection, cid, vectors, ef, candidates
            )
            if current != cid:  # deleted, or deleted and created again, since it was cached
                self._collection_ids.pop(collection, None)
                if current is None:
                    raise NotFound(
                        f"no collection '{collection}': create it with POST /v1/collections"
                    )
                found, current = await self._search_pipelined(
                    conn, collection, current, vectors, ef, candidates
                )
            if current is not None:
                self._collection_ids[collection] = current
        return found

    @staticmethod
    async def _search_pipelined(
        conn: Connection,
        collection: str,
        cid: int,
        vectors: Sequence[HalfVector],
        ef: int,
        candidates: int,
    ) -> tuple[list[list[Match]], int | None]:
        """One round trip: set ef_search, check the collection's id, search every vector.

        Returns the matches per vector and the collection's id now (None once deleted): the
        matches count only if that is the cid they were searched with. No transaction: a
        search is read-only, and each one sets ef_search itself, so a pooled connection's
        previous value never leaks into it.
        """
        query = sql.SQL(
            "SELECT subject, 1 - (embedding <=> %s) AS similarity, id FROM gallery_faces"
            " WHERE collection_id = {} ORDER BY embedding <=> %s LIMIT %s"
        ).format(sql.Literal(cid))
        async with conn.pipeline():
            await conn.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(ef)))
            check = await conn.execute(
                "SELECT id FROM gallery_collections WHERE name = %s", (collection,)
            )
            cursors = [await conn.execute(query, (v, v, candidates)) for v in vectors]
        row = await check.fetchone()
        found = [
            [Match(s, float(sim), str(fid)) for s, sim, fid in await cursor.fetchall()]
            for cursor in cursors
        ]
        return found, int(row[0]) if row is not None else None

    @_bounded
    async def subject_similarity(
        self, collection: str, subject: str, query: npt.NDArray[np.float32]
    ) -> float:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            row = await (
                await conn.execute(
                    "SELECT max(1 - (embedding <=> %s)) FROM gallery_faces"
                    " WHERE collection_id = %s AND subject = %s",
                    (_halfvec(query), cid, subject),
                )
            ).fetchone()
        if row is None or row[0] is None:
            raise NotFound(f"no faces of subject '{subject}' in collection '{collection}'")
        return float(row[0])

    @_bounded
    async def export_faces(
        self, collection: str, after: str | None, limit: int
    ) -> list[ExportedFace]:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            cursor = await conn.execute(
                "SELECT f.id, f.subject, f.embedding, f.bbox, f.score, s.metadata"
                " FROM gallery_faces f JOIN gallery_subjects s"
                " ON s.collection_id = f.collection_id AND s.name = f.subject"
                " WHERE f.collection_id = %s AND f.id > %s ORDER BY f.id LIMIT %s",
                (cid, _face_uuid(after) if after else uuid.UUID(int=0), limit),
            )
            rows = await cursor.fetchall()
        return [
            ExportedFace(
                subject,
                str(fid),
                np.asarray(embedding.to_numpy(), dtype=np.float32),
                tuple(bbox) if bbox is not None else None,
                score,
                meta,
            )
            for fid, subject, embedding, bbox, score, meta in rows
        ]
