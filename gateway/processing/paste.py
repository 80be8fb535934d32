"""Blend a swapped face crop back into its photo, as InsightFace's INSwapper.get does.

Upstream (model_zoo/inswapper.py, paste_back=True) warps the crop and a white mask over
the whole frame, thresholds the mask, erodes it, blurs it and alpha-blends. The same
steps and constants run here on the face's bounding region only: every pixel outside it
has a zero mask upstream, so the result is the same while the cost follows the face's
size, not the photo's.

Sampling the region with cv2.warpAffine would move the rounding of its fixed-point
coordinates (a per-row term and a per-column term, rounded apart) and change some pixels
by a few levels. So the region's sampling maps are built with warpAffine's own
fixed-point arithmetic (OpenCV imgwarp.cpp: coordinates in 1/1024 px, rounded to
1/32 px) and handed to cv2.remap, which interpolates exactly as warpAffine does: every
pixel equals upstream's full-frame result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np
import numpy.typing as npt

from gateway.processing._types import BLACK, AnyFloatArray, Float32Array, Float64Array, UInt8Array

# Upstream's constants: mask pixels above 20 count as inside the face; the erosion
# kernel is max(mask_size // 10, 10) square, the Gaussian blur radius
# max(mask_size // 20, 5), mask_size being the geometric mean of the mask's extent.
_MASK_THRESHOLD = 20
_MIN_ERODE_PX = 10
_ERODE_DIVISOR = 10
_MIN_BLUR_RADIUS_PX = 5
_BLUR_DIVISOR = 20

# cv2.warpAffine's fixed point (imgwarp.cpp): positions in 1/1024 px (AB_BITS), bilinear
# weights tabulated in 1/32 px steps (INTER_BITS), half a step added before truncating.
_AB_BITS = 10
_AB_SCALE = 1 << _AB_BITS
_INTER_BITS = 5
_INTER_TAB_SIZE = 1 << _INTER_BITS
_INTER_MASK = _INTER_TAB_SIZE - 1
_ROUND_DELTA = _AB_SCALE // _INTER_TAB_SIZE // 2

SampleT = TypeVar("SampleT", np.uint8, np.float32)


@dataclass(frozen=True)
class _Region:
    """Rows y0:y1 and columns x0:x1 of the photo, half-open."""

    x0: int
    y0: int
    x1: int
    y1: int


def paste_face(
    img_bgr: UInt8Array,
    swapped_bgr: UInt8Array,
    affine: AnyFloatArray,
) -> UInt8Array:
    """Blend `swapped_bgr` back into `img_bgr` where `affine` cropped it from.

    `img_bgr`: uint8 (H, W, 3); `swapped_bgr`: uint8 (S, S, 3), the swapper's output for
    the crop `affine` (2, 3) made (photo pixels to crop pixels, S = 128 for inswapper).
    Returns a new uint8 (H, W, 3) array; `img_bgr` is not modified. A face entirely
    outside the photo (where upstream would fail) leaves it unchanged. Raises ValueError
    for a singular or non-finite affine or a crop that is not uint8 (S, S, 3).
    """
    forward = _validated_affine(affine)
    crop_px = swapped_bgr.shape[0]
    if swapped_bgr.shape != (crop_px, crop_px, 3) or swapped_bgr.dtype != np.uint8:
        raise ValueError(
            f"paste_face needs a uint8 (S, S, 3) crop, got {swapped_bgr.dtype} {swapped_bgr.shape}"
        )
    # Upstream hands warpAffine the inverse, which inverts it back internally; doing the
    # same round trip keeps the sampling positions identical to upstream's.
    inv_affine = _invert_affine(forward)
    forward = _invert_affine(inv_affine)

    result = img_bgr.copy()
    region = _face_region(inv_affine, crop_px, img_bgr.shape[0], img_bgr.shape[1])
    if region is None:
        return result
    maps = _sampling_maps(forward, region)
    face = _remap(swapped_bgr, maps)
    coverage = _remap(np.full((crop_px, crop_px), 255, dtype=np.float32), maps)
    mask = _blend_mask(coverage)
    if mask is None:
        return result

    target = result[region.y0 : region.y1, region.x0 : region.x1].astype(np.float32)
    merged = mask * face + (1 - mask) * target
    # astype truncates, as upstream's does; merged stays within [0, 255].
    result[region.y0 : region.y1, region.x0 : region.x1] = merged.astype(np.uint8)
    return result


def _validated_affine(affine: AnyFloatArray) -> Float64Array:
    forward = np.asarray(affine, dtype=np.float64)
    if forward.shape != (2, 3) or not np.isfinite(forward).all():
        raise ValueError(f"paste_face needs a finite (2, 3) affine, got {forward.shape}")
    if abs(np.linalg.det(forward[:, :2])) < 1e-12:
        raise ValueError("paste_face got a singular affine")
    return forward


def _invert_affine(affine: Float64Array) -> Float64Array:
    return np.asarray(cv2.invertAffineTransform(affine), dtype=np.float64)


def _face_region(inv_affine: Float64Array, crop_px: int, height: int, width: int) -> _Region | None:
    """The photo rectangle that the paste can change, clipped to the photo.

    Bilinear sampling with a zero border reaches one pixel past the crop, so the warped
    crop covers the image of the square (-1, crop_px) under `inv_affine`. Around that the
    region keeps a margin one pixel wider than the largest blur radius the crop's size
    allows: the blurred mask is zero beyond the radius, and the erosion and the blur see
    zeros, not a border, at the region's edge, as they do on the full frame.
    """
    corners = np.array(
        [[-1, -1, 1], [crop_px, -1, 1], [-1, crop_px, 1], [crop_px, crop_px, 1]],
        dtype=np.float64,
    )
    mapped = corners @ inv_affine.T
    lo_x, lo_y = np.floor(mapped.min(axis=0)) - 1
    hi_x, hi_y = np.ceil(mapped.max(axis=0)) + 1
    extent = math.sqrt((hi_x - lo_x) * (hi_y - lo_y))
    margin = max(int(extent) // _BLUR_DIVISOR, _MIN_BLUR_RADIUS_PX) + 2

    x0, y0 = max(int(lo_x) - margin, 0), max(int(lo_y) - margin, 0)
    x1, y1 = min(int(hi_x) + margin + 1, width), min(int(hi_y) + margin + 1, height)
    if x0 >= x1 or y0 >= y1:
        return None
    return _Region(x0=x0, y0=y0, x1=x1, y1=y1)


def _sampling_maps(
    forward: Float64Array, region: _Region
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.uint16]]:
    """cv2.warpAffine's fixed-point source positions for the region's pixels.

    warpAffine (INTER_LINEAR, inverse map `forward`) computes, at destination pixel
    (x, y): round(M0 * x * 1024) + round((M1 * y + M2) * 1024) + 16, shifted right by 5
    to 1/32 px units, and the same for rows with M3, M4, M5. Returns remap's fixed-point
    maps: int16 (h, w, 2) whole source pixels and uint16 (h, w) 32 * y_frac + x_frac.
    """
    xs = np.arange(region.x0, region.x1, dtype=np.float64)
    ys = np.arange(region.y0, region.y1, dtype=np.float64)
    columns_x = np.rint(forward[0, 0] * xs * _AB_SCALE).astype(np.int64)
    columns_y = np.rint(forward[1, 0] * xs * _AB_SCALE).astype(np.int64)
    rows_x = np.rint((forward[0, 1] * ys + forward[0, 2]) * _AB_SCALE).astype(np.int64)
    rows_y = np.rint((forward[1, 1] * ys + forward[1, 2]) * _AB_SCALE).astype(np.int64)
    shift = _AB_BITS - _INTER_BITS
    src_x = (rows_x[:, None] + _ROUND_DELTA + columns_x[None, :]) >> shift
    src_y = (rows_y[:, None] + _ROUND_DELTA + columns_y[None, :]) >> shift

    # warpAffine saturates the whole-pixel part to int16 too.
    limits = np.iinfo(np.int16)
    whole = np.stack([src_x >> _INTER_BITS, src_y >> _INTER_BITS], axis=-1)
    whole = np.clip(whole, limits.min, limits.max).astype(np.int16)
    fraction = (src_y & _INTER_MASK) * _INTER_TAB_SIZE + (src_x & _INTER_MASK)
    return whole, fraction.astype(np.uint16)


def _remap(
    src: npt.NDArray[SampleT], maps: tuple[npt.NDArray[np.int16], npt.NDArray[np.uint16]]
) -> npt.NDArray[SampleT]:
    """Bilinear sampling of `src` at `maps`, zero outside it, as warpAffine samples."""
    whole, fraction = maps
    sampled = cv2.remap(
        src, whole, fraction, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=BLACK
    )
    return np.asarray(sampled, dtype=src.dtype)


def _blend_mask(coverage: Float32Array) -> Float32Array | None:
    """Upstream's feathered mask from the warped white crop: float32 (h, w, 1) in [0, 1].

    None when no pixel is fully inside the face (the face lies outside the photo).
    """
    mask = coverage.copy()
    mask[mask > _MASK_THRESHOLD] = 255
    rows, cols = np.nonzero(mask == 255)
    if rows.size == 0:
        return None
    mask_size = int(math.sqrt(float(rows.max() - rows.min()) * float(cols.max() - cols.min())))
    erode_px = max(mask_size // _ERODE_DIVISOR, _MIN_ERODE_PX)
    mask = np.asarray(cv2.erode(mask, np.ones((erode_px, erode_px), np.uint8)), dtype=np.float32)
    blur_px = 2 * max(mask_size // _BLUR_DIVISOR, _MIN_BLUR_RADIUS_PX) + 1
    mask = np.asarray(cv2.GaussianBlur(mask, (blur_px, blur_px), 0), dtype=np.float32)
    blended: Float32Array = (mask / 255)[:, :, None]
    return blended
