"""What the gallery service needs from storage: the GalleryStore protocol and its data types.

The service (gateway/service/gallery.py) talks to this protocol; gateway/storage/ implements
it on PostgreSQL + pgvector and is the only place that imports psycopg. Embeddings cross
this boundary as float32 arrays of EMBEDDING_DIM, L2-normalised by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

# ArcFace's embedding width (spec.RECOGNIZER_OUTPUT); the database column has this size.
EMBEDDING_DIM = 512
# HNSW search breadth of identify unless the gateway's settings say otherwise. pgvector's own
# default is 40. At 1M faces 200 finds the exact top-1 for 0.990 of queries at a p50 of 6.8 ms,
# 100 for 0.983 at 4.0 ms (docs/BENCHMARKS.md, "Gallery: many collections").
DEFAULT_EF_SEARCH = 200
Metadata = Mapping[str, Any]


@dataclass(frozen=True)
class Collection:
    """A named set of subjects, bound to the recognizer (prepared model sha256) it was built with."""

    name: str
    metadata: Metadata
    recognizer_sha256: str
    created_at: str
    subjects: int = 0
    faces: int = 0


@dataclass(frozen=True)
class Subject:
    """A person in a collection; face_ids in enrolment order (empty in list pages)."""

    name: str
    metadata: Metadata
    faces: int
    face_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubjectPage:
    """One page of subjects in name order; `next_after` is the last name when more follow."""

    subjects: list[Subject]
    next_after: str | None


@dataclass(frozen=True)
class NewFace:
    """A face to enrol: its L2-normalised float32 (EMBEDDING_DIM,) embedding and where it was.

    `bbox` is xyxy in original-image pixels and `score` the detector's; both None for a face
    enrolled from an embedding.
    """

    embedding: npt.NDArray[np.float32]
    bbox: tuple[float, float, float, float] | None = None
    score: float | None = None


@dataclass(frozen=True)
class Match:
    """One search hit: a face of a subject and its cosine similarity to the query."""

    subject: str
    similarity: float
    face_id: str


@dataclass(frozen=True)
class ExportedFace:
    """A stored face for export: everything needed to import it elsewhere (subject None:
    an unassigned face)."""

    subject: str | None
    face_id: str
    embedding: npt.NDArray[np.float32]
    bbox: tuple[float, ...] | None = None
    score: float | None = None
    subject_metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True)
class FaceInfo:
    """A stored face: its id, its subject (None: unassigned), when it was enrolled (ISO)."""

    id: str
    subject: str | None
    created_at: str


@dataclass(frozen=True)
class FacePage:
    """One page of faces in enrolment order; `next_after` is an opaque position to go on
    from, set when more follow."""

    faces: list[FaceInfo]
    next_after: str | None


@dataclass(frozen=True)
class StoredFace:
    """A stored face for clustering: id, subject (None: unassigned), float32 (512,) unit
    embedding."""

    id: str
    subject: str | None
    embedding: npt.NDArray[np.float32]


@dataclass(frozen=True)
class Neighbour:
    """A face found near a query: its id, subject (None: unassigned), cosine distance."""

    id: str
    subject: str | None
    distance: float


@dataclass(frozen=True)
class ClusterOutcome:
    """What a cluster step asks the store to write: unassigned faces joining existing
    subjects (subject -> face ids), new groups of unassigned faces (each becomes a subject
    with a server-made name), and every face the step looked at as a new face. A new group
    with fewer than min_faces faces still unassigned when written is left out (another run
    assigned the rest meanwhile)."""

    joins: Mapping[str, Sequence[str]]
    new_groups: Sequence[Sequence[str]]
    seen: Sequence[str]
    min_faces: int = 1


@dataclass(frozen=True)
class ClusterWrite:
    """What the store wrote: subjects it created (in the order of new_groups it could
    still apply) and how many faces it assigned."""

    subjects_created: list[str]
    assigned: int


class ClusterStore(Protocol):
    """Unassigned faces and the queries clustering needs (same errors as GalleryStore)."""

    async def list_faces(
        self,
        collection: str,
        subject: str | None,
        only_unassigned: bool,
        limit: int,
        after: str | None,
    ) -> FacePage:
        """Faces in enrolment order: all, a subject's (`subject`), or unassigned ones."""
        ...

    async def set_face_subject(
        self, collection: str, face_id: str, subject: str | None
    ) -> FaceInfo:
        """Assign a face to a subject (created if absent) or unassign it (None)."""
        ...

    async def merge_subject(self, collection: str, source: str, into: str) -> int:
        """Move every face of `source` to `into` (created if absent), then erase `source`;
        returns how many faces moved."""
        ...

    async def unclustered_faces(self, collection: str, limit: int) -> list[StoredFace]:
        """Up to `limit` unassigned faces no cluster run has seen, oldest first."""
        ...

    async def count_unclustered(self, collection: str) -> tuple[int, int]:
        """(unassigned faces not seen by a cluster run, all unassigned faces)."""
        ...

    async def neighbours(
        self, collection: str, queries: npt.NDArray[np.float32], count: int, ef_search: int
    ) -> list[list[Neighbour]]:
        """Up to `count` nearest faces per query row (M, 512) by the collection's index,
        nearest first (ids, subjects and distances: no embeddings, which weigh ~30x more)."""
        ...

    async def face_embeddings(
        self, collection: str, face_ids: Sequence[str]
    ) -> dict[str, npt.NDArray[np.float32]]:
        """The embeddings of these faces (ids that are gone are left out)."""
        ...

    async def apply_cluster(self, collection: str, outcome: ClusterOutcome) -> ClusterWrite:
        """Write a cluster step in one transaction; faces assigned meanwhile stay put."""
        ...


@dataclass(frozen=True)
class ErasureJob:
    """An erasure of a collection or a subject: done within the call, or still running.

    `id` is empty for an erasure that finished within its call without a job. Counts are of
    what was removed so far; faces_removed is None for a collection (its faces go at once,
    with their partition, uncounted).
    """

    id: str
    kind: str
    collection: str
    subject: str | None
    state: str
    subjects_removed: int
    faces_removed: int | None
    created_at: str
    finished_at: str | None = None

    @property
    def done(self) -> bool:
        return self.state == "done"


class GalleryStore(Protocol):
    """Durable storage and nearest-neighbour search of enrolled faces.

    Unknown collections/subjects/faces raise errors.NotFound; a duplicate collection
    errors.Conflict; an unreachable database errors.GalleryUnavailable.
    """

    async def create_collection(
        self, name: str, metadata: Metadata, recognizer_sha256: str
    ) -> Collection: ...

    async def list_collections(self) -> list[Collection]: ...

    async def get_collection(self, name: str) -> Collection:
        """The collection with its subject and face counts."""
        ...

    async def collection_recognizer(self, name: str) -> str:
        """The recognizer sha256 a collection was built with (cheaper than get_collection)."""
        ...

    async def delete_collection(self, name: str) -> ErasureJob:
        """Make the collection invisible at once and erase it: within the call, or as a job."""
        ...

    async def put_subject(self, collection: str, subject: str, metadata: Metadata | None) -> bool:
        """Create the subject (True) or replace its metadata when given (False)."""
        ...

    async def list_subjects(
        self, collection: str, limit: int, after: str | None
    ) -> SubjectPage: ...

    async def get_subject(self, collection: str, subject: str) -> Subject: ...

    async def delete_subject(self, collection: str, subject: str) -> ErasureJob:
        """Erase the subject and all its faces: within the call, or invisible at once and a job."""
        ...

    async def get_job(self, job_id: str) -> ErasureJob:
        """An erasure job by id (NotFound for an unknown id)."""
        ...

    async def add_faces(
        self, collection: str, enrolments: Sequence[tuple[str | None, Sequence[NewFace]]]
    ) -> list[list[str]]:
        """Add faces per (subject, faces) in one transaction, creating absent subjects;
        a None subject adds unassigned faces.

        Returns the new face ids per entry, in order.
        """
        ...

    async def delete_face(self, collection: str, face_id: str) -> None: ...

    async def search(
        self,
        collection: str,
        queries: npt.NDArray[np.float32],
        candidates: int,
        ef_search: int = ...,
    ) -> list[list[Match]]:
        """The `candidates` nearest faces per query row (M, EMBEDDING_DIM), best first.

        `ef_search` is the index's search breadth: larger finds more true neighbours, slower.
        """
        ...

    async def subject_similarity(
        self, collection: str, subject: str, query: npt.NDArray[np.float32]
    ) -> float:
        """Exact cosine similarity of the query (EMBEDDING_DIM,) to the subject's best face."""
        ...

    async def export_faces(
        self, collection: str, after: str | None, limit: int
    ) -> list[ExportedFace]:
        """Up to `limit` faces with their embeddings, in face id order after the face `after`."""
        ...

    async def close(self) -> None: ...
