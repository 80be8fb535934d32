"""Similarity alignment of faces to InsightFace's ArcFace 5-point template."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gateway.processing._types import BLACK, AnyFloatArray, Float32Array, Float64Array, UInt8Array

# InsightFace's arcface_dst (utils/face_align.py): where the left eye, right eye, nose
# tip and mouth corners land in a 112x112 ArcFace crop. Kept float32 as upstream keeps it,
# so scaled templates round the same way.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
ARCFACE_TEMPLATE_112.flags.writeable = False


@dataclass(frozen=True)
class AlignedFaces:
    """Aligned crops and the affines that made them.

    `crops_bgr`: uint8 (N, size_px, size_px, 3); `affines`: float64 (N, 2, 3), each
    mapping original-image pixels to its crop's pixels.
    """

    crops_bgr: UInt8Array
    affines: Float64Array


def template_for(size_px: int) -> Float32Array:
    """The ArcFace template for a size_px crop: float32 (5, 2) x, y in crop pixels.

    As InsightFace's estimate_norm: multiples of 112 scale the 112 template; multiples of
    128 (the swapper's crop) scale it by size_px / 128 and shift it right by 8 * that
    ratio, which centres the 112 layout in the wider crop. 112 takes precedence.
    """
    if size_px > 0 and size_px % 112 == 0:
        ratio, shift_x = size_px / 112.0, 0.0
    elif size_px > 0 and size_px % 128 == 0:
        ratio = size_px / 128.0
        shift_x = 8.0 * ratio
    else:
        raise ValueError(f"crop size {size_px} is not a multiple of 112 or 128")
    template = ARCFACE_TEMPLATE_112 * ratio
    template[:, 0] += shift_x
    return template


def estimate_affine(kps: AnyFloatArray, size_px: int = 112) -> Float64Array:
    """Least-squares similarity from a face's landmarks to the size_px ArcFace template.

    `kps`: (5, 2) x, y in original-image pixels. Returns float64 (2, 3) mapping
    original-image pixels to crop pixels: rotation, uniform scale and translation, no
    reflection (Umeyama's estimate, as skimage's SimilarityTransform computes upstream).
    Raises ValueError when the landmarks all coincide or are not finite.
    """
    return _fit_similarity(np.asarray(kps, dtype=np.float64), template_for(size_px))


def estimate_similarity(kps: AnyFloatArray, template: AnyFloatArray) -> Float64Array:
    """Least-squares similarity from `kps` (5, 2) to any `template` (5, 2): float64 (2, 3).

    estimate_affine with another model's template (e.g. the liveness addon's 80 px one).
    """
    return _fit_similarity(np.asarray(kps, dtype=np.float64), np.asarray(template))


def warp_face(img_bgr: UInt8Array, affine: AnyFloatArray, size_px: int) -> UInt8Array:
    """Crop a face with `affine` (2, 3): uint8 (size_px, size_px, 3), black outside the image.

    Bilinear, as InsightFace's norm_crop, so crops match upstream pixel for pixel.
    """
    crop = cv2.warpAffine(
        img_bgr, np.asarray(affine, dtype=np.float64), (size_px, size_px), borderValue=BLACK
    )
    return np.asarray(crop, dtype=np.uint8)


def warp_faces(img_bgr: UInt8Array, kps: AnyFloatArray, size_px: int = 112) -> AlignedFaces:
    """Align every face of one image: `kps` (N, 5, 2) in original-image pixels."""
    affines = np.zeros((len(kps), 2, 3), dtype=np.float64)
    crops_bgr = np.zeros((len(kps), size_px, size_px, 3), dtype=np.uint8)
    for i, face_kps in enumerate(kps):
        affines[i] = estimate_affine(face_kps, size_px)
        crops_bgr[i] = warp_face(img_bgr, affines[i], size_px)
    return AlignedFaces(crops_bgr=crops_bgr, affines=affines)


def _fit_similarity(src: Float64Array, dst: AnyFloatArray) -> Float64Array:
    """Umeyama's least-squares similarity src -> dst for 2-D points, in closed form.

    In 2-D a rotation with uniform scale is multiplication by one complex number a + ib,
    so the optimum is a + ib = sum(conj(p) * q) / sum(|p|^2) over the centred points p, q.
    This equals Umeyama's SVD solution, including its reflection correction: the
    complex form cannot express a reflection.
    """
    dst = dst.astype(np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    p, q = src - src_mean, dst - dst_mean
    spread = float((p**2).sum())
    if not spread > 0.0:
        raise ValueError("cannot align a face whose landmarks coincide or are not finite")
    a = float((p[:, 0] * q[:, 0] + p[:, 1] * q[:, 1]).sum()) / spread
    b = float((p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum()) / spread
    linear = np.array([[a, -b], [b, a]])
    translation = dst_mean - linear @ src_mean
    return np.hstack([linear, translation[:, None]])
