"""Subjects and their faces: create, list, read, enrol (erasure.py erases them).

Faces name their subject, but no foreign key enforces it (storage/partitions.py says why):
an enrolment creates the subject if absent and holds a KEY SHARE lock on its row until it
commits, and an erasure deletes the subject's row first (waiting for those enrolments) and
then its faces, so no face outlives its subject and none is added to one being erased.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pgvector import HalfVector
from psycopg.types.json import Jsonb

from gateway.errors import Conflict, NotFound
from gateway.gallery_ports import EMBEDDING_DIM, Metadata, NewFace, Subject, SubjectPage
from gateway.storage.base import Connection, StoreBase, bounded

# Attempts to find or create an enrolment's subject while others erase and re-create it.
SUBJECT_ATTEMPTS = 3


def halfvec(embedding: npt.NDArray[np.float32]) -> HalfVector:
    if embedding.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(embedding)):
        raise ValueError(f"an embedding is a finite float32 ({EMBEDDING_DIM},) vector")
    return HalfVector(embedding.astype(np.float32))


def face_uuid(face_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(face_id)
    except ValueError as exc:
        raise NotFound(f"no face '{face_id[:64]}' (face ids are UUIDs)") from exc


async def hold_subject(conn: Connection, cid: int, subject: str) -> None:
    """Create the subject if absent and lock it (KEY SHARE) until the transaction ends."""
    for _ in range(SUBJECT_ATTEMPTS):
        await conn.execute(
            "INSERT INTO gallery_subjects (collection_id, name) VALUES (%s, %s)"
            " ON CONFLICT (collection_id, name) DO NOTHING",
            (cid, subject),
        )
        held = await (
            await conn.execute(
                "SELECT erasing FROM gallery_subjects WHERE collection_id = %s AND name = %s"
                " FOR KEY SHARE",
                (cid, subject),
            )
        ).fetchone()
        if held is not None and held[0]:
            raise erasing(subject)
        if held is not None:
            return
        # Erased between the two statements: create it again.
    raise Conflict("the subject was erased and created again meanwhile: retry the request")


def erasing(subject: str) -> Conflict:
    return Conflict(
        f"subject '{subject}' is being erased: retry once its erasure job is done "
        "(GET /v1/gallery/jobs/{id} of the DELETE's answer)"
    )


class FacesMixin(StoreBase):
    """Subjects and faces of a collection (its partition of gallery_faces)."""

    @bounded
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
            if row is None:
                updated = await conn.execute(
                    "UPDATE gallery_subjects SET metadata = CASE WHEN %s THEN %s ELSE metadata END"
                    " WHERE collection_id = %s AND name = %s AND NOT erasing",
                    (metadata is not None, Jsonb(dict(metadata or {})), cid, subject),
                )
                if updated.rowcount == 0:
                    raise erasing(subject)
            return row is not None

    @bounded
    async def list_subjects(self, collection: str, limit: int, after: str | None) -> SubjectPage:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            cursor = await conn.execute(
                "SELECT name, metadata FROM gallery_subjects"
                ' WHERE collection_id = %s AND NOT erasing AND name COLLATE "C" > %s'
                ' ORDER BY name COLLATE "C" LIMIT %s',
                (cid, after or "", limit + 1),
            )
            rows = await cursor.fetchall()
            # By the collection id as a value (not a column of an outer query), so the plan
            # is pruned to this collection's partition.
            counts = await (
                await conn.execute(
                    "SELECT subject, count(*) FROM gallery_faces"
                    " WHERE collection_id = %s AND subject = ANY(%s) GROUP BY subject",
                    (cid, [name for name, _ in rows[:limit]]),
                )
            ).fetchall()
        faces = {name: int(n) for name, n in counts}
        subjects = [Subject(name, meta, faces.get(name, 0)) for name, meta in rows[:limit]]
        more = len(rows) > limit
        return SubjectPage(subjects, subjects[-1].name if more and subjects else None)

    @bounded
    async def get_subject(self, collection: str, subject: str) -> Subject:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            row = await (
                await conn.execute(
                    "SELECT metadata FROM gallery_subjects"
                    " WHERE collection_id = %s AND name = %s AND NOT erasing",
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

    @bounded
    async def add_faces(
        self, collection: str, enrolments: Sequence[tuple[str | None, Sequence[NewFace]]]
    ) -> list[list[str]]:
        out: list[list[str]] = []
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection, lock=True)
            rows: list[
                tuple[uuid.UUID, int, str | None, HalfVector, list[float] | None, float | None]
            ] = []
            for subject, faces in enrolments:
                if subject is not None:  # None: unassigned faces (storage/clustering.py)
                    await hold_subject(conn, cid, subject)
                ids = [uuid.uuid4() for _ in faces]
                rows += [
                    (
                        face_id,
                        cid,
                        subject,
                        halfvec(face.embedding),
                        list(face.bbox) if face.bbox is not None else None,
                        face.score,
                    )
                    for face_id, face in zip(ids, faces, strict=True)
                ]
                out.append([str(i) for i in ids])
            async with conn.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO gallery_faces"
                    " (id, collection_id, subject, embedding, bbox, score)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    rows,
                )
        return out

    @bounded
    async def delete_face(self, collection: str, face_id: str) -> None:
        key = face_uuid(face_id)
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            gone = await conn.execute(
                "DELETE FROM gallery_faces WHERE collection_id = %s AND id = %s", (cid, key)
            )
            if gone.rowcount == 0:
                raise NotFound(f"no face '{face_id}' in collection '{collection}'")

    @bounded
    async def subject_similarity(
        self, collection: str, subject: str, query: npt.NDArray[np.float32]
    ) -> float:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            row = await (
                await conn.execute(
                    "SELECT max(1 - (embedding <=> %s)) FROM gallery_faces"
                    " WHERE collection_id = %s AND subject = %s",
                    (halfvec(query), cid, subject),
                )
            ).fetchone()
        if row is None or row[0] is None:
            raise NotFound(f"no faces of subject '{subject}' in collection '{collection}'")
        return float(row[0])
