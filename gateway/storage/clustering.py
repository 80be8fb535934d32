"""Unassigned faces and clustering: listing, assigning by hand, merging subjects, the
neighbour queries and the writes of a cluster step (ClusterStore's SQL).

Functions take a connection and the collection id; ClusteringMixin bounds them (one call
each) and translates psycopg's errors. A cluster step's writes only ever touch faces that
are still unassigned (`subject IS NULL` in every UPDATE), so a face a caller assigned
meanwhile, by enrolment or by hand, never moves. Faces name their subject without a foreign
key (storage/partitions.py): an assignment holds the subject's row (faces.hold_subject), as
an enrolment does, and a merge deletes the source subject's row first, as an erasure does.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import numpy.typing as npt
from pgvector import HalfVector
from psycopg import sql

from gateway.errors import Conflict, InvalidParameter, NotFound
from gateway.gallery_ports import (
    ClusterOutcome,
    ClusterWrite,
    FaceInfo,
    FacePage,
    Neighbour,
    StoredFace,
)
from gateway.storage.base import Connection, StoreBase, bounded
from gateway.storage.faces import erasing, face_uuid, halfvec, hold_subject
from gateway.storage.search import MAX_EF_SEARCH, NOT_ERASING, set_hnsw_scan

UNKNOWN_PREFIX = "unknown-"
CURSOR_SEPARATOR = "|"
# A face that other changes keep moving between subjects while set_face_subject locks one.
_SUBJECT_MOVED_TRIES = 5


def unknown_name(number: int) -> str:
    """The server-made name of the `number`th new subject: unknown-0001, ..."""
    return f"{UNKNOWN_PREFIX}{number:04d}"


def _face_info(row: Sequence[object]) -> FaceInfo:
    fid, subject, created = row
    assert isinstance(created, datetime)
    return FaceInfo(str(fid), subject if isinstance(subject, str) else None, created.isoformat())


def _position(after: str) -> tuple[datetime, uuid.UUID]:
    created, _, fid = after.partition(CURSOR_SEPARATOR)
    try:
        return datetime.fromisoformat(created), uuid.UUID(fid)
    except ValueError as exc:
        raise InvalidParameter("cursor: pass back the next_cursor of the previous page") from exc


# Faces of a subject being erased (storage/erasure.py) are hidden from every read here, by
# search's own condition; its %s is the collection's id.
_NOT_ERASING = sql.SQL(NOT_ERASING)


async def list_faces(
    conn: Connection,
    cid: int,
    subject: str | None,
    only_unassigned: bool,
    limit: int,
    after: str | None,
) -> FacePage:
    """A page of faces in (created_at, id) order; next_after is "<created ISO>|<id>"."""
    where = [sql.SQL("collection_id = %s"), _NOT_ERASING]
    params: list[object] = [cid, cid]
    if only_unassigned:
        where.append(sql.SQL("subject IS NULL"))
    elif subject is not None:
        found = await conn.execute(
            "SELECT 1 FROM gallery_subjects WHERE collection_id = %s AND name = %s AND NOT erasing",
            (cid, subject),
        )
        if await found.fetchone() is None:
            raise NotFound(f"no subject '{subject}' in this collection")
        where.append(sql.SQL("subject = %s"))
        params.append(subject)
    if after:
        where.append(sql.SQL("(created_at, id) > (%s, %s)"))
        params += list(_position(after))
    query = sql.SQL(
        "SELECT id, subject, created_at FROM gallery_faces WHERE {} "
        "ORDER BY created_at, id LIMIT %s"
    ).format(sql.SQL(" AND ").join(where))
    rows = await (await conn.execute(query, [*params, limit + 1])).fetchall()
    faces = [_face_info(row) for row in rows[:limit]]
    more = len(rows) > limit and faces
    next_after = (
        f"{rows[limit - 1][2].isoformat()}{CURSOR_SEPARATOR}{faces[-1].id}" if more else None
    )
    return FacePage(faces, next_after)


class _FaceMoved(Exception):
    """The face's subject changed between reading it and locking the face."""


async def _subject_of(conn: Connection, cid: int, face: uuid.UUID, lock: str) -> str | None:
    """The face's subject (None: unassigned), read with `lock` (" FOR UPDATE" or "")."""
    row = await (
        await conn.execute(
            "SELECT subject FROM gallery_faces WHERE collection_id = %s AND id = %s" + lock,
            (cid, face),
        )
    ).fetchone()
    if row is None:
        raise NotFound(f"no face '{face}' in this collection")
    return None if row[0] is None else str(row[0])


async def set_face_subject(
    conn: Connection, cid: int, face: uuid.UUID, subject: str | None
) -> FaceInfo:
    """Assign (creating the subject if absent) or unassign one face, in the caller's
    transaction. A face unassigned by hand counts as seen: later runs do not take it as a
    new face (it can still be grouped with new faces it is close to). A face of a subject
    being erased is refused (409): moving it out would keep it from its erasure."""
    # Lock order: the face's subject, then the face, as erasure (storage/erasure.py) and
    # merge_subject do; the face first would deadlock with them (PostgreSQL aborts one after
    # deadlock_timeout and the caller gets a 409 for nothing).
    for _ in range(_SUBJECT_MOVED_TRIES):
        try:
            # A savepoint per try: a try that finds the face moved meanwhile rolls back and
            # with it releases its locks, so the next try never holds the face while it waits
            # for a subject (that wait could deadlock with an erasure or merge of it).
            async with conn.transaction():
                seen = await _subject_of(conn, cid, face, "")
                if seen is not None:
                    held = await (
                        await conn.execute(
                            "SELECT erasing FROM gallery_subjects"
                            " WHERE collection_id = %s AND name = %s"
                            # waits for erasure's UPDATE ... SET erasing (NO KEY UPDATE)
                            " FOR SHARE",
                            (cid, seen),
                        )
                    ).fetchone()
                    if held is not None and held[0]:
                        raise erasing(seen)
                if await _subject_of(conn, cid, face, " FOR UPDATE") != seen:
                    raise _FaceMoved
            break  # the subject it is in now is the one locked
        except _FaceMoved:
            continue
    else:
        raise Conflict(f"face '{face}' was moved by other changes while this one ran: try again")
    if subject is not None:
        await hold_subject(conn, cid, subject)
    row = await (
        await conn.execute(
            "UPDATE gallery_faces SET subject = %s, clustered = true"
            " WHERE collection_id = %s AND id = %s RETURNING id, subject, created_at",
            (subject, cid, face),
        )
    ).fetchone()
    if row is None:
        raise NotFound(f"no face '{face}' in this collection")
    return _face_info(row)


async def merge_subject(conn: Connection, cid: int, source: str, into: str) -> int:
    """Move `source`'s faces to `into` (created if absent) and erase `source`: its row
    first, which waits for enrolments into it (storage/faces.py)."""
    if source == into:
        raise InvalidParameter("merge_from names this same subject: nothing to do")
    gone = await conn.execute(
        "DELETE FROM gallery_subjects WHERE collection_id = %s AND name = %s AND NOT erasing",
        (cid, source),
    )
    if gone.rowcount == 0:
        raise NotFound(f"no subject '{source}' to merge from")
    await hold_subject(conn, cid, into)
    moved = await conn.execute(
        "UPDATE gallery_faces SET subject = %s WHERE collection_id = %s AND subject = %s",
        (into, cid, source),
    )
    return moved.rowcount


def _embedding(value: HalfVector) -> npt.NDArray[np.float32]:
    return np.asarray(value.to_numpy(), dtype=np.float32)


async def unclustered_faces(conn: Connection, cid: int, limit: int) -> list[StoredFace]:
    rows = await (
        await conn.execute(
            "SELECT id, embedding FROM gallery_faces"
            " WHERE collection_id = %s AND subject IS NULL AND NOT clustered"
            " ORDER BY created_at, id LIMIT %s",
            (cid, limit),
        )
    ).fetchall()
    return [StoredFace(str(fid), None, _embedding(emb)) for fid, emb in rows]


async def count_unclustered(conn: Connection, cid: int) -> tuple[int, int]:
    row = await (
        await conn.execute(
            "SELECT count(*) FILTER (WHERE NOT clustered), count(*) FROM gallery_faces"
            " WHERE collection_id = %s AND subject IS NULL",
            (cid,),
        )
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def neighbours(
    conn: Connection,
    cid: int,
    vectors: Sequence[HalfVector],
    count: int,
    ef: int,
    iterative: bool = True,
) -> list[list[Neighbour]]:
    """The `count` nearest faces per vector by the HNSW index of the collection's partition,
    in one round trip; ef_search SET LOCAL in its own transaction. Faces of subjects being
    erased are left out in the query, as search does (storage/search.py)."""
    query = (
        "SELECT id, subject, embedding <=> %s FROM gallery_faces WHERE collection_id = %s AND "
        + NOT_ERASING
        + " ORDER BY embedding <=> %s LIMIT %s"
    )
    async with conn.pipeline(), conn.transaction():
        await set_hnsw_scan(conn, ef, iterative)
        cursors = [await conn.execute(query, (v, cid, cid, v, count)) for v in vectors]
    return [
        [
            Neighbour(str(fid), subject, float(distance))
            for fid, subject, distance in await cursor.fetchall()
        ]
        for cursor in cursors
    ]


async def face_embeddings(
    conn: Connection, cid: int, face_ids: Sequence[str]
) -> dict[str, npt.NDArray[np.float32]]:
    rows = await (
        await conn.execute(
            sql.SQL(
                "SELECT id, embedding FROM gallery_faces"
                " WHERE collection_id = %s AND id = ANY(%s) AND {}"
            ).format(_NOT_ERASING),
            (cid, [uuid.UUID(i) for i in face_ids], cid),
        )
    ).fetchall()
    return {str(fid): _embedding(emb) for fid, emb in rows}


async def apply_cluster(conn: Connection, cid: int, outcome: ClusterOutcome) -> ClusterWrite:
    """Write one cluster step inside the caller's transaction (which locked the collection
    row FOR UPDATE, so steps of one collection run one at a time), in a fixed number of
    statements: every assignment is one UPDATE over an (id, subject) list. Each assigned face
    is a new row version that PostgreSQL inserts into the HNSW index too: that, not the round
    trips, is a step's write cost."""
    wanted = list(outcome.joins)
    alive = await conn.execute(
        "SELECT name FROM gallery_subjects WHERE collection_id = %s AND name = ANY(%s)"
        " AND NOT erasing FOR SHARE",
        (cid, wanted),
    )
    live = {str(row[0]) for row in await alive.fetchall()}  # erased meanwhile: faces stay
    row = await (
        await conn.execute("SELECT next_unknown FROM gallery_collections WHERE id = %s", (cid,))
    ).fetchone()
    assert row is not None
    number = int(row[0])
    taken = await conn.execute(
        "SELECT name FROM gallery_subjects WHERE collection_id = %s AND name LIKE %s",
        (cid, UNKNOWN_PREFIX + "%"),
    )
    used = {str(r[0]) for r in await taken.fetchall()}  # a caller may have taken some by hand
    free = await conn.execute(
        "SELECT id FROM gallery_faces WHERE collection_id = %s AND id = ANY(%s)"
        " AND subject IS NULL FOR UPDATE",
        (cid, [uuid.UUID(f) for group in outcome.new_groups for f in group]),
    )
    unassigned = {str(r[0]) for r in await free.fetchall()}
    # Planned without a lock: a run planning the same faces may have assigned some since.
    groups = [[f for f in group if f in unassigned] for group in outcome.new_groups]
    groups = [group for group in groups if len(group) >= outcome.min_faces]
    names: list[str] = []
    for _ in groups:
        while unknown_name(number) in used:
            number += 1
        names.append(unknown_name(number))
        number += 1
    await conn.execute(
        "INSERT INTO gallery_subjects (collection_id, name) SELECT %s, unnest(%s::text[])",
        (cid, names),
    )
    ids: list[uuid.UUID] = []
    subjects: list[str] = []
    for subject, faces in [*outcome.joins.items(), *zip(names, groups, strict=True)]:
        if subject in live or subject in names:
            ids += [uuid.UUID(f) for f in faces]
            subjects += [subject] * len(faces)
    moved = await conn.execute(
        "UPDATE gallery_faces f SET subject = m.subject, clustered = true"
        " FROM unnest(%s::uuid[], %s::text[]) AS m(id, subject)"
        " WHERE f.collection_id = %s AND f.id = m.id AND f.subject IS NULL"
        " RETURNING m.subject",
        (ids, subjects, cid),
    )
    counts = Counter(str(r[0]) for r in await moved.fetchall())
    empty = [name for name in names if counts[name] == 0]  # all assigned by hand meanwhile
    if empty:
        await conn.execute(
            "DELETE FROM gallery_subjects WHERE collection_id = %s AND name = ANY(%s)",
            (cid, empty),
        )
    await conn.execute(
        "UPDATE gallery_collections SET next_unknown = %s WHERE id = %s", (number, cid)
    )
    await conn.execute(
        "UPDATE gallery_faces SET clustered = true"
        " WHERE collection_id = %s AND id = ANY(%s) AND NOT clustered",
        (cid, [uuid.UUID(i) for i in outcome.seen]),
    )
    return ClusterWrite([n for n in names if counts[n] > 0], sum(counts.values()))


# Query vectors per bounded neighbour call (as search's SEARCH_CHUNK).
NEIGHBOUR_CHUNK = 100


class ClusteringMixin(StoreBase):
    """ClusterStore on the gallery's PostgreSQL (gallery_ports.ClusterStore)."""

    @bounded
    async def list_faces(
        self,
        collection: str,
        subject: str | None,
        only_unassigned: bool,
        limit: int,
        after: str | None,
    ) -> FacePage:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            return await list_faces(conn, cid, subject, only_unassigned, limit, after)

    @bounded
    async def set_face_subject(
        self, collection: str, face_id: str, subject: str | None
    ) -> FaceInfo:
        key = face_uuid(face_id)
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection, lock=True)
            return await set_face_subject(conn, cid, key, subject)

    @bounded
    async def merge_subject(self, collection: str, source: str, into: str) -> int:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection, lock=True)
            return await merge_subject(conn, cid, source, into)

    @bounded
    async def unclustered_faces(self, collection: str, limit: int) -> list[StoredFace]:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            return await unclustered_faces(conn, cid, limit)

    @bounded
    async def count_unclustered(self, collection: str) -> tuple[int, int]:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            return await count_unclustered(conn, cid)

    async def neighbours(
        self, collection: str, queries: npt.NDArray[np.float32], count: int, ef_search: int
    ) -> list[list[Neighbour]]:
        """Nearest faces per query row, in bounded calls of NEIGHBOUR_CHUNK rows."""
        found: list[list[Neighbour]] = []
        ef = min(max(count, ef_search), MAX_EF_SEARCH)
        for start in range(0, len(queries), NEIGHBOUR_CHUNK):
            found += await self._neighbours_chunk(
                collection, queries[start : start + NEIGHBOUR_CHUNK], count, ef
            )
        return found

    @bounded
    async def _neighbours_chunk(
        self, collection: str, queries: npt.NDArray[np.float32], count: int, ef: int
    ) -> list[list[Neighbour]]:
        vectors = [halfvec(row) for row in queries]
        async with self._connection() as conn:
            cid = await self._collection_id(conn, collection)
            iterative = await self._hnsw_iterative(conn)
            return await neighbours(conn, cid, vectors, count, ef, iterative)

    @bounded
    async def face_embeddings(
        self, collection: str, face_ids: Sequence[str]
    ) -> dict[str, npt.NDArray[np.float32]]:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            return await face_embeddings(conn, cid, face_ids)

    @bounded
    async def apply_cluster(self, collection: str, outcome: ClusterOutcome) -> ClusterWrite:
        async with self._transaction() as conn:
            cid = await self._collection_id(conn, collection)
            await conn.execute("SELECT 1 FROM gallery_collections WHERE id = %s FOR UPDATE", (cid,))
            return await apply_cluster(conn, cid, outcome)
