"""Bulk loading for benchmarks and large imports: binary COPY, then one index build.

Loading with the HNSW index in place inserts into the graph row by row; loading first and
building the index once is several times faster (pgvector's own advice). Everything here
works on the one collection's partition (storage/partitions.py): its plain DROP/CREATE
INDEX blocks enrolment into that collection while it runs, and no other collection.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import numpy.typing as npt
import psycopg
from pgvector import HalfVector
from pgvector.psycopg import register_vector
from psycopg import sql

from gateway.storage.partitions import create_index_sql, index_name, partition, partition_name


def _collection_id(conn: psycopg.Connection[tuple[object, ...]], name: str) -> int:
    row = conn.execute("SELECT id FROM gallery_collections WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise LookupError(f"no collection '{name}'")
    return int(str(row[0]))


def copy_faces(
    conninfo: str, collection: str, subjects: list[str], embeddings: npt.NDArray[np.float32]
) -> list[str]:
    """Insert one face per subject (float32 (N, 512), L2-normalised) with binary COPY.

    Drops the collection's HNSW index first; call build_index afterwards. Returns face ids.
    """
    ids = [uuid.uuid4() for _ in subjects]
    with psycopg.connect(conninfo) as conn:
        register_vector(conn)
        cid = _collection_id(conn, collection)
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(index_name(cid))))
        with conn.cursor().copy(
            "COPY gallery_subjects (collection_id, name) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["bigint", "text"])
            for name in dict.fromkeys(subjects):
                copy.write_row((cid, name))
        with conn.cursor().copy(
            sql.SQL(
                "COPY {} (id, collection_id, subject, embedding) FROM STDIN WITH (FORMAT BINARY)"
            ).format(partition(cid))
        ) as copy:
            copy.set_types(["uuid", "bigint", "text", "halfvec"])
            for face_id, name, row in zip(ids, subjects, embeddings, strict=True):
                copy.write_row((face_id, cid, name, HalfVector(row)))
    return [str(i) for i in ids]


def build_index(conninfo: str, collection: str, maintenance_work_mem: str = "2GB") -> float:
    """(Re)build the collection's HNSW index; returns the seconds it took."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        cid = _collection_id(conn, collection)
        # The graph must fit in maintenance_work_mem or the build slows down many times.
        conn.execute(
            sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(maintenance_work_mem))
        )
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(index_name(cid))))
        started = time.perf_counter()
        conn.execute(create_index_sql(cid))
        conn.execute(sql.SQL("ANALYZE {}").format(partition(cid)))
        return time.perf_counter() - started


def relation_sizes_mib(conninfo: str, collection: str) -> dict[str, float]:
    """The collection's partition (with its indexes) and HNSW index, and shared_buffers, in MiB."""
    with psycopg.connect(conninfo) as conn:
        cid = _collection_id(conn, collection)
        row = conn.execute(
            "SELECT pg_total_relation_size(to_regclass(%s)), "
            "coalesce(pg_relation_size(to_regclass(%s)), 0), "
            "(SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers')",
            (partition_name(cid), index_name(cid)),
        ).fetchone()
    assert row is not None
    mib = 1024 * 1024
    return {
        "faces_partition_with_indexes": int(str(row[0])) / mib,
        "hnsw_index": int(str(row[1])) / mib,
        "shared_buffers": int(str(row[2])) / mib,
    }


def server_pid(conninfo: str) -> int:
    """The postmaster's pid (the parent of this connection's backend), for memory sampling."""
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        stat = Path(f"/proc/{int(str(row[0]))}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])
