"""POST /v1/group: group faces into people (embeddings, or every face of up to 16 images)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError

from gateway.api.deps import PipelineDep, SettingsDep, require_user
from gateway.api.docs import body_doc
from gateway.api.faces import ERRORS, DetSizes
from gateway.api.uploads import read_body, read_images
from gateway.defaults import GROUP_MAX_DISTANCE, GROUP_MIN_FACES, MAX_GROUP_EMBEDDINGS
from gateway.errors import InvalidParameter, UnsupportedMediaType
from gateway.grouping_schemas import FaceRef, GroupIn, GroupResponse
from gateway.processing.grouping import Grouping
from gateway.service.gallery import normalize_embeddings
from gateway.service.grouping import GroupParams, group_embeddings, group_images
from gateway.service.options import resolve_det_sizes

router = APIRouter(prefix="/v1", tags=["faces"], dependencies=[Depends(require_user)])

MaxDistance = Annotated[
    float,
    Query(
        gt=0.0,
        le=2.0,
        description="cosine distance (1 - similarity) within which faces may be one person",
    ),
]
MinFaces = Annotated[
    int,
    Query(ge=2, le=MAX_GROUP_EMBEDDINGS, description="the smallest group; fewer stay ungrouped"),
]
# A JSON body of 1000 embeddings of 512 numbers, each up to ~25 characters.
MAX_JSON_BYTES = MAX_GROUP_EMBEDDINGS * 512 * 26 + 1024


def _parse(body: bytes) -> GroupIn:
    try:
        return GroupIn.model_validate(json.loads(body))
    except (ValueError, ValidationError, RecursionError) as exc:
        raise InvalidParameter(f"invalid JSON body: {str(exc)[:500]}") from exc


def _refs(grouping: Grouping, refs: list[int] | list[FaceRef]) -> GroupResponse:
    return GroupResponse(
        groups=[[refs[i] for i in members.tolist()] for members in grouping.members()],
        ungrouped=[refs[i] for i in grouping.ungrouped().tolist()],
    )


@router.post(
    "/group",
    response_model=GroupResponse,
    responses=ERRORS,
    openapi_extra=body_doc({"images": True}, GroupIn),
    summary="Group faces into people",
)
async def group(
    request: Request,
    settings: SettingsDep,
    pipeline: PipelineDep,
    max_distance: MaxDistance = GROUP_MAX_DISTANCE,
    min_faces: MinFaces = GROUP_MIN_FACES,
    det_sizes: DetSizes = None,
) -> GroupResponse:
    """JSON {"embeddings": [...]} (2..1000) or multipart `images` (every face of each):
    groups of faces of one person, largest first, and the faces in no group."""
    params = GroupParams(max_distance, min_faces)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        body = await asyncio.to_thread(_parse, await read_body(request, MAX_JSON_BYTES))
        embeddings = normalize_embeddings(body.embeddings)
        grouping = await group_embeddings(pipeline, embeddings, params)
        return _refs(grouping, list(range(len(embeddings))))
    if content_type != "multipart/form-data":
        raise UnsupportedMediaType(
            'send JSON {"embeddings": [...]} or multipart/form-data with `images` files'
        )
    images = await read_images(request, settings, {"images": True}, None)
    found = await group_images(
        pipeline,
        images["images"],
        params,
        settings.detect_threshold,
        resolve_det_sizes(det_sizes, settings.det_sizes_px),
    )
    refs = [
        FaceRef(
            image=i,
            face=j,
            bbox=[round(float(v), 3) for v in found.detections[i].boxes[j]],
        )
        for i, j in found.faces
    ]
    return _refs(found.grouping, refs)
