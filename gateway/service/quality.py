"""Face quality per face: size, sharpness, pose where known, the embedding's norm, and a grade."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway import ports, processing
from gateway.errors import UpstreamError
from gateway.ports import LandmarkModels
from gateway.processing.quality import FaceQuality, QualityThresholds, grade_quality
from gateway.service.landmarks import FaceLandmarks, estimate_landmarks

log = logging.getLogger(__name__)


def _unknown(found: Sequence[processing.Detections]) -> list[npt.NDArray[np.float32]]:
    return [np.full(len(dets), np.nan, np.float32) for dets in found]


async def _poses(
    models: object,
    in_thread: Callable[..., Awaitable[Any]],
    images: Sequence[npt.NDArray[np.uint8]],
    found: Sequence[processing.Detections],
    timings: Any,
    *,
    strict: bool,
) -> list[npt.NDArray[np.float32]]:
    """max(|yaw|, |pitch|) per face per image; NaN (unknown) where 1k3d68 is not served (no
    call made) and, unless `strict`, where its status or inference fails."""
    try:
        if not isinstance(models, LandmarkModels) or not (await models.landmarks_served())[1]:
            return _unknown(found)
        marks = await estimate_landmarks(
            models, in_thread, images, found, timings, dense=False, pose=True
        )
    except UpstreamError as exc:
        if strict:
            raise
        log.warning("quality: head pose left out (1k3d68 failed): %s", exc.message)
        return _unknown(found)
    return [_pose_degrees(m, len(dets)) for m, dets in zip(marks, found, strict=True)]


def _pose_degrees(marks: FaceLandmarks | None, count: int) -> npt.NDArray[np.float32]:
    if marks is None or marks.pose is None:
        return np.full(count, np.nan, np.float32)
    return marks.pose.max_abs_degrees()


async def assess_quality(
    models: object,
    in_thread: Callable[..., Awaitable[Any]],
    images: Sequence[npt.NDArray[np.uint8]],
    found: Sequence[processing.Detections],
    norms: Sequence[npt.NDArray[np.float32] | None],
    landmarks: Sequence[FaceLandmarks | None],
    thresholds: QualityThresholds,
    timings: Any,
    *,
    pose: bool = True,
    strict_pose: bool = False,
) -> list[FaceQuality]:
    """FaceQuality per image. Pose comes from `landmarks` where they hold it, else, when
    `pose`, from 1k3d68 when Triton serves it (unknown, so not graded, when it does not, when
    `pose` is False, and, unless `strict_pose`, when 1k3d68 fails)."""
    started = time.perf_counter()
    aligned = await asyncio.gather(
        *(
            in_thread(processing.warp_faces, img, dets.kps, ports.RECOGNIZER_INPUT_SIZE_PX)
            for img, dets in zip(images, found, strict=True)
        )
    )
    sharpness = [
        processing.measure_sharpness(
            a.crops_bgr,
            processing.crop_valid_masks(img.shape, a.affines, ports.RECOGNIZER_INPUT_SIZE_PX),
        )
        for img, a in zip(images, aligned, strict=True)
    ]
    timings.add("quality", started)
    if all(m is not None and m.pose is not None for m in landmarks):
        poses = [_pose_degrees(m, len(d)) for m, d in zip(landmarks, found, strict=True)]
    elif pose:
        poses = await _poses(models, in_thread, images, found, timings, strict=strict_pose)
    else:
        poses = _unknown(found)
    return [
        grade_quality(
            norm if norm is not None else np.full(len(dets), np.nan, np.float32),
            processing.box_sizes(dets.boxes),
            sharp,
            pose,
            thresholds,
        )
        for dets, norm, sharp, pose in zip(found, norms, sharpness, poses, strict=True)
    ]
