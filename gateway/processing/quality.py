"""Face quality for recognition: measurements per face and the low/medium/high grade.

Components (docs/QUALITY.md says how each moves identification and where the bounds come from):
- `size`: the detection box's shorter side in image pixels;
- `sharpness`: variance of the 3x3 Laplacian of the grey (BT.601) 112x112 ArcFace crop after
  a sigma-1 Gaussian, over its inner 96x96 where the crop lies inside the image (the warp's
  black fill is masked out);
- `pose`: max(|yaw|, |pitch|) in degrees, when head pose is known (1k3d68 served);
- `norm`: the recognizer's raw embedding norm, reported but not graded: its scale belongs to
  the recognizer file, and on the modelled set it ranks faces no better than size and
  sharpness together.
A face is `high` when every graded component meets the high bound, else `medium` when every
one meets the medium bound, else `low`. A component that is not known (pose) is not graded.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gateway.processing._types import AnyFloatArray, Float32Array, UInt8Array

QUALITY_LEVELS = ("low", "medium", "high")
GRADED_COMPONENTS = ("size", "sharpness", "pose")
# The crop's inner square that sharpness reads (the 112 px crop less 8 px each side).
_SHARPNESS_MARGIN_PX = 8
# The Gaussian smoothing before the Laplacian: noise of sigma 3 grey levels no longer lifts a
# blurred face (docs/QUALITY.md).
SHARPNESS_SIGMA = 1.0
# Pixels within this distance of the warp's border are not read: the smoothing (radius 4 at
# sigma 1) and the Laplacian (1) would see the black fill's edge.
_VALID_ERODE_PX = 5
# Below this share of the inner square inside the image, sharpness is not measured (0).
MIN_VALID_SHARE = 0.25


@dataclass(frozen=True)
class QualityBounds:
    """What one level requires: shorter box side, sharpness at least; pose at most (degrees)."""

    min_size_px: float
    min_sharpness: float
    max_pose_deg: float


@dataclass(frozen=True)
class QualityThresholds:
    """Bounds of the medium and high levels (anything else is low)."""

    medium: QualityBounds
    high: QualityBounds

    def bounds(self, level: str) -> QualityBounds | None:
        """The bounds a face must meet to be at least `level` (None for "low")."""
        return {"medium": self.medium, "high": self.high}.get(level)


@dataclass(frozen=True)
class FaceQuality:
    """Per-face measurements (N,) float32 and grades; `pose` NaN where pose is unknown."""

    norm: Float32Array
    size: Float32Array
    sharpness: Float32Array
    pose: Float32Array
    levels: tuple[str, ...]


def crop_valid_masks(
    image_shape: tuple[int, ...], affines: AnyFloatArray, size_px: int
) -> UInt8Array:
    """(N, size_px, size_px) uint8: 1 where an aligned crop's pixel comes from inside the
    image (the same affines as the crops), 0 where the warp filled it with its black border."""
    inside = np.ones(image_shape[:2], np.uint8)
    masks = np.zeros((len(affines), size_px, size_px), np.uint8)
    for index, affine in enumerate(np.asarray(affines, np.float64).reshape(-1, 2, 3)):
        masks[index] = cv2.warpAffine(
            inside,
            affine,
            (size_px, size_px),
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0.0, 0.0, 0.0, 0.0),
        )
    return masks


def measure_sharpness(crops_bgr: UInt8Array, valid: UInt8Array | None = None) -> Float32Array:
    """Sharpness (N,) float32 of (N, 112, 112, 3) uint8 BGR aligned crops: the variance of
    the 3x3 Laplacian of the grey crop smoothed by a Gaussian (sigma SHARPNESS_SIGMA, so that
    pixel noise does not pass for detail), over the inner 96x96 where the crop lies inside
    the image (`valid` from crop_valid_masks, eroded so the black border's edge is not read;
    None: all inside). A crop with under MIN_VALID_SHARE of that square inside the image
    measures 0 (it cannot be graded above low)."""
    out = np.zeros(len(crops_bgr), np.float32)
    m = _SHARPNESS_MARGIN_PX
    size = crops_bgr.shape[1] if crops_bgr.ndim == 4 else 0
    inner = np.zeros((size, size), bool)
    inner[m:-m, m:-m] = True
    kernel = np.ones((2 * _VALID_ERODE_PX + 1,) * 2, np.uint8)
    for index, crop in enumerate(crops_bgr):
        selected = inner
        if valid is not None:
            inside = cv2.erode(
                valid[index], kernel, borderType=cv2.BORDER_CONSTANT, borderValue=(1.0,)
            )
            selected = inner & (inside > 0)
        if selected.sum() < MIN_VALID_SHARE * inner.sum():
            continue
        grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
        smooth = cv2.GaussianBlur(grey, (0, 0), SHARPNESS_SIGMA)
        out[index] = float(cv2.Laplacian(smooth, cv2.CV_32F, ksize=1)[selected].var())
    return out


def box_sizes(boxes: AnyFloatArray) -> Float32Array:
    """Shorter side (N,) float32 of xyxy `boxes` (N, 4)."""
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    sizes: Float32Array = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]).astype(np.float32)
    return sizes


def failed_components(
    size: float, sharpness: float, pose: float, bounds: QualityBounds
) -> list[str]:
    """The components of one face that miss `bounds` (pose NaN: not graded)."""
    failed = []
    if size < bounds.min_size_px:
        failed.append("size")
    if sharpness < bounds.min_sharpness:
        failed.append("sharpness")
    if not np.isnan(pose) and pose > bounds.max_pose_deg:
        failed.append("pose")
    return failed


def grade_quality(
    norm: AnyFloatArray,
    size: AnyFloatArray,
    sharpness: AnyFloatArray,
    pose: AnyFloatArray,
    thresholds: QualityThresholds,
) -> FaceQuality:
    """FaceQuality of N faces from their measurements (pose NaN where unknown)."""
    norms, sizes, sharps, poses = (
        np.asarray(v, np.float32).reshape(-1) for v in (norm, size, sharpness, pose)
    )
    levels = []
    for s, sharp, p in zip(sizes, sharps, poses, strict=True):
        level = "low"
        for name in ("medium", "high"):
            bounds = thresholds.bounds(name)
            assert bounds is not None
            if failed_components(float(s), float(sharp), float(p), bounds):
                break
            level = name
        levels.append(level)
    return FaceQuality(norms, sizes, sharps, poses, tuple(levels))


def meets_quality(level: str, minimum: str) -> bool:
    """Whether a face graded `level` satisfies `minimum` (both in QUALITY_LEVELS)."""
    return QUALITY_LEVELS.index(level) >= QUALITY_LEVELS.index(minimum)
