"""Dense landmarks and head pose per face: insightface's Landmark on 2d106det and 1k3d68."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway import ports, processing
from gateway.errors import UpstreamUnavailable
from gateway.ports import LandmarkModels

LANDMARKS_HOW_TO_INSTALL = (
    "dense landmarks and head pose need insightface's landmark models (2d106det.onnx for the "
    "106 2-D points, 1k3d68.onnx for the 68 3-D points and pose), which this Triton does not "
    "serve: `facegate models fetch` or `facegate models import DIR` with a buffalo_l/buffalo_s "
    "folder installs them, `facegate models install landmark_2d_106|landmark_3d_68 FILE` adds "
    "one (`facegate models synthetic` for tests), then restart Triton (Helm: "
    "models.optional; compose: FACEGATE_TRITON_OPTIONAL_MODELS)"
)


@dataclass(frozen=True)
class FaceLandmarks:
    """Per-image landmark results; each field None when not asked for.

    `points_2d` float32 (N, 106, 2) and `points_3d` (N, 68, 3) in original-image pixels.
    """

    points_2d: npt.NDArray[np.float32] | None
    points_3d: npt.NDArray[np.float32] | None
    pose: processing.HeadPose | None


async def estimate_landmarks(
    models: object,
    in_thread: Callable[..., Awaitable[Any]],
    images: Sequence[npt.NDArray[np.uint8]],
    found: Sequence[processing.Detections],
    timings: Any,
    *,
    dense: bool,
    pose: bool,
) -> list[FaceLandmarks]:
    """FaceLandmarks per image: 106 2-D points when `dense`, 68 3-D points when `dense`, head
    pose when `pose` (from the 3-D points); one batched call per model for all faces.

    Raises UpstreamUnavailable (503) saying what to install when a model it needs is not served
    (asked of the model status first: no failing inference); an inference that fails raises
    its own error (Triton restarting: 503 with a short Retry-After, a timeout: 504).
    """
    if not isinstance(models, LandmarkModels):
        raise UpstreamUnavailable(LANDMARKS_HOW_TO_INSTALL)
    served_2d, served_3d = await models.landmarks_served()
    missing = [
        name
        for name, needed, served in (
            ("2d106det", dense, served_2d),
            ("1k3d68", dense or pose, served_3d),
        )
        if needed and not served
    ]
    if missing:
        raise UpstreamUnavailable(
            f"{LANDMARKS_HOW_TO_INSTALL} (not served: {', '.join(missing)})",
            retry_after_s=60,
        )
    size = ports.LANDMARK_INPUT_SIZE_PX
    started = time.perf_counter()
    crops = await asyncio.gather(
        *(
            in_thread(processing.crop_landmark_faces, img, dets.boxes, size)
            for img, dets in zip(images, found, strict=True)
        )
    )
    timings.add("landmark_crop", started)
    counts = [len(dets) for dets in found]
    batch = np.concatenate([c.crops_bgr for c in crops])
    affines = np.concatenate([c.affines for c in crops])
    total = sum(counts)
    raw_2d: npt.NDArray[np.float32] | None = None
    raw_3d: npt.NDArray[np.float32] | None = None
    if dense and total:
        started = time.perf_counter()
        raw_2d = await models.landmarks_2d106(batch)
        timings.add("landmark_2d_106", started)
    if (dense or pose) and total:
        started = time.perf_counter()
        raw_3d = await models.landmarks_3d68(batch)
        timings.add("landmark_3d_68", started)
    started = time.perf_counter()
    points_2d = points_3d = None
    head_pose = None
    if dense:
        raw = raw_2d if raw_2d is not None else np.zeros((0, ports.LANDMARK_2D106_VALUES))
        points_2d = processing.decode_landmarks_2d106(raw, affines, size).points
    if dense or pose:
        raw = raw_3d if raw_3d is not None else np.zeros((0, ports.LANDMARK_3D68_VALUES))
        points_3d = processing.decode_landmarks_3d68(raw, affines, size).points
        if pose:
            head_pose = processing.estimate_pose(points_3d)
    timings.add("landmark_decode", started)
    bounds = list(itertools.pairwise(np.cumsum([0, *counts])))
    return [
        FaceLandmarks(
            points_2d[lo:hi] if points_2d is not None else None,
            points_3d[lo:hi] if dense and points_3d is not None else None,
            _pose_slice(head_pose, lo, hi),
        )
        for lo, hi in bounds
    ]


def _pose_slice(pose: processing.HeadPose | None, lo: int, hi: int) -> processing.HeadPose | None:
    if pose is None:
        return None
    return processing.HeadPose(pose.pitch[lo:hi], pose.yaw[lo:hi], pose.roll[lo:hi])
