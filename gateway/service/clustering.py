"""Clustering a collection's unassigned faces into people, incrementally, by its own index.

A run takes the faces no run has seen yet ("new"), a step of STEP_FACES at a time. Each new
face's nearest faces come from the collection's HNSW index; the new faces, their neighbours
within max_distance (assigned ones carry their subject as a fixed label) and the pairs found
are grouped by gateway/processing/grouping.py. A group holding a subject's faces gives that
subject its unassigned members; a group of unassigned faces only, of at least min_faces,
becomes a new subject (unknown-0001, ...); everything else stays unassigned. Assigned faces
never move (the store re-checks that in the write). Unassigned faces seen by an earlier run
are not taken again, but join a new group when new faces come close to them: that is how
a library is clustered as it grows, not from scratch.

No all-pairs matrix over the collection: only neighbour lists, and dense distances inside
a candidate group (processing/grouping.py bounds those).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from gateway.gallery_ports import (
    DEFAULT_EF_SEARCH,
    ClusterOutcome,
    ClusterStore,
    FaceInfo,
    FacePage,
    Neighbour,
    StoredFace,
)
from gateway.processing.grouping import UNLABELLED, NeighbourPairs, group_faces
from gateway.service.grouping import GroupParams

log = logging.getLogger(__name__)
# New faces per step: one neighbour query each, one grouping, one write transaction.
STEP_FACES = 1000
# Faces fetched per new face: a person's faces beyond this many nearer ones are not needed
# to place the new face (its group links to them through its neighbours).
NEIGHBOURS_PER_FACE = 32
# Faces assigned per write call: each is a new row version PostgreSQL also inserts into the
# HNSW index (~1-3 ms each), and a call must stay within the gallery's per-call bound
# (FACEGATE_GALLERY_STATEMENT_TIMEOUT_S, 10 s by default).
WRITE_FACES = 1000
# A subject's labelled faces kept per step (its nearest to the new faces): its average
# distance to a group is taken over these, and the refinement's matrix stays small.
LABELLED_PER_SUBJECT = 64


@dataclass
class ClusterResult:
    """A run's outcome: subjects created, faces assigned, unassigned faces left, and new
    faces not reached within the run's time (call again while pending > 0)."""

    subjects_created: list[str] = field(default_factory=list)
    assigned: int = 0
    unassigned: int = 0
    pending: int = 0
    # Seconds per phase over the run's steps: read, neighbours, embeddings, group, write.
    seconds: dict[str, float] = field(default_factory=dict)

    def timed(self, phase: str, started: float) -> float:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - started
        return now


@dataclass
class _Points:
    """The faces of one step: new faces first, then neighbours, with pairs between them."""

    ids: list[str] = field(default_factory=list)
    subjects: list[str | None] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    first: list[int] = field(default_factory=list)
    second: list[int] = field(default_factory=list)
    distances: list[float] = field(default_factory=list)

    def add(self, face_id: str, subject: str | None) -> int:
        at = self.index.get(face_id)
        if at is None:
            at = self.index[face_id] = len(self.ids)
            self.ids.append(face_id)
            self.subjects.append(subject)
        return at


def kept_neighbours(
    new: list[StoredFace], found: list[list[Neighbour]], max_distance: float
) -> set[str]:
    """Ids of the neighbours a step groups with its new faces: every unassigned one within
    max_distance, and per subject its LABELLED_PER_SUBJECT nearest to any new face."""
    own = {face.id for face in new}
    nearest: dict[str, Neighbour] = {}
    for rows in found:
        for face in rows:
            if face.id in own or face.distance > max_distance:
                continue
            if face.id not in nearest or face.distance < nearest[face.id].distance:
                nearest[face.id] = face
    kept = {fid for fid, face in nearest.items() if face.subject is None}
    by_subject: dict[str, list[tuple[float, str]]] = {}
    for fid, face in nearest.items():
        if face.subject is not None:
            by_subject.setdefault(face.subject, []).append((face.distance, fid))
    for ranked in by_subject.values():
        kept.update(fid for _, fid in sorted(ranked)[:LABELLED_PER_SUBJECT])
    return kept


def plan_step(
    new: list[StoredFace],
    found: list[list[Neighbour]],
    embeddings: dict[str, npt.NDArray[np.float32]],
    params: GroupParams,
) -> ClusterOutcome:
    """Group one step's new faces with their kept neighbours (found[i]: new[i]'s, nearest
    first; `embeddings` those of the kept neighbours) and say what to write. Pure."""
    points = _Points()
    vectors = [face.embedding for face in new]
    for query in new:
        points.add(query.id, None)
    for query, rows in zip(new, found, strict=True):
        a = points.index[query.id]
        for near in rows:
            if near.id == query.id or near.distance > params.max_distance:
                continue
            if near.id not in points.index:
                if near.id not in embeddings:
                    continue  # not kept (or erased meanwhile)
                points.add(near.id, near.subject)
                vectors.append(embeddings[near.id])
            b = points.index[near.id]
            points.first.append(min(a, b))
            points.second.append(max(a, b))
            points.distances.append(near.distance)
    names = sorted({s for s in points.subjects if s is not None})
    number = {name: i for i, name in enumerate(names)}
    labels = np.array(
        [number[s] if s is not None else UNLABELLED for s in points.subjects], dtype=np.intp
    )
    matrix: npt.NDArray[np.float32] = np.stack(vectors).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    grouping = group_faces(
        matrix, _unique_pairs(points), params.max_distance, params.min_faces, labels
    )
    joins: dict[str, list[str]] = {}
    new_groups: list[list[str]] = []
    for members in grouping.members():
        label = int(grouping.labels[members[0]])
        unassigned = [points.ids[i] for i in members.tolist() if labels[i] == UNLABELLED]
        if not unassigned:
            continue
        if label == UNLABELLED:
            new_groups.append(unassigned)
        else:
            joins.setdefault(names[label], []).extend(unassigned)
    return ClusterOutcome(joins, new_groups, [face.id for face in new], params.min_faces)


@dataclass(frozen=True)
class WritePart:
    """One write call, and for a new group too large for one call, the rest of its faces
    in parts that join the name the call gives it."""

    outcome: ClusterOutcome
    rest: list[list[str]] = field(default_factory=list)


def _chunks(ids: Sequence[str], size: int) -> list[list[str]]:
    return [list(ids[start : start + size]) for start in range(0, len(ids), size)]


def split_outcome(outcome: ClusterOutcome, max_faces: int) -> list[WritePart]:
    """The step's writes in calls of at most `max_faces` rows each (every row written is
    also an HNSW index insert: a call's cost grows with it, and its bound does not): joins
    in chunks, small groups whole, a larger group created from its first `max_faces` faces
    with the rest joining it. The seen marks come last, in parts of their own, so a failure
    on the way leaves the step's faces new for the next run (those already assigned are
    not new any more)."""
    parts: list[WritePart] = []
    joins: dict[str, list[str]] = {}
    groups: list[list[str]] = []
    size = 0

    def flush() -> None:
        nonlocal joins, groups, size
        if joins or groups:
            parts.append(WritePart(ClusterOutcome(joins, groups, [], outcome.min_faces)))
        joins, groups, size = {}, [], 0

    items: list[tuple[str | None, list[str]]] = [
        *((s, chunk) for s, ids in outcome.joins.items() for chunk in _chunks(ids, max_faces)),
        *((None, list(ids)) for ids in outcome.new_groups),
    ]
    for subject, ids in items:
        if size and size + min(len(ids), max_faces) > max_faces:
            flush()
        if subject is not None:
            joins.setdefault(subject, []).extend(ids)
        elif len(ids) <= max_faces:
            groups.append(ids)
        else:
            first = ClusterOutcome({}, [ids[:max_faces]], [], outcome.min_faces)
            parts.append(WritePart(first, _chunks(ids[max_faces:], max_faces)))
            continue
        size += len(ids)
    flush()
    parts += [WritePart(ClusterOutcome({}, [], seen)) for seen in _chunks(outcome.seen, max_faces)]
    return parts


def _unique_pairs(points: _Points) -> NeighbourPairs:
    if not points.first:
        empty = np.zeros(0, dtype=np.intp)
        return NeighbourPairs(empty, empty, np.zeros(0))
    pairs = np.stack([np.array(points.first), np.array(points.second)], axis=1)
    unique, where = np.unique(pairs, axis=0, return_index=True)
    return NeighbourPairs(
        unique[:, 0].astype(np.intp),
        unique[:, 1].astype(np.intp),
        np.asarray(points.distances, dtype=np.float64)[where],
    )


class Clustering:
    """Cluster runs over a ClusterStore (the gallery's PostgreSQL store)."""

    def __init__(self, store: ClusterStore, *, ef_search: int = DEFAULT_EF_SEARCH) -> None:
        self._store = store
        self._ef_search = ef_search

    async def list_faces(
        self,
        collection: str,
        subject: str | None,
        only_unassigned: bool,
        limit: int,
        after: str | None,
    ) -> FacePage:
        return await self._store.list_faces(collection, subject, only_unassigned, limit, after)

    async def set_face_subject(
        self, collection: str, face_id: str, subject: str | None
    ) -> FaceInfo:
        """Assign a face by hand (the subject is created if absent) or unassign it."""
        face = await self._store.set_face_subject(collection, face_id, subject)
        log.info(
            "gallery: face %s in %s %s",
            face_id,
            collection,
            "assigned" if subject else "unassigned",
        )
        return face

    async def merge_subject(self, collection: str, source: str, into: str) -> int:
        moved = await self._store.merge_subject(collection, source, into)
        log.info("gallery: merged a subject's %d face(s) into another in %s", moved, collection)
        return moved

    async def run(
        self,
        collection: str,
        params: GroupParams,
        budget_s: float,
        on_step: Callable[[ClusterResult], None] | None = None,
    ) -> ClusterResult:
        """Cluster the collection's new faces, step by step, until none are left or a step
        would start after `budget_s` seconds; `on_step` sees the running totals."""
        started = time.monotonic()
        result = ClusterResult()
        steps = 0
        while True:
            mark = time.perf_counter()
            new = await self._store.unclustered_faces(collection, STEP_FACES)
            mark = result.timed("read", mark)
            if not new:
                break
            queries = np.stack([face.embedding for face in new]).astype(np.float32)
            found = await self._store.neighbours(
                collection, queries, NEIGHBOURS_PER_FACE + 1, self._ef_search
            )
            mark = result.timed("neighbours", mark)
            kept = kept_neighbours(new, found, params.max_distance)
            embeddings = await self._store.face_embeddings(collection, sorted(kept))
            mark = result.timed("embeddings", mark)
            outcome = await asyncio.to_thread(plan_step, new, found, embeddings, params)
            mark = result.timed("group", mark)
            for part in split_outcome(outcome, WRITE_FACES):
                written = await self._store.apply_cluster(collection, part.outcome)
                result.subjects_created += written.subjects_created
                result.assigned += written.assigned
                for faces in part.rest if written.subjects_created else []:
                    joined = ClusterOutcome({written.subjects_created[0]: faces}, [], [])
                    result.assigned += (
                        await self._store.apply_cluster(collection, joined)
                    ).assigned
            result.timed("write", mark)
            steps += 1
            if on_step is not None:
                on_step(result)
            if time.monotonic() - started > budget_s:
                break
        result.pending, result.unassigned = await self._store.count_unclustered(collection)
        log.info(
            "cluster %s: %d step(s), %d face(s) assigned, %d new subject(s), %d pending",
            collection,
            steps,
            result.assigned,
            len(result.subjects_created),
            result.pending,
        )
        return result
