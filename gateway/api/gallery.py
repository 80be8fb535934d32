"""The gallery routes: /v1/collections/... (enrol, identify, verify, erase)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from gateway.api.audit import AuditedRoute, note_audit
from gateway.api.deps import SettingsDep, require_enroll, require_user
from gateway.api.docs import body_doc
from gateway.api.faces import ERRORS, DetSizes, MaxFaces, face_out, quality_out
from gateway.api.uploads import read_body, read_images, request_limit_bytes
from gateway.config import Settings
from gateway.errors import GalleryUnavailable, InvalidInput, InvalidParameter, PayloadTooLarge
from gateway.gallery_ports import Collection, ErasureJob, Subject
from gateway.gallery_schemas import (
    COLLECTION_NAME_PATTERN,
    CollectionIn,
    CollectionList,
    CollectionOut,
    EnrolledFaceOut,
    EnrolResponse,
    ErasureJobOut,
    FacesIn,
    GalleryVerifyIn,
    GalleryVerifyResponse,
    IdentifiedFaceOut,
    IdentifyIn,
    IdentifyResponse,
    MatchOut,
    SubjectIn,
    SubjectOut,
    SubjectPageOut,
)
from gateway.service.clustering import Clustering
from gateway.service.gallery import (
    FaceChoice,
    Gallery,
    Identification,
    normalize_embeddings,
)
from gateway.service.options import resolve_det_sizes
from gateway.service.pipeline import ImageFaces
from gateway.supervision import POSTGRES

M = TypeVar("M", bound=BaseModel)

GALLERY_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    403: {"description": "the key lacks the scope (enroll for changes)"},
    404: {"description": "unknown collection, subject or face"},
    409: {"description": "duplicate collection, or a collection built with another recognizer"},
    503: {"description": "Triton or the gallery database unavailable"},
}


def get_gallery(request: Request) -> Gallery:
    # While `facegate serve` restarts its PostgreSQL: 503 at once, not a wait on the pool.
    request.app.state.servers.check_up(POSTGRES, "the gallery database", GalleryUnavailable)
    gallery: Gallery | None = getattr(request.app.state, "gallery", None)
    if gallery is None:
        reason = getattr(request.app.state, "gallery_reason", "")
        raise GalleryUnavailable(
            reason
            or "no gallery database is configured: set FACEGATE_GALLERY_URL, or run `facegate serve`",
            retry_after_s=5,
        )
    return gallery


GalleryDep = Annotated[Gallery, Depends(get_gallery)]


def get_clustering(request: Request) -> Clustering:
    """Unassigned faces and cluster runs: up with the gallery (same checks, same store)."""
    get_gallery(request)
    clustering: Clustering = request.app.state.clustering
    return clustering


ClusteringDep = Annotated[Clustering, Depends(get_clustering)]
CollectionName = Annotated[
    str, Path(pattern=COLLECTION_NAME_PATTERN, description="letters, digits, _ . -")
]
SubjectName = Annotated[str, Path(min_length=1, max_length=256)]
TopK = Annotated[int, Query(ge=1, le=100, description="subjects per face")]
MinQuality = Annotated[
    Literal["low", "medium", "high"] | None,
    Query(
        description="refuse (422 face_quality_too_low, naming the failed components) a face "
        "whose quality for recognition is below this; default: the collection's metadata "
        "'min_quality', else no gate (docs/QUALITY.md)"
    ),
]
MatchThreshold = Annotated[
    float | None,
    Query(ge=-1.0, le=1.0, description="cosine similarity a match needs (default 0.3)"),
]

router = APIRouter(
    prefix="/v1", tags=["gallery"], responses=GALLERY_ERRORS, route_class=AuditedRoute
)
read = [Depends(require_user)]
change = [Depends(require_enroll)]


def _collection_out(c: Collection) -> CollectionOut:
    return CollectionOut(
        name=c.name,
        metadata=dict(c.metadata),
        recognizer_sha256=c.recognizer_sha256,
        created_at=c.created_at,
        subjects=c.subjects,
        faces=c.faces,
    )


def _subject_out(s: Subject, with_faces: bool) -> SubjectOut:
    return SubjectOut(
        subject=s.name,
        metadata=dict(s.metadata),
        faces=s.faces,
        face_ids=list(s.face_ids) if with_faces else None,
    )


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() == (
        "application/json"
    )


def _parse(body: bytes, model: type[M]) -> M:
    try:
        return model.model_validate(json.loads(body))
    except (ValueError, ValidationError, RecursionError) as exc:
        raise InvalidParameter(f"invalid JSON body: {str(exc)[:500]}") from exc


async def _read_json(request: Request, settings: Settings, model: type[M], images: int) -> M:
    limit = request_limit_bytes({"image": images > 1}, settings.max_image_bytes, images)
    body = await read_body(request, limit)
    # Parsing megabytes of JSON is CPU work: keep it off the event loop.
    return await asyncio.to_thread(_parse, body, model)


def _b64_image(value: str, settings: Settings) -> bytes:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("'image' is not valid base64") from exc
    if not data:
        raise InvalidInput("'image' is empty: send the image file's bytes")
    if len(data) > settings.max_image_bytes:
        raise PayloadTooLarge(
            f"an image is {len(data)} bytes; the limit is {settings.max_image_bytes} per image"
        )
    return data


async def _one_image(
    request: Request, settings: Settings, model: type[M]
) -> tuple[bytes | None, M | None]:
    """The request's image (multipart, or base64 in a JSON `model`) and the JSON body if any."""
    if _is_json(request):
        body = await _read_json(request, settings, model, 1)
        encoded = getattr(body, "image", None)
        return (_b64_image(encoded, settings) if encoded is not None else None), body
    return (await read_images(request, settings, {"image": False}, None))["image"][0], None


def _face_choice(face: str) -> FaceChoice:
    if face == "prominent":
        return "prominent"
    if face.isascii() and face.isdigit() and len(face) < 6:
        return int(face)
    raise InvalidParameter("face is 'prominent' or a face index (0 = highest score)")


def _identified(result: Identification, *, landmarks: bool) -> IdentifyResponse:
    faces = []
    for face in result.faces:
        matches = [
            MatchOut(subject=m.subject, similarity=round(m.similarity, 6), face_id=m.face_id)
            for m in face.matches
        ]
        out = IdentifiedFaceOut(matches=matches)
        if face.index is not None and result.detections is not None:
            dets = result.detections
            out.bbox = [round(float(v), 3) for v in dets.boxes[face.index]]
            out.score = round(float(dets.scores[face.index]), 6)
            if landmarks:
                out.landmarks = [
                    [round(float(x), 3), round(float(y), 3)] for x, y in dets.kps[face.index]
                ]
            if result.quality is not None:
                out.quality = quality_out(result.quality, face.index)
        faces.append(out)
    return IdentifyResponse(faces=faces)


@router.post("/collections", status_code=201, dependencies=change, response_model=CollectionOut)
async def create_collection(
    request: Request, body: CollectionIn, gallery: GalleryDep
) -> CollectionOut:
    """A new, empty collection bound to the recognizer loaded now."""
    note_audit(request, collection=body.name)
    return _collection_out(await gallery.create_collection(body.name, body.metadata))


@router.get("/collections", dependencies=read, response_model=CollectionList)
async def list_collections(gallery: GalleryDep) -> CollectionList:
    """Every collection with its subject and face counts."""
    return CollectionList(
        collections=[_collection_out(c) for c in await gallery.list_collections()]
    )


@router.get("/collections/{collection}", dependencies=read, response_model=CollectionOut)
async def get_collection(collection: CollectionName, gallery: GalleryDep) -> CollectionOut:
    return _collection_out(await gallery.get_collection(collection))


def _erasure_answer(job: ErasureJob) -> Response:
    """204 when the erasure is done, else 202 with the job (and where to follow it)."""
    if job.done:
        return Response(status_code=204)
    body = ErasureJobOut(**dataclasses.asdict(job))
    return JSONResponse(
        body.model_dump(),
        status_code=202,
        headers={"Location": f"/v1/gallery/jobs/{job.id}"},
    )


ERASURE_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "model": ErasureJobOut,
        "description": "invisible now; the rest is erased by a job (Location: its URL)",
    },
}


@router.delete(
    "/collections/{collection}",
    status_code=204,
    dependencies=change,
    responses=ERASURE_RESPONSES,
)
async def delete_collection(collection: CollectionName, gallery: GalleryDep) -> Response:
    """Erase the collection, its subjects and their faces: 204 when done, else 202 and a job.

    Either way the collection is gone for every other call at once, and its name is free.
    """
    return _erasure_answer(await gallery.delete_collection(collection))


@router.get("/gallery/jobs/{job_id}", dependencies=change, response_model=ErasureJobOut)
async def get_job(
    job_id: Annotated[str, Path(max_length=64)], gallery: GalleryDep
) -> ErasureJobOut:
    """An erasure job: running, or done (kept for 7 days)."""
    return ErasureJobOut(**dataclasses.asdict(await gallery.get_job(job_id)))


@router.put(
    "/collections/{collection}/subjects/{subject}",
    dependencies=change,
    response_model=SubjectOut,
    responses={201: {"model": SubjectOut, "description": "created"}},
)
async def put_subject(
    request: Request,
    collection: CollectionName,
    subject: SubjectName,
    gallery: GalleryDep,
    clustering: ClusteringDep,
    response: Response,
    body: SubjectIn | None = None,
) -> SubjectOut:
    """Create the subject (201), or replace its metadata (200); merge_from moves another
    subject's faces here first (naming a group clustering made)."""
    created = await gallery.put_subject(collection, subject, body.metadata if body else None)
    if body is not None and body.merge_from is not None:
        note_audit(request, subjects=[body.merge_from])
        await clustering.merge_subject(collection, body.merge_from, subject)
    response.status_code = 201 if created else 200
    return _subject_out(await gallery.get_subject(collection, subject), with_faces=True)


@router.get("/collections/{collection}/subjects", dependencies=read, response_model=SubjectPageOut)
async def list_subjects(
    collection: CollectionName,
    gallery: GalleryDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> SubjectPageOut:
    """Subjects in name order, a page at a time."""
    after = None
    if cursor:
        try:
            after = base64.urlsafe_b64decode(cursor.encode()).decode()
        except (binascii.Error, ValueError) as exc:
            raise InvalidParameter(
                "cursor: pass back the next_cursor of the previous page"
            ) from exc
    page = await gallery.list_subjects(collection, limit, after)
    next_cursor = (
        base64.urlsafe_b64encode(page.next_after.encode()).decode() if page.next_after else None
    )
    return SubjectPageOut(
        subjects=[_subject_out(s, with_faces=False) for s in page.subjects],
        next_cursor=next_cursor,
    )


@router.get(
    "/collections/{collection}/subjects/{subject}", dependencies=read, response_model=SubjectOut
)
async def get_subject(
    collection: CollectionName, subject: SubjectName, gallery: GalleryDep
) -> SubjectOut:
    """The subject with its face ids and count."""
    return _subject_out(await gallery.get_subject(collection, subject), with_faces=True)


@router.delete(
    "/collections/{collection}/subjects/{subject}",
    status_code=204,
    dependencies=change,
    responses=ERASURE_RESPONSES,
)
async def delete_subject(
    collection: CollectionName, subject: SubjectName, gallery: GalleryDep
) -> Response:
    """Erase the subject and all its faces: 204 when done, else 202 and a job (very large)."""
    return _erasure_answer(await gallery.delete_subject(collection, subject))


@router.post(
    "/collections/{collection}/subjects/{subject}/faces",
    status_code=201,
    dependencies=change,
    response_model=EnrolResponse,
    response_model_exclude_none=True,
    openapi_extra=body_doc({"image": True}, FacesIn),
)
async def enrol_faces(
    request: Request,
    collection: CollectionName,
    subject: SubjectName,
    gallery: GalleryDep,
    settings: SettingsDep,
    face: Annotated[str, Query(description="'prominent' or a face index by score")] = "prominent",
    det_sizes: DetSizes = None,
    min_quality: MinQuality = None,
) -> EnrolResponse:
    """One face per image (up to 16 images), or embeddings; the subject is created if absent."""
    return await enrol(
        request, collection, subject, gallery, settings, face, det_sizes, min_quality
    )


async def enrol(
    request: Request,
    collection: str,
    subject: str | None,
    gallery: Gallery,
    settings: Settings,
    face: str,
    det_sizes: str | None,
    min_quality: str | None = None,
) -> EnrolResponse:
    """Enrol a request's images or embeddings to `subject` (None: unassigned faces); the
    images' faces must meet `min_quality` (None: the collection's setting, if any)."""
    choice = _face_choice(face)
    if _is_json(request):
        body = await _read_json(request, settings, FacesIn, settings.max_batch_images)
        if body.embedding is not None or body.embeddings is not None:
            if min_quality is not None:
                raise InvalidParameter(
                    "min_quality grades faces in images: embeddings carry no quality to check"
                )
            rows = [body.embedding] if body.embedding is not None else body.embeddings or []
            if len(rows) > settings.max_batch_images * 64:
                raise InvalidParameter("too many embeddings in one call: send them in batches")
            embeddings = normalize_embeddings(rows)
            added = await gallery.enroll_embeddings(collection, subject, embeddings)
            note_audit(request, face_ids=[f.id for f in added])
            return EnrolResponse(faces=[EnrolledFaceOut(id=f.id) for f in added])
        encoded = [body.image] if body.image is not None else body.images or []
        if len(encoded) > settings.max_batch_images:
            raise InvalidParameter(
                f"{len(encoded)} images; the limit is {settings.max_batch_images} per call"
            )
        images = [_b64_image(v, settings) for v in encoded]
    else:
        images = (await read_images(request, settings, {"image": True}, None))["image"]
    (added,) = await gallery.enroll_images(
        collection,
        [(subject, images)],
        choice,
        settings.detect_threshold,
        resolve_det_sizes(det_sizes, settings.det_sizes_px),
        min_quality,
    )
    note_audit(request, face_ids=[f.id for f in added])
    return EnrolResponse(
        faces=[
            EnrolledFaceOut(
                id=f.id,
                bbox=[round(v, 3) for v in f.bbox] if f.bbox else None,
                score=round(f.score, 6) if f.score is not None else None,
            )
            for f in added
        ]
    )


@router.delete("/collections/{collection}/faces/{face_id}", status_code=204, dependencies=change)
async def delete_face(
    collection: CollectionName,
    face_id: Annotated[str, Path(max_length=64)],
    gallery: GalleryDep,
) -> Response:
    """Erase one face."""
    await gallery.delete_face(collection, face_id)
    return Response(status_code=204)


@router.post(
    "/collections/{collection}/identify",
    dependencies=read,
    response_model=IdentifyResponse,
    response_model_exclude_none=True,
    openapi_extra=body_doc({"image": False}, IdentifyIn),
)
async def identify(
    request: Request,
    collection: CollectionName,
    gallery: GalleryDep,
    settings: SettingsDep,
    top_k: TopK = 1,
    threshold: MatchThreshold = None,
    max_faces: MaxFaces = 0,
    det_sizes: DetSizes = None,
    pose: Annotated[
        bool,
        Query(
            description="grade head pose in each face's quality too (one 1k3d68 inference per "
            "face; pose unknown where 1k3d68 is not served or fails). Default: size, sharpness "
            "and norm only"
        ),
    ] = False,
) -> IdentifyResponse:
    """Every face in the image (or each embedding) with its best subjects at or above threshold
    and, for an image, each face's quality (docs/QUALITY.md)."""
    limit = settings.verify_threshold if threshold is None else threshold
    image, body = await _one_image(request, settings, IdentifyIn)
    if image is None:
        embeddings = body.embeddings if body is not None else None
        if not embeddings or len(embeddings) > 1000:
            raise InvalidParameter("send 1 to 1000 embeddings per identify call")
        result = await gallery.identify_embeddings(
            collection, normalize_embeddings(embeddings), top_k=top_k, threshold=limit
        )
        _note_matches(request, result)
        return _identified(result, landmarks=False)
    result = await gallery.identify_image(
        collection,
        image,
        top_k=top_k,
        threshold=limit,
        max_faces=max_faces,
        detect_threshold=settings.detect_threshold,
        det_sizes_px=resolve_det_sizes(det_sizes, settings.det_sizes_px),
        pose=pose,
    )
    _note_matches(request, result)
    return _identified(result, landmarks=True)


def _note_matches(request: Request, result: Identification) -> None:
    """The subjects and faces an identify call returned, for its audit record."""
    matches = [m for face in result.faces for m in face.matches]
    note_audit(
        request, face_ids=[m.face_id for m in matches], subjects=[m.subject for m in matches]
    )


@router.post(
    "/collections/{collection}/subjects/{subject}/verify",
    dependencies=read,
    response_model=GalleryVerifyResponse,
    response_model_exclude_none=True,
    openapi_extra=body_doc({"image": False}, GalleryVerifyIn),
)
async def verify_subject(
    request: Request,
    collection: CollectionName,
    subject: SubjectName,
    gallery: GalleryDep,
    settings: SettingsDep,
    threshold: MatchThreshold = None,
    det_sizes: DetSizes = None,
) -> GalleryVerifyResponse:
    """Is the image's most prominent face this subject? (best of the subject's faces)"""
    limit = settings.verify_threshold if threshold is None else threshold
    image, _ = await _one_image(request, settings, GalleryVerifyIn)
    assert image is not None  # GalleryVerifyIn requires it
    result = await gallery.verify(
        collection,
        subject,
        image,
        threshold=limit,
        detect_threshold=settings.detect_threshold,
        det_sizes_px=resolve_det_sizes(det_sizes, settings.det_sizes_px),
    )
    faces = ImageFaces(0, 0, result.detections, None, None)
    return GalleryVerifyResponse(
        similarity=round(result.similarity, 6),
        match=result.match,
        threshold=limit,
        face=face_out(faces, 0, landmarks=True),
    )
