"""Collections: create (with the partition of their faces), list, read (erasure.py deletes)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb

from gateway.errors import Conflict
from gateway.gallery_ports import Collection, Metadata
from gateway.storage.base import StoreBase, bounded, no_collection, timed_out
from gateway.storage.partitions import create_partition_sql, lock_ddl_sql

log = logging.getLogger(__name__)
# Face counts of list_collections are read this many collections (partitions) per
# statement: the locks of one statement stay far below PostgreSQL's lock table.
COUNT_CHUNK = 100
# A create waits this many per-call bounds for its own outcome before it answers 503: its
# statements are each bounded by the server, so it ends well before (see create_collection).
CREATE_PATIENCE = 4


def _collection(row: Sequence[Any], faces: int) -> Collection:
    name, metadata, sha, created, subjects = row[:5]
    return Collection(name, metadata, sha, created.isoformat(), int(subjects), faces)


_COLLECTION_COLUMNS = """
    c.id, c.name, c.metadata, c.recognizer_sha256, c.created_at,
    (SELECT count(*) FROM gallery_subjects s WHERE s.collection_id = c.id AND NOT s.erasing)
    FROM gallery_collections c"""


class CollectionsMixin(StoreBase):
    """Collections, each with its faces' partition (storage/partitions.py)."""

    async def create_collection(
        self, name: str, metadata: Metadata, recognizer_sha256: str
    ) -> Collection:
        """201 or 409 (the name exists), never a 503 for a collection that was created.

        The row and its partition commit in one transaction, serialised with other partition
        DDL (parallel creates queue on an advisory lock for milliseconds). That transaction is
        never abandoned midway: when the client goes away or the per-call bound runs out, it
        still ends (each statement is bounded by the server), and this call waits for its
        outcome several bounds long, so what it answers is what happened.
        """
        creating = asyncio.ensure_future(self._create(name, metadata, recognizer_sha256))
        self._background.add(creating)
        creating.add_done_callback(self._background.discard)
        limit_s = self._statement_timeout_s
        done, _ = await asyncio.wait(
            {creating}, timeout=None if limit_s is None else CREATE_PATIENCE * limit_s
        )
        if creating in done:
            return creating.result()
        assert limit_s is not None
        raise timed_out(CREATE_PATIENCE * limit_s)

    async def _create(self, name: str, metadata: Metadata, recognizer_sha256: str) -> Collection:
        try:
            async with self._transaction() as conn:
                await conn.execute(lock_ddl_sql())
                row = await (
                    await conn.execute(
                        "INSERT INTO gallery_collections (name, metadata, recognizer_sha256) "
                        "VALUES (%s, %s, %s) RETURNING id, created_at",
                        (name, Jsonb(dict(metadata)), recognizer_sha256),
                    )
                ).fetchone()
                assert row is not None
                for statement in create_partition_sql(int(row[0])):
                    await conn.execute(statement)
        except Conflict as exc:
            raise Conflict(
                f"collection '{name}' already exists: pick another name or delete it first"
            ) from exc
        return Collection(name, dict(metadata), recognizer_sha256, row[1].isoformat())

    async def _face_counts(self, ids: Sequence[int]) -> dict[int, int]:
        """Faces per collection id, COUNT_CHUNK partitions per statement."""
        counts: dict[int, int] = {}
        async with self._connection() as conn:
            for start in range(0, len(ids), COUNT_CHUNK):
                cursor = await conn.execute(
                    "SELECT collection_id, count(*) FROM gallery_faces"
                    " WHERE collection_id = ANY(%s) GROUP BY collection_id",
                    (list(ids[start : start + COUNT_CHUNK]),),
                )
                counts.update((int(cid), int(n)) for cid, n in await cursor.fetchall())
        return counts

    @bounded
    async def list_collections(self) -> list[Collection]:
        async with self._connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLLECTION_COLUMNS} WHERE c.erasing_since IS NULL ORDER BY c.name"
            )
            rows = await cursor.fetchall()
        counts = await self._face_counts([int(row[0]) for row in rows])
        return [_collection(row[1:], counts.get(int(row[0]), 0)) for row in rows]

    @bounded
    async def get_collection(self, name: str) -> Collection:
        async with self._transaction() as conn:
            cursor = await conn.execute(f"SELECT {_COLLECTION_COLUMNS} WHERE c.name = %s", (name,))
            row = await cursor.fetchone()
            if row is None:
                raise no_collection(name)
            faces = await (
                await conn.execute(
                    "SELECT count(*) FROM gallery_faces WHERE collection_id = %s", (row[0],)
                )
            ).fetchone()
        assert faces is not None
        return _collection(row[1:], int(faces[0]))

    @bounded
    async def collection_recognizer(self, name: str) -> str:
        async with self._connection() as conn:  # one statement: no transaction round trips
            row = await (
                await conn.execute(
                    "SELECT recognizer_sha256 FROM gallery_collections WHERE name = %s", (name,)
                )
            ).fetchone()
        if row is None:
            raise no_collection(name)
        return str(row[0])
