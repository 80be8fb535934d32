"""Unassigned faces and clustering them: /v1/collections/{c}/faces and /cluster."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from gateway.api.audit import AuditedRoute, note_audit
from gateway.api.deps import SettingsDep, require_enroll, require_user
from gateway.api.docs import body_doc
from gateway.api.faces import DetSizes
from gateway.api.gallery import (
    GALLERY_ERRORS,
    ClusteringDep,
    CollectionName,
    GalleryDep,
    enrol,
)
from gateway.defaults import CLUSTER_MIN_FACES, GROUP_MAX_DISTANCE
from gateway.errors import InvalidParameter
from gateway.gallery_ports import FaceInfo
from gateway.gallery_schemas import EnrolResponse, FacesIn
from gateway.grouping_schemas import (
    ClusterResponse,
    FacePageOut,
    FaceSubjectIn,
    StoredFaceOut,
)
from gateway.service.grouping import GroupParams

router = APIRouter(
    prefix="/v1", tags=["gallery"], responses=GALLERY_ERRORS, route_class=AuditedRoute
)
read = [Depends(require_user)]
change = [Depends(require_enroll)]
FaceId = Annotated[str, Path(max_length=64)]
# A cluster call spends at most this share of the request deadline on new steps.
CLUSTER_BUDGET_SHARE = 0.5


def _face_out(face: FaceInfo) -> StoredFaceOut:
    return StoredFaceOut(id=face.id, subject=face.subject, created=face.created_at)


@router.post(
    "/collections/{collection}/faces",
    status_code=201,
    dependencies=change,
    response_model=EnrolResponse,
    response_model_exclude_none=True,
    openapi_extra=body_doc({"image": True}, FacesIn),
)
async def enrol_unassigned(
    request: Request,
    collection: CollectionName,
    gallery: GalleryDep,
    settings: SettingsDep,
    face: Annotated[str, Query(description="'prominent' or a face index by score")] = "prominent",
    det_sizes: DetSizes = None,
) -> EnrolResponse:
    """Enrol faces with no subject (the inputs of a subject's enrolment), to cluster or
    assign later."""
    return await enrol(request, collection, None, gallery, settings, face, det_sizes)


@router.get("/collections/{collection}/faces", dependencies=read, response_model=FacePageOut)
async def list_faces(
    collection: CollectionName,
    clustering: ClusteringDep,
    subject: Annotated[
        str | None,
        Query(min_length=1, max_length=256, description="a subject's faces, or 'none': unassigned"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> FacePageOut:
    """The collection's faces in enrolment order, a page at a time."""
    after = None
    if cursor:
        try:
            after = base64.urlsafe_b64decode(cursor.encode()).decode()
        except (binascii.Error, ValueError) as exc:
            raise InvalidParameter(
                "cursor: pass back the next_cursor of the previous page"
            ) from exc
    unassigned = subject == "none"
    page = await clustering.list_faces(
        collection, None if unassigned else subject, unassigned, limit, after
    )
    next_cursor = (
        base64.urlsafe_b64encode(page.next_after.encode()).decode() if page.next_after else None
    )
    return FacePageOut(faces=[_face_out(f) for f in page.faces], next_cursor=next_cursor)


@router.put(
    "/collections/{collection}/faces/{face_id}", dependencies=change, response_model=StoredFaceOut
)
async def put_face(
    request: Request,
    collection: CollectionName,
    face_id: FaceId,
    body: FaceSubjectIn,
    clustering: ClusteringDep,
) -> StoredFaceOut:
    """Assign the face to a subject (created if absent), or unassign it with null."""
    note_audit(request, subjects=[body.subject] if body.subject else [])
    return _face_out(await clustering.set_face_subject(collection, face_id, body.subject))


@router.post(
    "/collections/{collection}/cluster", dependencies=change, response_model=ClusterResponse
)
async def cluster(
    request: Request,
    collection: CollectionName,
    clustering: ClusteringDep,
    settings: SettingsDep,
    max_distance: Annotated[
        float,
        Query(gt=0.0, le=2.0, description="cosine distance within which faces may be one person"),
    ] = GROUP_MAX_DISTANCE,
    min_faces: Annotated[
        int, Query(ge=2, le=1000, description="the smallest new subject")
    ] = CLUSTER_MIN_FACES,
) -> ClusterResponse:
    """Group the faces no run has seen yet: joins to existing subjects, new subjects
    (unknown-0001, ...) of at least min_faces, the rest left unassigned. Assigned faces never
    move. Within half the request deadline; `pending` > 0 says to call again."""
    result = await clustering.run(
        collection,
        GroupParams(max_distance, min_faces),
        settings.request_timeout_s * CLUSTER_BUDGET_SHARE,
    )
    note_audit(request, subjects=result.subjects_created)
    return ClusterResponse(
        subjects_created=result.subjects_created,
        assigned=result.assigned,
        unassigned=result.unassigned,
        pending=result.pending,
    )
