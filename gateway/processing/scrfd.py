"""Decode SCRFD's raw head outputs into faces (post-processing: gateway.processing.multiscale)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from gateway.processing._types import AnyFloatArray, Float32Array
from gateway.processing.detections import Detections

# The feature-pyramid strides and anchors per cell of InsightFace's SCRFD models with
# keypoints (det_10g, det_2.5g, det_500m), and the input size of its model packs.
SCRFD_STRIDES = (8, 16, 32)
SCRFD_ANCHORS_PER_CELL = 2
SCRFD_INPUT_SIZE_PX = 640


@lru_cache(maxsize=32)
def anchor_centres(input_size_px: int, stride: int, anchors_per_cell: int) -> Float32Array:
    """Anchor centres of one pyramid level, in the order of the head's output rows.

    Returns read-only float32 (K, 2) x, y in detector-input pixels, K = (input_size_px //
    stride) ** 2 * anchors_per_cell: cells row-major (y, then x), each centre repeated
    anchors_per_cell times in a row. SCRFD puts a cell's anchor at its top-left corner
    (x * stride, y * stride), without a half-cell offset.
    """
    cells = input_size_px // stride
    ys, xs = np.mgrid[:cells, :cells]
    centres = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    centres = np.repeat(centres, anchors_per_cell, axis=0)
    # Cached and shared between calls: nobody may write to it.
    centres.flags.writeable = False
    return centres


def decode_scrfd(
    scores: Sequence[AnyFloatArray],
    bbox_dists: Sequence[AnyFloatArray],
    kps_dists: Sequence[AnyFloatArray],
    strides: Sequence[int],
    input_size_px: int,
    threshold: float,
    anchors_per_cell: int = SCRFD_ANCHORS_PER_CELL,
) -> Detections:
    """Turn one image's SCRFD outputs into the faces scoring at least `threshold`.

    Each argument holds one array per stride, in the order of `strides`: scores (K, 1) or
    (K,), box distances (K, 4) as left, top, right, bottom, and keypoint offsets (K, 10)
    as x, y pairs, all distances in units of the stride. Returns Detections in
    detector-input pixels (input_size_px square), concatenated over strides in anchor
    order, not sorted. NaN scores count as below the threshold.
    """
    if not len(scores) == len(bbox_dists) == len(kps_dists) == len(strides):
        raise ValueError(
            f"SCRFD outputs: got {len(scores)} score, {len(bbox_dists)} box and "
            f"{len(kps_dists)} keypoint arrays for {len(strides)} strides"
        )
    levels = [
        _decode_level(s, b, k, stride, input_size_px, threshold, anchors_per_cell)
        for s, b, k, stride in zip(scores, bbox_dists, kps_dists, strides, strict=True)
    ]
    return Detections(
        boxes=np.concatenate([level.boxes for level in levels]),
        scores=np.concatenate([level.scores for level in levels]),
        kps=np.concatenate([level.kps for level in levels]),
    )


def _decode_level(
    scores: AnyFloatArray,
    bbox_dists: AnyFloatArray,
    kps_dists: AnyFloatArray,
    stride: int,
    input_size_px: int,
    threshold: float,
    anchors_per_cell: int,
) -> Detections:
    centres = anchor_centres(input_size_px, stride, anchors_per_cell)
    count = centres.shape[0]
    if scores.size != count or bbox_dists.size != count * 4 or kps_dists.size != count * 10:
        raise ValueError(
            f"SCRFD stride {stride} at {input_size_px}px expects {count} anchors; got "
            f"score {scores.shape}, box {bbox_dists.shape}, keypoint {kps_dists.shape}"
        )
    level_scores = np.asarray(scores, dtype=np.float32).reshape(count)
    # NaN >= threshold is False, so NaN scores drop out here.
    keep = np.flatnonzero(level_scores >= threshold)
    kept_centres = centres[keep]
    dists = np.asarray(bbox_dists, dtype=np.float32).reshape(count, 4)[keep] * stride
    offsets = np.asarray(kps_dists, dtype=np.float32).reshape(count, 5, 2)[keep] * stride
    boxes = np.concatenate([kept_centres - dists[:, :2], kept_centres + dists[:, 2:]], axis=1)
    return Detections(
        boxes=boxes, scores=level_scores[keep], kps=kept_centres[:, None, :] + offsets
    )
