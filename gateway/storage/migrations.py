"""Versioned schema migrations of the gallery, applied in order under an advisory lock.

Each migration runs once, in its own transaction, and is recorded in
facegate_schema_migrations. Gateways that start together serialise on the advisory lock,
so exactly one applies a pending migration and the others find it done. Never edit a
released migration: add the next one.

Why halfvec(512): ArcFace embeddings are L2-normalised, so half precision (11-bit mantissa)
moves a cosine by about 1e-3, far below the spread between match thresholds (~0.3) and
impostor scores; it halves the table and the HNSW index (1 KiB per face instead of 2), so
twice as many faces stay in shared buffers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg import sql

from gateway.storage.partitions import attach_sql, new_partition_sql, partition

log = logging.getLogger(__name__)
# Any constant shared by every facegate process: the key of the migration advisory lock.
ADVISORY_LOCK_KEY = 0x6661636567617465  # "facegate"


@dataclass(frozen=True)
class Migration:
    """SQL, then an optional step that needs the data (both in the migration's transaction)."""

    version: int
    name: str
    sql: str
    then: Callable[[psycopg.Connection[tuple[object, ...]]], None] | None = None


def _move_faces_to_partitions(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Each collection's faces into a partition of its own, its HNSW index built once loaded."""
    # The index build of a large collection is many times slower when its graph does not
    # fit (~1.5 KiB per face).
    conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
    collections = conn.execute("SELECT id FROM gallery_collections ORDER BY id").fetchall()
    for (cid,) in collections:
        collection_id = int(str(cid))
        create_table, create_index = new_partition_sql(collection_id)
        conn.execute(create_table)
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (id, collection_id, subject, embedding, bbox, score, created_at)"
                " SELECT id, collection_id, subject, embedding, bbox, score, created_at"
                " FROM gallery_faces_v1 WHERE collection_id = {}"
            ).format(partition(collection_id), sql.Literal(collection_id))
        )
        conn.execute(create_index)
        conn.execute(attach_sql(collection_id))
        log.info("moved the faces of collection %d to its partition", collection_id)
    # Its files are unlinked at commit: the vectors leave the disk, not only the queries.
    conn.execute("DROP TABLE gallery_faces_v1")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "gallery tables",
        """
        CREATE EXTENSION IF NOT EXISTS vector;
        CREATE TABLE gallery_collections (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name text NOT NULL UNIQUE,
            metadata jsonb NOT NULL DEFAULT '{}',
            recognizer_sha256 text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE gallery_subjects (
            collection_id bigint NOT NULL REFERENCES gallery_collections (id) ON DELETE CASCADE,
            name text NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (collection_id, name)
        );
        -- Faces carry no image: the embedding, and where the face was in the enrolment photo.
        -- Each collection gets its own partial HNSW index (storage/postgres.py), so a
        -- search's recall never depends on the other collections in the table.
        CREATE TABLE gallery_faces (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            collection_id bigint NOT NULL,
            subject text NOT NULL,
            embedding halfvec(512) NOT NULL,
            bbox real[],
            score real,
            created_at timestamptz NOT NULL DEFAULT now(),
            FOREIGN KEY (collection_id, subject)
                REFERENCES gallery_subjects (collection_id, name) ON DELETE CASCADE
        );
        CREATE INDEX gallery_faces_by_subject ON gallery_faces (collection_id, subject);
        """,
    ),
    Migration(
        2,
        "faces partitioned by collection",
        # storage/partitions.py says why. The old table's faces move into the partitions of
        # their collections in the step that follows; the old table and its partial indexes
        # go. No foreign key from faces to subjects any more (the store keeps the link).
        """
        ALTER TABLE gallery_faces RENAME TO gallery_faces_v1;
        ALTER INDEX gallery_faces_pkey RENAME TO gallery_faces_v1_pkey;
        ALTER INDEX gallery_faces_by_subject RENAME TO gallery_faces_v1_by_subject;
        CREATE TABLE gallery_faces (
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            collection_id bigint NOT NULL,
            subject text NOT NULL,
            embedding halfvec(512) NOT NULL,
            bbox real[],
            score real,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (collection_id, id)
        ) PARTITION BY LIST (collection_id);
        CREATE INDEX gallery_faces_by_subject ON gallery_faces (subject);
        """,
        then=_move_faces_to_partitions,
    ),
    Migration(
        3,
        "erasure jobs",
        # storage/erasure.py says how they run. A collection being erased keeps its row (its
        # subjects reference it) under a name no API call can name, "erasing/<id>"; a subject
        # being erased is flagged and hidden. A job names its collection by id without a
        # foreign key: it outlives the collection. It keeps the subject's name only while it
        # runs (a name is personal data).
        """
        ALTER TABLE gallery_collections ADD COLUMN erasing_since timestamptz;
        ALTER TABLE gallery_subjects ADD COLUMN erasing boolean NOT NULL DEFAULT false;
        CREATE INDEX gallery_subjects_erasing ON gallery_subjects (collection_id) WHERE erasing;
        CREATE TABLE gallery_jobs (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            kind text NOT NULL CHECK (kind IN ('erase_collection', 'erase_subject')),
            collection_id bigint NOT NULL,
            collection text NOT NULL,
            subject text,
            state text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done')),
            subjects_removed bigint NOT NULL DEFAULT 0,
            faces_removed bigint NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            lease_owner uuid,
            lease_until timestamptz
        );
        CREATE INDEX gallery_jobs_running ON gallery_jobs (created_at) WHERE state = 'running';
        """,
    ),
    # 10-19: faces without a subject and clustering them (storage/clustering.py).
    Migration(
        10,
        "unassigned faces",
        """
        -- A face with no subject is unassigned.
        ALTER TABLE gallery_faces ALTER COLUMN subject DROP NOT NULL;
        -- Seen by a cluster run: later runs take only the faces not seen yet (incremental).
        ALTER TABLE gallery_faces ADD COLUMN clustered boolean NOT NULL DEFAULT false;
        -- Listing faces in enrolment order, and a cluster run's new faces (per partition:
        -- each holds one collection; a new partition gets them when it is attached).
        CREATE INDEX gallery_faces_by_created ON gallery_faces (created_at, id);
        CREATE INDEX gallery_faces_unclustered ON gallery_faces (created_at, id)
            WHERE subject IS NULL AND NOT clustered;
        -- The number of the next server-named subject (unknown-0001, ...): never reused,
        -- even after one is renamed or erased.
        ALTER TABLE gallery_collections ADD COLUMN next_unknown integer NOT NULL DEFAULT 1;
        """,
    ),
    # 20-29: the audit trail (storage/audit.py). Identifiers and outcomes only: no embedding.
    Migration(
        20,
        "audit trail",
        """
        CREATE TABLE gallery_audit (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at timestamptz NOT NULL,
            key text NOT NULL,
            action text NOT NULL,
            method text NOT NULL,
            route text NOT NULL,
            outcome integer NOT NULL,
            collection text,
            subject text,
            face_ids text[] NOT NULL DEFAULT '{}',
            subjects text[] NOT NULL DEFAULT '{}',
            request_id text NOT NULL
        );
        CREATE INDEX gallery_audit_by_time ON gallery_audit (at);
        """,
    ),
)


def apply_migrations(conninfo: str, *, up_to: int | None = None) -> list[int]:
    """Apply every pending migration (up to version `up_to`); returns the versions applied now."""
    applied_now: list[int] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for migration in MIGRATIONS:
            if up_to is not None and migration.version > up_to:
                break
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS facegate_schema_migrations ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = conn.execute(
                    "SELECT 1 FROM facegate_schema_migrations WHERE version = %s",
                    (migration.version,),
                ).fetchone()
                if done:
                    continue
                log.info("applying gallery migration %d: %s", migration.version, migration.name)
                conn.execute(migration.sql.encode())
                if migration.then is not None:
                    migration.then(conn)
                conn.execute(
                    "INSERT INTO facegate_schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
                applied_now.append(migration.version)
    return applied_now


def applied_versions(conninfo: str) -> set[int]:
    """The versions of the migrations applied (none for an empty database)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('facegate_schema_migrations')").fetchone()
        if not exists or exists[0] is None:
            return set()
        rows = conn.execute("SELECT version FROM facegate_schema_migrations").fetchall()
        return {int(str(row[0])) for row in rows}


def pending_versions(applied: set[int]) -> list[int]:
    """This code's migrations not in `applied`, in order (any of them, not only the newest)."""
    return [m.version for m in MIGRATIONS if m.version not in applied]


def schema_version(conninfo: str) -> int:
    """The highest migration up to which every one of this code's is applied (0: none).

    Not max(version): migrations are numbered in ranges by area, so 3 may be added after
    10 and 20, and a database at {1, 2, 10, 20} is at version 2 with 3 pending.
    """
    applied = applied_versions(conninfo)
    version = 0
    for migration in MIGRATIONS:
        if migration.version not in applied:
            break
        version = migration.version
    return version
