"""Each collection's partial HNSW index: its name, its DDL, and building or dropping it online.

One index per collection (`WHERE collection_id = <id>`) keeps a search's recall independent
of every other collection in the table. The DDL runs CONCURRENTLY: a plain CREATE INDEX
takes a SHARE lock on gallery_faces, so while it waits for (or scans past) one open
enrolment, every later enrolment into any collection queues behind it; a plain DROP INDEX
takes ACCESS EXCLUSIVE and stops every search. The concurrent forms take SHARE UPDATE
EXCLUSIVE, which blocks neither reads nor writes. They cannot run inside a transaction, and
two of them on one table can deadlock (each waits for the other's snapshot); PostgreSQL
detects that and cancels one, which is then retried here.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

log = logging.getLogger(__name__)
# HNSW build parameters: pgvector's defaults. Against m=24 or ef_construction=128 on 100k
# clustered faces (docs/BENCHMARKS.md, "Face gallery") they lose 0.01-0.03 of recall@10 and
# build in about half the time; a wider search (ef_search) buys that recall back per query.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
DDL_ATTEMPTS = 3


def index_name(collection_id: int) -> str:
    return f"gallery_faces_hnsw_{collection_id}"


def create_index_sql(collection_id: int, *, concurrently: bool) -> sql.Composed:
    """CREATE INDEX of the collection's partial HNSW index (cosine on halfvec).

    The collection id is a literal: the planner matches a partial index's predicate only
    against a query that names the same constant.
    """
    return sql.SQL(
        "CREATE INDEX {}{} ON gallery_faces USING hnsw (embedding halfvec_cosine_ops) "
        "WITH (m = {}, ef_construction = {}) WHERE collection_id = {}"
    ).format(
        sql.SQL("CONCURRENTLY ") if concurrently else sql.SQL(""),
        sql.Identifier(index_name(collection_id)),
        sql.Literal(HNSW_M),
        sql.Literal(HNSW_EF_CONSTRUCTION),
        sql.Literal(collection_id),
    )


def _drop_sql(collection_id: int) -> sql.Composed:
    return sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(
        sql.Identifier(index_name(collection_id))
    )


async def create_index_online(conn: psycopg.AsyncConnection[TupleRow], collection_id: int) -> None:
    """Build the collection's index without blocking other collections (autocommit conn).

    A failed concurrent build leaves an INVALID index behind: it is dropped before a retry,
    and after the last attempt the error propagates (psycopg's, for the caller to translate).
    """
    for attempt in range(1, DDL_ATTEMPTS + 1):
        try:
            await conn.execute(create_index_sql(collection_id, concurrently=True))
            return
        except psycopg.errors.DeadlockDetected:
            log.info("index build of collection %d deadlocked (attempt %d)", collection_id, attempt)
            await conn.execute(_drop_sql(collection_id))
            if attempt == DDL_ATTEMPTS:
                raise


async def drop_index_online(conn: psycopg.AsyncConnection[TupleRow], collection_id: int) -> None:
    """Drop the collection's index without stopping searches elsewhere (autocommit conn)."""
    for attempt in range(1, DDL_ATTEMPTS + 1):
        try:
            await conn.execute(_drop_sql(collection_id))
            return
        except psycopg.errors.DeadlockDetected:
            log.info("index drop of collection %d deadlocked (attempt %d)", collection_id, attempt)
            if attempt == DDL_ATTEMPTS:
                raise
