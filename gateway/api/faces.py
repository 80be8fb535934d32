"""POST /v1/detect, /v1/detect/batch and /v1/verify."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Depends, Query, Request

from gateway import defaults, errors
from gateway.api.deps import PipelineDep, SettingsDep, require_user
from gateway.api.docs import body_doc, error_responses
from gateway.api.uploads import read_images
from gateway.processing.quality import FaceQuality
from gateway.schemas import (
    BatchPayload,
    BatchResponse,
    DetectResponse,
    FaceOut,
    ImagePayload,
    LivenessOut,
    PoseOut,
    QualityOut,
    VerifyPayload,
    VerifyResponse,
)
from gateway.service.attributes import LIVENESS_REJECTED_REASON
from gateway.service.landmarks import FaceLandmarks
from gateway.service.options import resolve_det_sizes
from gateway.service.pipeline import DetectOptions, ImageFaces, Timings

router = APIRouter(prefix="/v1", tags=["faces"], dependencies=[Depends(require_user)])

# Every error of the tree but those about admin scope, compat networks and stored resources.
ERRORS = error_responses(
    *(
        cls
        for cls in errors.ERRORS
        if cls not in (errors.Forbidden, errors.ClientNotAllowed, errors.NotFound, errors.Conflict)
    )
)


Threshold = Annotated[
    float | None, Query(ge=0.0, le=1.0, description="detection score threshold (default 0.5)")
]
MaxFaces = Annotated[
    int,
    Query(
        ge=0, le=defaults.MAX_FACES_LIMIT, description="keep the N most prominent faces (0 = all)"
    ),
]
MinSize = Annotated[
    float,
    Query(
        ge=0.0,
        le=defaults.MIN_SIZE_LIMIT_PX,
        description="drop faces whose shorter box side is below this (px)",
    ),
]
Embed = Annotated[bool, Query(description="add L2-normalised 512-d embeddings")]
Landmarks = Annotated[bool, Query(description="include the 5 landmarks")]
Attributes = Annotated[
    bool, Query(description="add gender ('F'/'M') and age per face (needs genderage.onnx)")
]
Liveness = Annotated[
    bool, Query(description="add liveness {score, is_live, reason?} per face (needs liveness.onnx)")
]
LivenessThreshold = Annotated[
    float | None,
    Query(
        ge=0.0, le=1.0, description="live at or above (default FACEGATE_LIVENESS_THRESHOLD, 0.8)"
    ),
]
DenseLandmarks = Annotated[
    bool,
    Query(
        description="add 106 2-D (landmarks_2d_106) and 68 3-D (landmarks_3d_68) points per "
        "face (needs 2d106det.onnx and 1k3d68.onnx)"
    ),
]
Pose = Annotated[
    bool, Query(description="add head pose {pitch, yaw, roll} in degrees (needs 1k3d68.onnx)")
]
Quality = Annotated[
    bool,
    Query(
        description="add quality {norm, size, sharpness, pose?, for_recognition} per face "
        "(pose where 1k3d68 is served)"
    ),
]
DetSizes = Annotated[
    str | None,
    Query(
        max_length=defaults.DET_SIZES_MAX_CHARS,
        description="detector frame sides, e.g. '640' or '128,640' (one pass each, merged "
        "by one NMS as insightface 2.1 does; default FACEGATE_DET_SIZES, '128,640')",
    ),
]


@dataclass(frozen=True)
class DetectQuery:
    """The query parameters shared by /v1/detect and /v1/detect/batch."""

    options: DetectOptions
    landmarks: bool


def detect_query(
    settings: SettingsDep,
    threshold: Threshold = None,
    max_faces: MaxFaces = 0,
    min_size: MinSize = 0.0,
    embed: Embed = False,
    landmarks: Landmarks = True,
    det_sizes: DetSizes = None,
    attributes: Attributes = False,
    liveness: Liveness = False,
    liveness_threshold: LivenessThreshold = None,
    dense_landmarks: DenseLandmarks = False,
    pose: Pose = False,
    quality: Quality = False,
) -> DetectQuery:
    chosen = settings.detect_threshold if threshold is None else threshold
    sizes = resolve_det_sizes(det_sizes, settings.det_sizes_px)
    live_at = settings.liveness_threshold if liveness_threshold is None else liveness_threshold
    options = DetectOptions(
        chosen,
        max_faces,
        min_size,
        embed,
        sizes,
        attributes,
        liveness,
        live_at,
        dense_landmarks=dense_landmarks,
        pose=pose,
        quality=quality,
    )
    return DetectQuery(options, landmarks)


DetectQueryDep = Annotated[DetectQuery, Depends(detect_query)]


def render_query(
    settings: SettingsDep,
    threshold: Threshold = None,
    max_faces: MaxFaces = 0,
    min_size: MinSize = 0.0,
    landmarks: Landmarks = True,
    det_sizes: DetSizes = None,
    attributes: Attributes = False,
    liveness: Liveness = False,
    liveness_threshold: LivenessThreshold = None,
    dense_landmarks: DenseLandmarks = False,
    pose: Pose = False,
) -> DetectQuery:
    """/v1/detect/render's options: /v1/detect's less embed and quality (neither is drawn;
    render's own `quality` is the JPEG quality)."""
    return detect_query(
        settings,
        threshold,
        max_faces,
        min_size,
        False,
        landmarks,
        det_sizes,
        attributes,
        liveness,
        liveness_threshold,
        dense_landmarks,
        pose,
        False,
    )


RenderQueryDep = Annotated[DetectQuery, Depends(render_query)]


def face_out(faces: ImageFaces, index: int, *, landmarks: bool) -> FaceOut:
    dets = faces.detections
    out = FaceOut(
        bbox=[round(float(v), 3) for v in dets.boxes[index]],
        score=round(float(dets.scores[index]), 6),
    )
    if landmarks:
        out.landmarks = [[round(float(x), 3), round(float(y), 3)] for x, y in dets.kps[index]]
    if faces.embeddings is not None and faces.embedding_norms is not None:
        out.embedding = [float(v) for v in faces.embeddings[index]]
        out.embedding_norm = float(faces.embedding_norms[index])
    if faces.attributes is not None:
        out.gender = faces.attributes.labels()[index]
        out.age = int(faces.attributes.ages[index])
    if faces.liveness is not None:
        out.liveness = liveness_out(faces, index)
    if faces.landmarks is not None:
        add_landmarks(out, faces.landmarks, index)
    if faces.quality is not None:
        out.quality = quality_out(faces.quality, index)
    return out


def _finite(value: float) -> float | None:
    return round(value, 3) if np.isfinite(value) else None


def quality_out(quality: FaceQuality, index: int) -> QualityOut:
    """One face's quality measurements and grade (unknown ones absent)."""
    return QualityOut(
        norm=_finite(float(quality.norm[index])),
        size=round(float(quality.size[index]), 3),
        sharpness=round(float(quality.sharpness[index]), 3),
        pose=_finite(float(quality.pose[index])),
        for_recognition=quality.levels[index],
    )


def _rounded(points: npt.NDArray[np.float32]) -> list[list[float]]:
    return [[round(float(v), 3) for v in point] for point in points]


def add_landmarks(out: FaceOut, marks: FaceLandmarks, index: int) -> None:
    """Dense landmarks and pose of face `index`, where they were asked for."""
    if marks.points_2d is not None:
        out.landmarks_2d_106 = _rounded(marks.points_2d[index])
    if marks.points_3d is not None:
        out.landmarks_3d_68 = _rounded(marks.points_3d[index])
    if marks.pose is not None:
        out.pose = PoseOut(
            pitch=round(float(marks.pose.pitch[index]), 3),
            yaw=round(float(marks.pose.yaw[index]), 3),
            roll=round(float(marks.pose.roll[index]), 3),
        )


def liveness_out(faces: ImageFaces, index: int) -> LivenessOut:
    result = faces.liveness
    assert result is not None
    if result.rejected[index]:
        return LivenessOut(score=None, is_live=None, reason=LIVENESS_REJECTED_REASON)
    score = float(result.scores[index])
    return LivenessOut(score=round(score, 6), is_live=bool(result.is_live[index]))


def detect_response(faces: ImageFaces, *, landmarks: bool) -> DetectResponse:
    return DetectResponse(
        width=faces.width,
        height=faces.height,
        faces=[face_out(faces, i, landmarks=landmarks) for i in range(len(faces.detections))],
    )


def _timings(timings: Timings, started: float) -> dict[str, float]:
    out = {k: round(v, 2) for k, v in timings.stages.items()}
    out["total"] = round((time.perf_counter() - started) * 1000, 2)
    return out


@router.post(
    "/detect",
    response_model=DetectResponse,
    response_model_exclude_none=True,
    responses=ERRORS,
    openapi_extra=body_doc({"image": False}, ImagePayload),
    summary="Detect faces in one image",
)
async def detect(
    request: Request,
    settings: SettingsDep,
    pipeline: PipelineDep,
    query: DetectQueryDep,
) -> DetectResponse:
    """Boxes, scores, landmarks (and embeddings with embed=true), faces in descending score."""
    started = time.perf_counter()
    images = await read_images(request, settings, {"image": False}, ImagePayload)
    timings = Timings()
    (faces,) = await pipeline.detect(images["image"], query.options, timings)
    response = detect_response(faces, landmarks=query.landmarks)
    response.timings_ms = _timings(timings, started)
    return response


@router.post(
    "/detect/batch",
    response_model=BatchResponse,
    response_model_exclude_none=True,
    responses=ERRORS,
    openapi_extra=body_doc({"images": True}, BatchPayload),
    summary="Detect faces in up to 16 images",
)
async def detect_batch(
    request: Request,
    settings: SettingsDep,
    pipeline: PipelineDep,
    query: DetectQueryDep,
) -> BatchResponse:
    """Results in request order; detector and recognizer calls batched across images."""
    started = time.perf_counter()
    images = await read_images(request, settings, {"images": True}, BatchPayload)
    timings = Timings()
    results = await pipeline.detect(images["images"], query.options, timings)
    return BatchResponse(
        results=[detect_response(faces, landmarks=query.landmarks) for faces in results],
        timings_ms=_timings(timings, started),
    )


@router.post(
    "/verify",
    response_model=VerifyResponse,
    response_model_exclude_none=True,
    responses=ERRORS,
    openapi_extra=body_doc({"image_a": False, "image_b": False}, VerifyPayload),
    summary="Do two images show the same person?",
)
async def verify(
    request: Request,
    settings: SettingsDep,
    pipeline: PipelineDep,
    threshold: Annotated[
        float | None, Query(ge=-1.0, le=1.0, description="match at or above (default 0.3)")
    ] = None,
    det_sizes: DetSizes = None,
) -> VerifyResponse:
    """Cosine similarity of the most prominent face of each image; 422 when one has none."""
    started = time.perf_counter()
    images = await read_images(
        request, settings, {"image_a": False, "image_b": False}, VerifyPayload
    )
    limit = settings.verify_threshold if threshold is None else threshold
    sizes = resolve_det_sizes(det_sizes, settings.det_sizes_px)
    timings = Timings()
    result = await pipeline.verify(
        images["image_a"][0],
        images["image_b"][0],
        limit,
        timings,
        settings.detect_threshold,
        sizes,
    )
    return VerifyResponse(
        similarity=round(result.similarity, 6),
        match=result.match,
        threshold=limit,
        face_a=face_out(result.face_a, 0, landmarks=True).model_copy(
            update={"embedding": None, "embedding_norm": None}
        ),
        face_b=face_out(result.face_b, 0, landmarks=True).model_copy(
            update={"embedding": None, "embedding_norm": None}
        ),
        timings_ms=_timings(timings, started),
    )
