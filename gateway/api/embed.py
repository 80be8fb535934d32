"""POST /v1/embed: embeddings of face crops that are already aligned (no detection)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request

from gateway.api.deps import PipelineDep, SettingsDep, require_user
from gateway.api.docs import body_doc
from gateway.api.faces import ERRORS
from gateway.api.uploads import read_images
from gateway.schemas import BatchPayload, EmbedResponse
from gateway.service.pipeline import Timings

router = APIRouter(prefix="/v1", tags=["faces"], dependencies=[Depends(require_user)])


@router.post(
    "/embed",
    response_model=EmbedResponse,
    responses=ERRORS,
    openapi_extra=body_doc({"images": True}, BatchPayload),
    summary="Embed aligned 112x112 face crops",
)
async def embed(request: Request, settings: SettingsDep, pipeline: PipelineDep) -> EmbedResponse:
    """Crops aligned to ArcFace's 112x112 template (e.g. insightface's norm_crop) -> L2-normalised
    512-d embeddings, one recognizer batch; a crop of another size is a 422."""
    started = time.perf_counter()
    images = await read_images(request, settings, {"images": True}, BatchPayload)
    timings = Timings()
    embeddings, norms = await pipeline.embed_aligned(images["images"], timings)
    stages = {k: round(v, 2) for k, v in timings.stages.items()}
    stages["total"] = round((time.perf_counter() - started) * 1000, 2)
    return EmbedResponse(
        embeddings=[[float(v) for v in row] for row in embeddings],
        embedding_norms=[float(n) for n in norms],
        timings_ms=stages,
    )
