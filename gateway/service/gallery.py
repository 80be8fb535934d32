"""The face gallery: enrol people, then recognise them (1:N identify, 1:1 verify).

Orchestration only: faces come from the Pipeline (detect + embed), storage and search from
a GalleryStore. Every collection records the recognizer (prepared model sha256) it was
built with; enrolling into it or searching it with another recognizer loaded is refused
(409), because embeddings of different recognizer files are not comparable.

A subject's similarity to a query is its best face's cosine similarity. Logs carry the
collection and counts; subject names only at DEBUG; embeddings never.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from gateway import processing
from gateway.errors import FaceQualityTooLow, InvalidParameter, NoFaceFound, RecognizerMismatch
from gateway.gallery_ports import (
    DEFAULT_EF_SEARCH,
    EMBEDDING_DIM,
    Collection,
    ErasureJob,
    GalleryStore,
    Match,
    Metadata,
    NewFace,
    Subject,
    SubjectPage,
)
from gateway.processing import Detections
from gateway.processing.multiscale import DEFAULT_DET_SIZES_PX
from gateway.service.pipeline import DetectOptions, ImageInput, Pipeline, Timings

log = logging.getLogger(__name__)
# Faces fetched per query before grouping by subject: enough for top_k subjects with up to
# this many faces each ahead of them.
CANDIDATES_PER_SUBJECT = 10
MAX_CANDIDATES = 1000
# The collection metadata key holding its default enrolment gate ("low", "medium", "high").
MIN_QUALITY_KEY = "min_quality"
FaceChoice = Literal["prominent"] | int
SearchObserver = Callable[[str, float], None]


@dataclass(frozen=True)
class EnrolledFace:
    """A face added to a subject: its id and where it was (None for an embedding)."""

    id: str
    bbox: tuple[float, float, float, float] | None
    score: float | None


@dataclass(frozen=True)
class IdentifiedFace:
    """One query face and its best-matching subjects, best first.

    `index` is the face's row in `detections` (None for an embedding query).
    """

    index: int | None
    matches: list[Match]


@dataclass(frozen=True)
class Identification:
    """Identify's answer: the detections of the image (None for embeddings) and each face's matches.

    `quality` grades the detections (None for embeddings), so a caller can ignore poor probes.
    """

    detections: Detections | None
    faces: list[IdentifiedFace]
    quality: processing.FaceQuality | None = None


@dataclass(frozen=True)
class SubjectVerification:
    """The query's prominent face against one subject's best face."""

    similarity: float
    threshold: float
    detections: Detections

    @property
    def match(self) -> bool:
        return self.similarity >= self.threshold


def normalize_embeddings(raw: Sequence[Sequence[float]]) -> npt.NDArray[np.float32]:
    """Client-sent embeddings as L2-normalised float32 (N, EMBEDDING_DIM); 422 when unusable."""
    try:
        with np.errstate(over="ignore"):  # beyond float32: inf, refused below
            matrix = np.asarray(raw, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise InvalidParameter("embeddings are lists of numbers") from exc
    if matrix.ndim != 2 or matrix.shape[1] != EMBEDDING_DIM or len(matrix) == 0:
        raise InvalidParameter(f"each embedding has {EMBEDDING_DIM} numbers")
    # The norm in float64: in float32 the squares of values near 1e19 and above overflow,
    # and an infinite norm turned a valid embedding into a zero vector.
    wide = matrix.astype(np.float64)
    norms = np.linalg.norm(wide, axis=1, keepdims=True)
    if not np.all(np.isfinite(matrix)) or not np.all(np.isfinite(norms) & (norms > 1e-6)):
        raise InvalidParameter("embeddings must be finite and non-zero")
    normed: npt.NDArray[np.float32] = (wide / norms).astype(np.float32)
    return normed


def best_per_subject(matches: Sequence[Match], top_k: int, threshold: float) -> list[Match]:
    """Each subject once with its best face (matches come best first), at or above threshold."""
    seen: set[str] = set()
    out: list[Match] = []
    for match in matches:
        if match.similarity < threshold or match.subject in seen:
            continue
        seen.add(match.subject)
        out.append(match)
        if len(out) == top_k:
            break
    return out


def min_quality_problem(metadata: Metadata) -> str | None:
    """Why a collection's metadata "min_quality" is invalid (None: absent or valid): the one
    check for the API, the service and `facegate gallery import`."""
    if MIN_QUALITY_KEY not in metadata:
        return None
    value = metadata[MIN_QUALITY_KEY]
    if isinstance(value, str) and value in processing.QUALITY_LEVELS:
        return None
    return f"min_quality must be one of {', '.join(processing.QUALITY_LEVELS)}, not {value!r}"


def collection_min_quality(metadata: Metadata) -> str | None:
    """The collection's default enrolment gate: its metadata's "min_quality", if any.

    An invalid stored value (a collection stored before the check) is an InvalidParameter,
    never a gate silently off.
    """
    problem = min_quality_problem(metadata)
    if problem is not None:
        raise InvalidParameter(
            f"the collection's {problem}: its enrolment gate cannot be applied; export it and "
            "import it again with a valid min_quality"
        )
    value = metadata.get(MIN_QUALITY_KEY)
    return str(value) if value is not None else None


def quality_refusal(
    quality: processing.FaceQuality,
    index: int,
    min_quality: str,
    thresholds: processing.QualityThresholds,
) -> str | None:
    """Why face `index` does not meet `min_quality` ("size 20 px < 24, ..."), or None."""
    bounds = thresholds.bounds(min_quality)
    if bounds is None or processing.meets_quality(quality.levels[index], min_quality):
        return None
    size, sharpness, pose = (
        float(quality.size[index]),
        float(quality.sharpness[index]),
        float(quality.pose[index]),
    )
    why = {
        "size": f"size {size:.0f} px < {bounds.min_size_px:g}",
        "sharpness": f"sharpness {sharpness:.1f} < {bounds.min_sharpness:g}",
        "pose": f"pose {pose:.1f} deg > {bounds.max_pose_deg:g}",
    }
    failed = processing.failed_components(size, sharpness, pose, bounds)
    return f"{quality.levels[index]} ({', '.join(why[c] for c in failed)})"


def pick_face(detections: Detections, choice: FaceChoice, label: str) -> int:
    """The row of the face to enrol: the most prominent (row 0) or the given index."""
    if len(detections) == 0:
        raise NoFaceFound(f"no face found in {label}: send a photo with a visible face")
    index = 0 if choice == "prominent" else choice
    if index >= len(detections):
        raise InvalidParameter(
            f"face={index} but {label} has {len(detections)} face(s) (indexes from 0, by score)"
        )
    return index


class Gallery:
    """Collections of subjects with enrolled faces, over a store and the face pipeline."""

    def __init__(
        self,
        store: GalleryStore,
        pipeline: Pipeline,
        recognizer_sha256: Callable[[], Awaitable[str]],
        *,
        ef_search: int = DEFAULT_EF_SEARCH,
        on_search: SearchObserver | None = None,
    ) -> None:
        self._store = store
        self._ef_search = ef_search
        self._pipeline = pipeline
        self._recognizer_sha256 = recognizer_sha256
        self._on_search = on_search

    # Collections and subjects
    async def create_collection(self, name: str, metadata: Metadata) -> Collection:
        problem = min_quality_problem(metadata)
        if problem is not None:
            raise InvalidParameter(problem)
        sha = await self._recognizer_sha256()
        collection = await self._store.create_collection(name, metadata, sha)
        log.info("gallery: created collection %s", name)
        return collection

    async def list_collections(self) -> list[Collection]:
        return await self._store.list_collections()

    async def get_collection(self, name: str) -> Collection:
        return await self._store.get_collection(name)

    async def delete_collection(self, name: str) -> ErasureJob:
        """Erased within the call (job.done), or invisible now and erased by the job."""
        job = await self._store.delete_collection(name)
        log.info(
            "gallery: deleted collection %s (%s)", name, "done" if job.done else f"job {job.id}"
        )
        return job

    async def put_subject(self, collection: str, subject: str, metadata: Metadata | None) -> bool:
        created = await self._store.put_subject(collection, subject, metadata)
        log.debug(
            "gallery: %s subject %s in %s", "created" if created else "updated", subject, collection
        )
        return created

    async def list_subjects(self, collection: str, limit: int, after: str | None) -> SubjectPage:
        return await self._store.list_subjects(collection, limit, after)

    async def get_subject(self, collection: str, subject: str) -> Subject:
        return await self._store.get_subject(collection, subject)

    async def delete_subject(self, collection: str, subject: str) -> ErasureJob:
        """Erased within the call (job.done), or invisible now and erased by the job."""
        job = await self._store.delete_subject(collection, subject)
        if job.done:
            log.info(
                "gallery: erased a subject and %s face(s) from %s", job.faces_removed, collection
            )
        else:
            log.info("gallery: erasing a subject of %s (job %s)", collection, job.id)
        log.debug("gallery: erased subject %s from %s", subject, collection)
        return job

    async def get_job(self, job_id: str) -> ErasureJob:
        return await self._store.get_job(job_id)

    async def delete_face(self, collection: str, face_id: str) -> None:
        await self._store.delete_face(collection, face_id)
        log.info("gallery: erased face %s from %s", face_id, collection)

    # The recognizer guard
    async def check_recognizer(self, collection: str) -> None:
        """409 unless the loaded recognizer is the one the collection was built with."""
        stored = await self._store.collection_recognizer(collection)
        loaded = await self._recognizer_sha256()
        if stored != loaded:
            raise RecognizerMismatch(
                f"collection '{collection}' was built with recognizer sha256 {stored[:12]}… "
                f"but {loaded[:12]}… is loaded: its embeddings are not comparable. Serve the "
                "original recognizer, or export the subjects' photos and re-enrol them into a "
                "new collection"
            )

    # Enrolment
    async def enroll_images(
        self,
        collection: str,
        enrolments: Sequence[tuple[str | None, Sequence[ImageInput]]],
        choice: FaceChoice,
        detect_threshold: float,
        det_sizes_px: tuple[int, ...] = DEFAULT_DET_SIZES_PX,
        min_quality: str | None = None,
    ) -> list[list[EnrolledFace]]:
        """Enrol one face per image, per (subject, images); all or nothing in one transaction.

        A None subject enrols the faces unassigned (for clustering, or assigning later).

        `min_quality` ("low", "medium", "high"; None: the collection's metadata "min_quality",
        if any) refuses the whole call with FaceQualityTooLow when a chosen face grades below
        it, naming the image and the components that fall short.
        """
        await self.check_recognizer(collection)
        if min_quality is None:
            min_quality = collection_min_quality((await self.get_collection(collection)).metadata)
        images = [image for _, batch in enrolments for image in batch]
        max_faces = 1 if choice == "prominent" else 0
        options = DetectOptions(
            threshold=detect_threshold, max_faces=max_faces, det_sizes_px=det_sizes_px
        )
        decoded, found = await self._pipeline.find_faces(images, options, Timings())
        chosen = [
            dets.take(np.array([pick_face(dets, choice, f"image {i}")]))
            for i, dets in enumerate(found)
        ]
        embeddings, norms = await self._pipeline.embed_faces(decoded, chosen, Timings())
        if min_quality is not None:
            await self._gate(decoded, chosen, norms, min_quality)
        faces = []
        for dets, emb in zip(chosen, embeddings, strict=True):
            assert emb is not None
            box = tuple(float(v) for v in dets.boxes[0])
            faces.append(NewFace(emb[0], (box[0], box[1], box[2], box[3]), float(dets.scores[0])))
        return await self._add(collection, enrolments, faces)

    async def _gate(
        self,
        decoded: Sequence[npt.NDArray[np.uint8]],
        chosen: Sequence[Detections],
        norms: Sequence[npt.NDArray[np.float32] | None],
        min_quality: str,
    ) -> None:
        # Pose where 1k3d68 is served; its failure fails the enrolment rather than letting a
        # face through ungraded.
        graded = await self._pipeline.assess_quality(
            decoded, chosen, norms, Timings(), strict_pose=True
        )
        refusals = [
            f"image {i}: {refusal}"
            for i, quality in enumerate(graded)
            if (refusal := quality_refusal(quality, 0, min_quality, self._pipeline.thresholds))
        ]
        if refusals:
            raise FaceQualityTooLow(
                f"face quality below min_quality={min_quality}: {'; '.join(refusals)}. Enrol a "
                "larger, sharper, more frontal photo, or lower min_quality (docs/QUALITY.md)"
            )

    async def enroll_embeddings(
        self, collection: str, subject: str | None, embeddings: npt.NDArray[np.float32]
    ) -> list[EnrolledFace]:
        """Enrol client-computed embeddings (L2-normalised float32 (N, EMBEDDING_DIM)).

        A collection with an enrolment gate (metadata "min_quality") refuses them: they carry
        no quality to check (InvalidParameter, 422).
        """
        await self.check_recognizer(collection)
        gate = collection_min_quality((await self.get_collection(collection)).metadata)
        if gate is not None:
            raise InvalidParameter(
                f"collection '{collection}' gates enrolment at min_quality={gate} and "
                "embeddings carry no quality to check: enrol the photos instead, or use a "
                "collection without min_quality (docs/QUALITY.md)"
            )
        faces = [NewFace(row) for row in embeddings]
        (added,) = await self._add(collection, [(subject, faces)], faces)
        return added

    async def _add(
        self,
        collection: str,
        enrolments: Sequence[tuple[str | None, Sequence[object]]],
        faces: Sequence[NewFace],
    ) -> list[list[EnrolledFace]]:
        grouped: list[tuple[str | None, list[NewFace]]] = []
        position = 0
        for subject, batch in enrolments:
            grouped.append((subject, list(faces[position : position + len(batch)])))
            position += len(batch)
        ids = await self._store.add_faces(collection, grouped)
        log.info(
            "gallery: enrolled %d face(s) for %d subject(s) in %s",
            len(faces),
            len(grouped),
            collection,
        )
        log.debug("gallery: enrolled subjects %s in %s", [s for s, _ in grouped], collection)
        return [
            [EnrolledFace(i, f.bbox, f.score) for i, f in zip(face_ids, batch, strict=True)]
            for face_ids, (_, batch) in zip(ids, grouped, strict=True)
        ]

    # Recognition
    async def _search(
        self, collection: str, queries: npt.NDArray[np.float32], top_k: int, threshold: float
    ) -> list[list[Match]]:
        candidates = min(MAX_CANDIDATES, top_k * CANDIDATES_PER_SUBJECT)
        started = time.perf_counter()
        found = await self._store.search(collection, queries, candidates, self._ef_search)
        if self._on_search is not None:
            self._on_search(collection, time.perf_counter() - started)
        return [best_per_subject(matches, top_k, threshold) for matches in found]

    async def identify_image(
        self,
        collection: str,
        image: ImageInput,
        *,
        top_k: int,
        threshold: float,
        max_faces: int,
        detect_threshold: float,
        det_sizes_px: tuple[int, ...] = DEFAULT_DET_SIZES_PX,
        pose: bool = False,
    ) -> Identification:
        """Every detected face (up to max_faces, by prominence) with its top_k subjects and
        quality: size, sharpness and norm always; pose only when `pose` (one 1k3d68 inference
        per face, where served; unknown when not served or failing)."""
        options = DetectOptions(
            threshold=detect_threshold,
            max_faces=max_faces,
            embed=True,
            det_sizes_px=det_sizes_px,
            quality=True,
            quality_pose=pose,
        )
        # The guard's database round trip overlaps detection instead of preceding it; its
        # error (404, 409) still wins over the image's, as when it ran first, and stops the
        # detection, so an unknown collection costs no detector work.
        detecting = asyncio.ensure_future(self._pipeline.detect([image], options, Timings()))
        try:
            await self.check_recognizer(collection)
        except BaseException:
            detecting.cancel()
            detecting.add_done_callback(_collect)
            raise
        detected = await detecting
        (faces,) = detected
        if faces.embeddings is None or len(faces.detections) == 0:
            return Identification(faces.detections, [])
        results = await self._search(collection, faces.embeddings, top_k, threshold)
        log.info("gallery: identify in %s: %d face(s)", collection, len(results))
        return Identification(
            faces.detections, [IdentifiedFace(i, m) for i, m in enumerate(results)], faces.quality
        )

    async def identify_embeddings(
        self,
        collection: str,
        embeddings: npt.NDArray[np.float32],
        *,
        top_k: int,
        threshold: float,
    ) -> Identification:
        """Each given embedding (L2-normalised (N, EMBEDDING_DIM)) with its top_k subjects."""
        await self.check_recognizer(collection)
        results = await self._search(collection, embeddings, top_k, threshold)
        return Identification(None, [IdentifiedFace(None, m) for m in results])

    async def verify(
        self,
        collection: str,
        subject: str,
        image: ImageInput,
        *,
        threshold: float,
        detect_threshold: float,
        det_sizes_px: tuple[int, ...] = DEFAULT_DET_SIZES_PX,
    ) -> SubjectVerification:
        """The image's most prominent face against the subject's best face."""
        await self.check_recognizer(collection)
        known = await self._store.get_subject(collection, subject)
        if known.faces == 0:
            raise InvalidParameter(
                f"subject '{subject}' has no faces yet: enrol one with POST .../faces"
            )
        options = DetectOptions(
            threshold=detect_threshold, max_faces=1, embed=True, det_sizes_px=det_sizes_px
        )
        (faces,) = await self._pipeline.detect([image], options, Timings())
        if faces.embeddings is None or len(faces.detections) == 0:
            raise NoFaceFound("no face found in the image: send a photo with a visible face")
        similarity = await self._store.subject_similarity(collection, subject, faces.embeddings[0])
        return SubjectVerification(similarity, threshold, faces.detections)


def _collect(task: asyncio.Future[Any]) -> None:
    """Retrieve a stopped task's outcome, so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()
