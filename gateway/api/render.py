"""POST /v1/detect/render: the image with its faces drawn on it."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from gateway.api.deps import PipelineDep, SettingsDep, require_user
from gateway.api.docs import body_doc
from gateway.api.faces import ERRORS, RenderQueryDep
from gateway.api.uploads import read_images
from gateway.schemas import ImagePayload
from gateway.service.pipeline import Timings
from gateway.service.render import render_faces
from gateway.service.swap import ImageFormat, encode_image

router = APIRouter(prefix="/v1", tags=["faces"], dependencies=[Depends(require_user)])


@router.post(
    "/detect/render",
    responses={
        **ERRORS,
        200: {
            "content": {"image/png": {}, "image/jpeg": {}},
            "description": "the image with boxes, landmarks, scores (and gender/age); "
            "header X-Faces",
        },
    },
    response_class=Response,
    openapi_extra=body_doc({"image": False}, ImagePayload),
    summary="Draw the detected faces on the image",
)
async def render(
    request: Request,
    settings: SettingsDep,
    pipeline: PipelineDep,
    query: RenderQueryDep,
    format: Annotated[ImageFormat, Query(description="png or jpeg")] = "png",
    quality: Annotated[int, Query(ge=1, le=100, description="JPEG quality")] = 90,
) -> Response:
    """/v1/detect's options less embed and quality (`quality` here is the JPEG quality);
    attributes=true draws gender and age, liveness=true the liveness verdict, dense_landmarks=true
    the 106 points, pose=true the head pose."""
    images = await read_images(request, settings, {"image": False}, ImagePayload)
    timings = Timings()
    drawn, count = await render_faces(pipeline, images["image"][0], query.options, timings)
    data = await asyncio.to_thread(encode_image, drawn, format, quality)
    return Response(data, media_type=f"image/{format}", headers={"X-Faces": str(count)})
