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
from dataclasses import dataclass

import psycopg

log = logging.getLogger(__name__)
# Any constant shared by every facegate process: the key of the migration advisory lock.
ADVISORY_LOCK_KEY = 0x6661636567617465  # "facegate"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


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
)


def apply_migrations(conninfo: str) -> list[int]:
    """Apply every pending migration; returns the versions applied now (empty if none)."""
    applied_now: list[int] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for migration in MIGRATIONS:
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
                conn.execute(
                    "INSERT INTO facegate_schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
                applied_now.append(migration.version)
    return applied_now


def schema_version(conninfo: str) -> int:
    """The highest applied migration (0 for an empty database)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('facegate_schema_migrations')").fetchone()
        if not exists or exists[0] is None:
            return 0
        row = conn.execute(
            "SELECT coalesce(max(version), 0) FROM facegate_schema_migrations"
        ).fetchone()
        return int(row[0]) if row else 0
