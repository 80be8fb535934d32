"""POST /v1/swap and the swapper's admin endpoints."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from gateway.api.deps import (
    SettingsDep,
    SwapManagerDep,
    SwapPipelineDep,
    require_admin,
    require_user,
)
from gateway.api.docs import body_doc, error_responses
from gateway.api.faces import ERRORS
from gateway.api.uploads import read_images
from gateway.errors import (
    FacegateError,
    Forbidden,
    InvalidParameter,
    Overloaded,
    Unauthenticated,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.schemas import SwapperStatusOut
from gateway.service.pipeline import Timings
from gateway.service.swap import ALL_FACES, ImageFormat, SwapRequest, encode_image

router = APIRouter(tags=["swap"], dependencies=[Depends(require_user)])
admin = APIRouter(tags=["models"], dependencies=[Depends(require_admin)])
ADMIN_ERRORS = error_responses(
    Unauthenticated, Forbidden, Overloaded, UpstreamUnavailable, UpstreamTimeout, FacegateError
)


def _target_face(value: str | None) -> int | Literal["all"] | None:
    if value is None or value == "":
        return None
    if value == ALL_FACES:
        return ALL_FACES
    if value.isascii() and value.isdigit() and len(value) <= 6:
        return int(value)
    raise InvalidParameter("target_face: give a face index (0, 1, ...) or 'all'")


def _format(requested: ImageFormat | None, accept: str) -> ImageFormat:
    if requested is not None:
        return requested
    accept = accept.lower()
    if "image/jpeg" in accept and "image/png" not in accept:
        return "jpeg"
    return "png"


@router.post(
    "/v1/swap",
    responses={
        **ERRORS,
        200: {
            "content": {"image/png": {}, "image/jpeg": {}},
            "description": "the target image with the face(s) swapped; header X-Faces-Swapped",
        },
    },
    response_class=Response,
    openapi_extra=body_doc({"source": True, "target": False}, None),
    summary="Swap the source identity onto faces in the target image",
)
async def swap(
    request: Request,
    settings: SettingsDep,
    swapper: SwapPipelineDep,
    source_face: Annotated[
        int | None, Query(ge=0, description="face index in each source (default: most prominent)")
    ] = None,
    target_face: Annotated[
        str | None,
        Query(description="face index in the target, or 'all' (default: most prominent)"),
    ] = None,
    format: Annotated[
        ImageFormat | None, Query(description="png or jpeg (default: from Accept, else png)")
    ] = None,
    quality: Annotated[int, Query(ge=1, le=100, description="JPEG quality")] = 90,
    threshold: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
) -> Response:
    """Swapper loads on first use (503 + Retry-After when it cannot be loaded)."""
    started = time.perf_counter()
    images = await read_images(request, settings, {"source": True, "target": False}, None)
    check = _target_face(target_face)
    chosen = settings.detect_threshold if threshold is None else threshold
    timings = Timings()
    result = await swapper.swap(
        images["source"], images["target"][0], SwapRequest(source_face, check, chosen), timings
    )
    image_format = _format(format, request.headers.get("accept", ""))
    data = await asyncio.to_thread(encode_image, result.img_bgr, image_format, quality)
    total_ms = (time.perf_counter() - started) * 1000
    server_timing = ", ".join(f"{k};dur={v:.1f}" for k, v in timings.stages.items())
    return Response(
        data,
        media_type=f"image/{image_format}",
        headers={
            "X-Faces-Swapped": str(result.faces_swapped),
            "Server-Timing": f"{server_timing}, total;dur={total_ms:.1f}",
        },
    )


@admin.post("/v1/models/swapper/load", response_model=SwapperStatusOut, responses=ADMIN_ERRORS)
async def load_swapper(manager: SwapManagerDep) -> SwapperStatusOut:
    """Load the swapper now (admin); returns once it is READY."""
    await manager.ensure_loaded()
    return SwapperStatusOut.model_validate(manager.status, from_attributes=True)


@admin.post("/v1/models/swapper/unload", response_model=SwapperStatusOut, responses=ADMIN_ERRORS)
async def unload_swapper(manager: SwapManagerDep) -> SwapperStatusOut:
    """Unload the swapper now (admin); returns once Triton reports it gone."""
    await manager.unload()
    return SwapperStatusOut.model_validate(manager.status, from_attributes=True)
