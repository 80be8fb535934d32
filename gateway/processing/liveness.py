"""Liveness: insightface 2.1's liveness addon crop, input gate and decision, as pure functions.

The addon (insightface/addons/liveness.py) aligns the five landmarks to its own 80x80
template with a least-squares similarity, refuses a face whose crop would take more than
30% of its area from outside the image (it returns a reason instead of a score), crops with
bilinear sampling and replicated borders, and calls the model's output the live probability:
live when score >= threshold (0.8 by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from gateway.processing._types import AnyFloatArray, Float32Array, UInt8Array
from gateway.processing.align import estimate_similarity

LIVENESS_SIZE_PX = 80
# The addon's DESTINATION_LANDMARKS: eyes, nose tip, mouth corners in the 80x80 crop.
LIVENESS_TEMPLATE_80 = np.array(
    [[32.03, 38.06], [47.89, 37.98], [40.01, 47.08], [33.50, 56.36], [46.63, 56.29]],
    dtype=np.float32,
)
LIVENESS_TEMPLATE_80.flags.writeable = False
DEFAULT_LIVENESS_THRESHOLD = 0.8
MAX_OUT_OF_BOUNDS_RATIO = 0.30
OUT_OF_BOUNDS_REASON = (
    "Insufficient image area around the face for liveness detection. "
    "Move the face toward the center, step back from the camera, "
    "or use a less tightly cropped image."
)


@dataclass(frozen=True)
class LivenessCrops:
    """Per face: uint8 BGR (N, 80, 80, 3) crops and the share of each crop outside the image.

    `out_of_bounds` float64 (N,) in [0, 1]; 1.0 where the landmarks admit no alignment.
    """

    crops_bgr: UInt8Array
    out_of_bounds: npt.NDArray[np.float64]

    @property
    def accepted(self) -> npt.NDArray[np.bool_]:
        """Faces the addon would score (at most 30% of the crop outside the image)."""
        return self.out_of_bounds <= MAX_OUT_OF_BOUNDS_RATIO


@dataclass(frozen=True)
class LivenessResult:
    """Liveness per face: `scores` float32 (N,), NaN where the input was rejected."""

    scores: Float32Array
    threshold: float

    @property
    def rejected(self) -> npt.NDArray[np.bool_]:
        return np.isnan(self.scores)

    @property
    def is_live(self) -> npt.NDArray[np.bool_]:
        """score >= threshold (False where rejected: check `rejected` first)."""
        with np.errstate(invalid="ignore"):
            return self.scores >= self.threshold


def crop_liveness_faces(img_bgr: UInt8Array, kps: AnyFloatArray) -> LivenessCrops:
    """Align every face (`kps` (N, 5, 2) in image pixels) to the addon's 80x80 template."""
    size = LIVENESS_SIZE_PX
    crops = np.zeros((len(kps), size, size, 3), np.uint8)
    out_of_bounds = np.ones(len(kps), np.float64)
    ones = np.ones(img_bgr.shape[:2], np.float32)
    for index, face_kps in enumerate(np.asarray(kps, np.float32)):
        try:
            matrix = estimate_similarity(face_kps, LIVENESS_TEMPLATE_80)
        except ValueError:
            continue  # degenerate landmarks: no alignment, so no score (rejected)
        if not np.isfinite(matrix).all() or np.linalg.det(matrix[:, :2]) <= 0:
            continue
        valid = cv2.warpAffine(
            ones, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
        )
        out_of_bounds[index] = float(np.clip(1.0 - np.mean(valid), 0.0, 1.0))
        crops[index] = cv2.warpAffine(
            img_bgr, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    return LivenessCrops(crops, out_of_bounds)


def liveness_result(
    crops: LivenessCrops, accepted_scores: AnyFloatArray, threshold: float
) -> LivenessResult:
    """Scores of all faces from the model's scores of the accepted ones (in order)."""
    scores = np.full(len(crops.out_of_bounds), np.nan, np.float32)
    scores[crops.accepted] = np.asarray(accepted_scores, np.float32).reshape(-1)
    return LivenessResult(scores, float(threshold))
