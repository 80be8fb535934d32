"""The store's pool, its per-call bound, and the one seam that translates psycopg's errors.

Every connection carries two server settings from its start: statement_timeout (the per-call
bound, when one is set) and plan_cache_mode=force_custom_plan. The latter matters with
faces partitioned by collection: a generic plan of a prepared statement keeps every
partition and locks them all (and every index of each) before run-time pruning, so a
gallery of thousands of collections would fill PostgreSQL's lock table; a custom plan is
pruned to the one partition at plan time. A setting changed for one call is SET LOCAL,
inside that call's transaction, never left on a pooled connection.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
import psycopg_pool
from pgvector.psycopg import register_vector_async
from psycopg.rows import TupleRow

from gateway.errors import (
    Conflict,
    FacegateError,
    GalleryStorageFull,
    GalleryUnavailable,
    InvalidParameter,
    NotFound,
)

log = logging.getLogger(__name__)
Connection = psycopg.AsyncConnection[TupleRow]
# Calls still running on a pool replaced by reconnect() get this long to finish.
RETIRE_TIMEOUT_S = 30.0
# After a pool timeout, a direct connection attempt tells an unreachable database (or a wrong
# password) from a busy pool; at most this often.
CONNECT_CHECK_S = 5.0
P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="StoreBase")


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


def _without_password(message: str, conninfo: str) -> str:
    """libpq's message, its first line, with the URL's password masked should it appear."""
    first = message.strip().splitlines()[0] if message.strip() else "no reason given"
    try:
        password = psycopg.conninfo.conninfo_to_dict(conninfo).get("password")
    except psycopg.Error:
        return "the connection string cannot be read"
    return first.replace(str(password), "***") if password else first


def _forget(task: asyncio.Future[Any]) -> None:
    """Collect an abandoned call's outcome (else asyncio logs it as never retrieved)."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("an abandoned gallery call ended with %r", task.exception())


def timed_out(limit_s: float) -> GalleryUnavailable:
    return GalleryUnavailable(
        f"the gallery database did not answer within {limit_s:g} s (overloaded or hung): "
        "retry shortly; a change that timed out may still have been applied, so read "
        "before repeating it",
        retry_after_s=5,
    )


def bounded(
    method: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Run a store call within the store's statement_timeout_s, else GalleryUnavailable (503).

    The call runs as a task that is cancelled, not awaited, when time is up (or the request
    is cancelled): psycopg answers a cancellation by asking the server to cancel and waiting
    up to 10 s more for it, which a hung server never grants. The abandoned task ends
    (rolling back) in the background and its connection goes back to the pool or is closed.
    """

    async def call(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
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
        raise timed_out(limit_s)

    call.__name__, call.__qualname__, call.__doc__ = (
        method.__name__,
        method.__qualname__,
        method.__doc__,
    )
    return call


def no_collection(name: str) -> NotFound:
    return NotFound(f"no collection '{name}': create it with POST /v1/collections")


def _version(text: str) -> tuple[int, ...]:
    """'0.8.0' -> (0, 8, 0); parts that are not numbers end it."""
    parts: list[int] = []
    for part in text.split("."):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


class StoreBase:
    """The pool and the helpers every concern of the store shares; open() after migrations."""

    # Whether the database's pgvector has iterative HNSW scans (0.8+); read once, on first use.
    _iterative_scan: bool | None = None

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
        self._conninfo = conninfo
        self._statement_timeout_s = statement_timeout_s
        options = "-c plan_cache_mode=force_custom_plan"
        kwargs: dict[str, Any] = {"autocommit": True}
        if statement_timeout_s is not None:
            # libpq's connect_timeout is whole seconds (and 2 at the least); the server-side
            # statement_timeout ends a slow query in the database too, not only our wait.
            kwargs["connect_timeout"] = max(2, math.ceil(statement_timeout_s))
            options += f" -c statement_timeout={round(statement_timeout_s * 1000)}"
        kwargs["options"] = options
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
        self._old_pools: list[psycopg_pool.AsyncConnectionPool[Connection]] = []
        # Calls that go on when their caller stops waiting (a create), kept referenced.
        self._background: set[asyncio.Future[Any]] = set()
        # Collection name -> id, so a search needs no lookup first; every search checks the
        # id in the same round trip and corrects a stale entry (ids are never reused).
        self._collection_ids: dict[str, int] = {}
        # The last direct connection attempt after a pool timeout (see _translated).
        self._connect_checked_at = -math.inf
        self._connect_problem: str | None = None

    async def open(self) -> None:
        try:
            await self._pool.open(wait=True, timeout=self._pool.timeout)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise await self._translated(exc) from exc

    async def _hnsw_iterative(self, conn: Connection) -> bool:
        """Whether pgvector here has `hnsw.iterative_scan` (0.8+), asked once per store.

        pgvector 0.7 on PostgreSQL 15+ refuses the setting (its prefix is reserved), so a
        search that set it unconditionally would fail there.
        """
        if self._iterative_scan is None:
            row = await (
                await conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
            ).fetchone()
            self._iterative_scan = row is not None and _version(str(row[0])) >= (0, 8)
        return self._iterative_scan

    async def _translated(self, exc: psycopg.Error | psycopg_pool.PoolTimeout) -> FacegateError:
        """translate_error, telling a database nobody can connect to from a busy pool.

        A pool timeout has either cause: one direct connection attempt (at most one every
        CONNECT_CHECK_S, the callers in between reuse its answer) tells them apart and names
        the cause as libpq gives it (never the password).
        """
        if not isinstance(exc, psycopg_pool.PoolTimeout):
            return translate_error(exc)
        if time.monotonic() - self._connect_checked_at >= CONNECT_CHECK_S:
            self._connect_checked_at = time.monotonic()
            self._connect_problem = await self._connect_once()
        if self._connect_problem is None:
            return translate_error(exc)
        return GalleryUnavailable(
            "cannot connect to the gallery database (wrong password, host or port?): "
            f"{self._connect_problem}; check FACEGATE_GALLERY_URL and that PostgreSQL is up",
            retry_after_s=1,
        )

    async def _connect_once(self) -> str | None:
        """Why a new connection fails now (None: it connects)."""
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, connect_timeout=2)
        except psycopg.Error as exc:
            return _without_password(str(exc), self._conninfo)
        await conn.close()
        return None

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
            raise await self._translated(exc) from exc

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        """A pooled connection inside one transaction; psycopg errors come out translated."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                yield conn
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            raise await self._translated(exc) from exc

    @staticmethod
    async def _collection_id(conn: Connection, name: str, *, lock: bool = False) -> int:
        query = "SELECT id FROM gallery_collections WHERE name = %s"
        # A share lock keeps the collection (and its partition) alive until this transaction
        # ends.
        row = await (await conn.execute(query + (" FOR SHARE" if lock else ""), (name,))).fetchone()
        if row is None:
            raise no_collection(name)
        return int(row[0])
