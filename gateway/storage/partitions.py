"""The faces of each collection in a partition of its own, with its own HNSW index.

gallery_faces is partitioned by LIST (collection_id): one partition per collection, created
in the same transaction as the collection's row. A query names its collection id, so the
planner prunes to that one partition at plan time, opens and locks only its indexes, and a
search's cost and recall never depend on how many other collections there are. (The layout
of migration 1, one table with a partial HNSW index per collection, made every query plan
against, and lock, every collection's index: 5,000 collections filled the lock table.)

A new partition is built empty (its HNSW index too, which then costs nothing) and attached:
ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE on gallery_faces, which blocks no read and no
write, only other DDL on it. Partition DDL of concurrent calls (several gateways, parallel
creates) is serialised on one advisory lock, so it never deadlocks and never needs a retry.
No foreign key points from faces to subjects: one would make each new partition lock
gallery_subjects against every enrolment in flight; the store keeps that link itself.
"""

from __future__ import annotations

from psycopg import sql

# HNSW build parameters: pgvector's defaults. Against m=24 or ef_construction=128 on 100k
# clustered faces (docs/BENCHMARKS.md, "Face gallery") they lose 0.01-0.03 of recall@10 and
# build in about half the time; a wider search (ef_search) buys that recall back per query.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
# Key of the transaction-level advisory lock that serialises partition DDL ("facegdd").
DDL_LOCK_KEY = 0x66616365676464


def partition_name(collection_id: int) -> str:
    return f"gallery_faces_{collection_id}"


def index_name(collection_id: int) -> str:
    """The collection's HNSW index (on its partition)."""
    return f"gallery_faces_{collection_id}_hnsw"


def partition(collection_id: int) -> sql.Identifier:
    return sql.Identifier(partition_name(collection_id))


def create_index_sql(collection_id: int) -> sql.Composed:
    """CREATE INDEX of the collection's HNSW index (cosine on halfvec) on its partition."""
    return sql.SQL(
        "CREATE INDEX {} ON {} USING hnsw (embedding halfvec_cosine_ops)"
        " WITH (m = {}, ef_construction = {})"
    ).format(
        sql.Identifier(index_name(collection_id)),
        partition(collection_id),
        sql.Literal(HNSW_M),
        sql.Literal(HNSW_EF_CONSTRUCTION),
    )


def lock_ddl_sql() -> sql.Composed:
    return sql.SQL("SELECT pg_advisory_xact_lock({})").format(sql.Literal(DDL_LOCK_KEY))


def new_partition_sql(collection_id: int) -> list[sql.Composed]:
    """A detached, empty partition table for the collection, with its HNSW index."""
    return [
        sql.SQL("CREATE TABLE {} (LIKE gallery_faces INCLUDING DEFAULTS)").format(
            partition(collection_id)
        ),
        create_index_sql(collection_id),
    ]


def attach_sql(collection_id: int) -> sql.Composed:
    return sql.SQL("ALTER TABLE gallery_faces ATTACH PARTITION {} FOR VALUES IN ({})").format(
        partition(collection_id), sql.Literal(collection_id)
    )


def create_partition_sql(collection_id: int) -> list[sql.Composed]:
    """Every statement, in order, that gives a new collection its partition (in its transaction).

    Run after lock_ddl_sql() in the same transaction.
    """
    return [*new_partition_sql(collection_id), attach_sql(collection_id)]
