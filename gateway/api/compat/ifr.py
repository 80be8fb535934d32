"""InsightFace-REST 0.9.5 drop-in: POST /extract, GET /info, GET /health.

Content negotiation is that project's: a body is msgpack when its Content-Type is
application/msgpack (its client's choice; application/x-msgpack is accepted too), JSON
otherwise; the answer is msgpack, typed exactly `application/x-msgpack` (its client
compares the header verbatim), when the body asks `msgpack: true` or Accept names it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import cv2
import msgpack
import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from gateway import __version__, ports
from gateway.api.compat.access import require_compat_client
from gateway.api.compat.ifr_schemas import (
    IFR_DEFAULT_THRESHOLD,
    IFR_SERVER_VERSION,
    ExtractRequest,
    ExtractResponse,
    IfrFace,
    IfrImage,
)
from gateway.api.compat.ifr_sources import failure_text, load_sources
from gateway.api.deps import PipelineDep, SettingsDep
from gateway.api.uploads import read_body
from gateway.errors import FacegateError, InvalidParameter, UnsupportedMediaType
from gateway.service.extract import (
    ExtractedImage,
    ExtractResult,
    embed_aligned_crops,
    extract_faces,
)
from gateway.service.pipeline import DetectOptions, Timings

router = APIRouter(tags=["compat: InsightFace-REST"], dependencies=[Depends(require_compat_client)])

MSGPACK_REQUEST_TYPES = ("application/msgpack", "application/x-msgpack")
MSGPACK_RESPONSE_TYPE = "application/x-msgpack"


def _media_type(header: str) -> str:
    return header.split(";")[0].strip().lower()


def _parse_request(body: bytes, content_type: str) -> ExtractRequest:
    try:
        if content_type in MSGPACK_REQUEST_TYPES:
            raw: Any = msgpack.unpackb(body, raw=False)
        elif content_type in ("application/json", ""):
            raw = json.loads(body)
        else:
            raise UnsupportedMediaType("send /extract as application/json or application/msgpack")
        return ExtractRequest.model_validate(raw)
    except (ValueError, ValidationError, RecursionError, msgpack.UnpackException) as exc:
        raise InvalidParameter(f"invalid /extract body: {str(exc)[:500]}") from exc


def _wants_msgpack(payload: ExtractRequest, accept: str) -> bool:
    accepted = {_media_type(part) for part in accept.split(",")}
    return payload.msgpack or bool(accepted & {MSGPACK_RESPONSE_TYPE, "application/msgpack"})


def _jpeg_b64(crop_bgr: npt.NDArray[np.uint8]) -> str:
    ok, buf = cv2.imencode(".jpg", crop_bgr)
    if not ok:  # cv2 encodes any uint8 HxWx3; kept as a guard, not an expected path
        raise InvalidParameter("the face crop could not be encoded as JPEG")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def _faces_out(item: ExtractedImage, payload: ExtractRequest) -> list[IfrFace]:
    dets, vecs, norms = item.faces.detections, item.faces.embeddings, item.faces.embedding_norms
    # InsightFace-REST converts with astype(int): truncation toward zero, not rounding.
    boxes = dets.boxes.astype(np.int64)
    attrs = item.faces.attributes
    out = []
    for i in range(len(dets)):
        out.append(
            IfrFace(
                bbox=boxes[i].tolist(),
                landmarks=dets.kps[i].astype(np.int64).tolist()
                if payload.return_landmarks
                else None,
                prob=float(dets.scores[i]),
                size=int(dets.boxes[i][2] - dets.boxes[i][0]),
                num_det=i,
                scale=item.scale,
                norm=float(norms[i]) if norms is not None else None,
                vec=vecs[i].tolist() if vecs is not None else None,
                facedata=_jpeg_b64(item.crops_bgr[i]) if item.crops_bgr is not None else None,
                # insightface's encoding (0 = female, 1 = male); null without the genderage
                # model, as upstream without its attribute model. No mask model is served.
                gender=int(attrs.genders[i]) if attrs is not None else None,
                age=int(attrs.ages[i]) if attrs is not None else None,
                mask=None,
                mask_probs=None,
            )
        )
    return out


def _image_out(result: ExtractResult, payload: ExtractRequest, took_ms: float) -> IfrImage:
    if isinstance(result, FacegateError):
        return IfrImage(status="failed", took_ms=0.0, faces=[], traceback=failure_text(result))
    return IfrImage(status="ok", took_ms=took_ms, faces=_faces_out(result, payload))


def _respond(
    results: list[ExtractResult],
    payload: ExtractRequest,
    took: dict[str, float],
    embed_ms: float,
    as_msgpack: bool,
) -> Response:
    # Images are processed together, so each one reports the batch's processing time.
    data = [_image_out(result, payload, embed_ms) for result in results]
    content = ExtractResponse(took=took, data=data).model_dump()
    if as_msgpack:
        # Single floats as upstream (msgpack.dumps(..., use_single_float=True)).
        packed = msgpack.packb(content, use_single_float=True)
        return Response(packed, media_type=MSGPACK_RESPONSE_TYPE)
    return Response(json.dumps(content).encode(), media_type="application/json")


@router.post("/extract", summary="InsightFace-REST /extract (up to 64 images)")
async def extract(request: Request, settings: SettingsDep, pipeline: PipelineDep) -> Response:
    """Detect faces and extract embeddings; a bad image is reported in place with status failed."""
    started = time.perf_counter()
    body = await read_body(request, settings.compat_max_request_bytes)
    content_type = _media_type(request.headers.get("content-type", ""))
    payload = await asyncio.to_thread(_parse_request, body, content_type)
    del body
    sources = await load_sources(payload.images, settings)
    read_ms = (time.perf_counter() - started) * 1000
    timings = Timings()
    embed_started = time.perf_counter()
    if payload.embed_only:
        results = await embed_aligned_crops(
            pipeline, sources, max_pixels=settings.max_image_pixels, timings=timings
        )
    else:
        options = DetectOptions(
            threshold=payload.threshold,
            max_faces=payload.limit_faces,
            min_size_px=float(payload.min_face_size),
            embed=payload.extract_embedding,
        )
        results = await extract_faces(
            pipeline,
            sources,
            options,
            max_pixels=settings.max_image_pixels,
            with_crops=payload.return_face_data,
            # The same group /v1/detect/batch sends at most, so Triton sees no larger bursts.
            group_size=settings.max_batch_images,
            timings=timings,
            with_gender_age=payload.extract_ga,
        )
    embed_ms = (time.perf_counter() - embed_started) * 1000
    took = {"total_ms": (time.perf_counter() - started) * 1000}
    if payload.verbose_timings:
        took |= {"read_imgs_ms": read_ms, "embed_all_ms": embed_ms}
        took |= {f"{stage}_ms": ms for stage, ms in timings.stages.items()}
    as_msgpack = _wants_msgpack(payload, request.headers.get("accept", ""))
    # Building (crop JPEGs, 512 floats per face) and encoding is CPU work: off the event loop.
    return await asyncio.to_thread(_respond, results, payload, took, embed_ms, as_msgpack)


@router.get("/info", summary="InsightFace-REST /info: what its clients print at start")
async def info(settings: SettingsDep) -> dict[str, Any]:
    """Server and model description in InsightFace-REST's layout (models.*, defaults.*).

    Model names are the configured ones, as upstream's; extract_ga answers null where the
    genderage model is not installed.
    """
    return {
        "version": IFR_SERVER_VERSION,
        "facegate_version": __version__,
        "tensorrt_version": None,
        "log_level": settings.log_level,
        "models": {
            "inference_backend": "triton",
            "det_name": settings.detector_model,
            "rec_name": settings.recognizer_model,
            "ga_name": settings.genderage_model,
            "mask_detector": None,
            "max_size": [ports.DETECTOR_INPUT_SIZE_PX, ports.DETECTOR_INPUT_SIZE_PX],
            "det_batch_size": settings.compat_max_images,
            "rec_batch_size": ports.RECOGNIZER_MAX_BATCH,
            "force_fp16": False,
            "triton_uri": None,
        },
        "defaults": {
            "return_face_data": False,
            "return_landmarks": False,
            "extract_embedding": True,
            "extract_ga": False,
            "detect_masks": False,
            "det_thresh": IFR_DEFAULT_THRESHOLD,
        },
    }


@router.get("/health", summary="InsightFace-REST /health: one real detection")
async def health(pipeline: PipelineDep) -> dict[str, str]:
    """Run the detector on a blank frame end to end; 503/504 when Triton does not answer."""
    blank = np.zeros((64, 64, 3), dtype=np.uint8)
    await pipeline.detect([blank], DetectOptions(threshold=IFR_DEFAULT_THRESHOLD), Timings())
    return {"status": "ok"}
