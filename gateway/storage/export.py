"""Export of a collection's faces with their embeddings, a page at a time."""

from __future__ import annotations

import uuid

import numpy as np

from gateway.gallery_ports import ExportedFace
from gateway.storage.base import StoreBase, bounded
from gateway.storage.faces import face_uuid


class ExportMixin(StoreBase):
    @bounded
    async def export_faces(
        self, collection: str, after: str | None, limit: int
    ) -> list[ExportedFace]:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            cursor = await conn.execute(
                "SELECT f.id, f.subject, f.embedding, f.bbox, f.score, s.metadata"
                # LEFT: unassigned faces (no subject) are exported too.
                " FROM gallery_faces f LEFT JOIN gallery_subjects s"
                " ON s.collection_id = %s AND s.name = f.subject"
                " WHERE f.collection_id = %s AND NOT coalesce(s.erasing, false) AND f.id > %s"
                " ORDER BY f.id LIMIT %s",
                (cid, cid, face_uuid(after) if after else uuid.UUID(int=0), limit),
            )
            rows = await cursor.fetchall()
        return [
            ExportedFace(
                subject,
                str(fid),
                np.asarray(embedding.to_numpy(), dtype=np.float32),
                tuple(bbox) if bbox is not None else None,
                score,
                meta or {},
            )
            for fid, subject, embedding, bbox, score, meta in rows
        ]
