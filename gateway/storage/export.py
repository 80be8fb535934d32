"""Export of a collection: its metadata, every subject and every face, from one snapshot."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import numpy as np

from gateway.gallery_ports import Collection, ExportedFace, Metadata
from gateway.storage.base import Connection, StoreBase, bounded, no_collection
from gateway.storage.faces import face_uuid

# Rows fetched per round trip from the snapshot's server-side cursors.
EXPORT_FETCH = 1000
_FACES = (
    "SELECT f.id, f.subject, f.embedding, f.bbox, f.score, s.metadata"
    # LEFT: unassigned faces (no subject) are exported too.
    " FROM gallery_faces f LEFT JOIN gallery_subjects s"
    " ON s.collection_id = %s AND s.name = f.subject"
    " WHERE f.collection_id = %s AND NOT coalesce(s.erasing, false)"
)


def _exported(row: Sequence[Any]) -> ExportedFace:
    fid, subject, embedding, bbox, score, meta = row
    return ExportedFace(
        subject,
        str(fid),
        np.asarray(embedding.to_numpy(), dtype=np.float32),
        tuple(bbox) if bbox is not None else None,
        score,
        meta or {},
    )


class CollectionSnapshot:
    """One collection as of one moment: read it all within the snapshot's `async with`."""

    def __init__(self, conn: Connection, cid: int, collection: Collection) -> None:
        self._conn = conn
        self._cid = cid
        self.collection = collection

    async def subjects(self) -> AsyncIterator[tuple[str, Metadata]]:
        """Every subject (those without faces too) with its metadata, in name order."""
        async with self._conn.cursor(name="export_subjects") as cursor:
            cursor.itersize = EXPORT_FETCH
            await cursor.execute(
                "SELECT name, metadata FROM gallery_subjects"
                ' WHERE collection_id = %s AND NOT erasing ORDER BY name COLLATE "C"',
                (self._cid,),
            )
            async for name, metadata in cursor:
                yield str(name), metadata

    async def faces(self) -> AsyncIterator[ExportedFace]:
        """Every face with its embedding, in face id order."""
        async with self._conn.cursor(name="export_faces") as cursor:
            cursor.itersize = EXPORT_FETCH
            await cursor.execute(_FACES + " ORDER BY f.id", (self._cid, self._cid))
            async for row in cursor:
                yield _exported(row)


class ExportMixin(StoreBase):
    @asynccontextmanager
    async def snapshot(self, collection: str) -> AsyncIterator[CollectionSnapshot]:
        """A read-only REPEATABLE READ transaction over the collection (no per-call bound:
        for `facegate gallery export`, which reads everything once)."""
        async with self._connection() as conn, conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = await (
                await conn.execute(
                    "SELECT c.id, c.metadata, c.recognizer_sha256, c.created_at,"
                    " (SELECT count(*) FROM gallery_subjects s"
                    "  WHERE s.collection_id = c.id AND NOT s.erasing)"
                    " FROM gallery_collections c WHERE c.name = %s",
                    (collection,),
                )
            ).fetchone()
            if row is None:
                raise no_collection(collection)
            cid = int(row[0])
            faces = await (
                await conn.execute(
                    "SELECT count(*) FROM gallery_faces WHERE collection_id = %s", (cid,)
                )
            ).fetchone()
            assert faces is not None
            meta = Collection(
                collection, row[1], row[2], row[3].isoformat(), int(row[4]), int(faces[0])
            )
            yield CollectionSnapshot(conn, cid, meta)

    @bounded
    async def export_faces(
        self, collection: str, after: str | None, limit: int
    ) -> list[ExportedFace]:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            cursor = await conn.execute(
                _FACES + " AND f.id > %s ORDER BY f.id LIMIT %s",
                (cid, cid, face_uuid(after) if after else uuid.UUID(int=0), limit),
            )
            rows = await cursor.fetchall()
        return [_exported(row) for row in rows]
