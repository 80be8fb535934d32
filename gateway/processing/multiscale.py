"""Detection at several input sizes, merged as InsightFace 2.1's SCRFD.detect merges them.

insightface 2.1 letterboxes the image to each detector size in turn (FaceAnalysis' default
is 128x128 then 640x640), keeps each pass's candidates at or above the threshold in
original-image pixels, stacks them in the order of the sizes, sorts them by descending score
(stable, so a tie keeps the earlier size's candidate first) and runs one NMS over them all.
A face that fills the frame is too large for every anchor at 640 but fits the stride-32
anchors at 128; small faces are found at 640 only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gateway.processing._types import AnyFloatArray
from gateway.processing.detections import (
    Detections,
    drop_nonfinite,
    rescale_detections,
    select_faces,
)
from gateway.processing.nms import nms
from gateway.processing.scrfd import (
    SCRFD_ANCHORS_PER_CELL,
    SCRFD_INPUT_SIZE_PX,
    SCRFD_STRIDES,
    decode_scrfd,
)

# The sizes of insightface 2.1's FaceAnalysis (DEFAULT_DET_SIZES), smallest first: the order
# decides which candidate comes first among equal scores.
DEFAULT_DET_SIZES_PX = (128, 640)
# SCRFD's coarsest stride: an input side that is not a multiple of it gives the head a
# feature map that anchor_centres (floor division, as upstream) does not cover.
DET_SIZE_STEP_PX = 32


@dataclass(frozen=True)
class DetectorPass:
    """The raw SCRFD outputs of one letterboxed frame at one input size.

    scores (K, 1), bbox_dists (K, 4) and kps_dists (K, 10) per stride, K the anchor count of
    that stride at `input_size_px`; `scale` is the letterbox scale (frame px / image px).
    """

    scores: Sequence[AnyFloatArray]
    bbox_dists: Sequence[AnyFloatArray]
    kps_dists: Sequence[AnyFloatArray]
    input_size_px: int
    scale: float


def parse_det_sizes(text: str, max_sizes: int = 4, max_size_px: int = 1920) -> tuple[int, ...]:
    """Detector sizes from "640" or "128,640": distinct multiples of 32, in the given order.

    Raises ValueError with a message that says what is accepted.
    """
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("det_sizes is empty: give one or more sizes, e.g. 640 or 128,640")
    sizes: list[int] = []
    for part in parts:
        if not part.isdigit():
            raise ValueError(f"det_sizes: {part!r} is not a whole number of pixels")
        size = int(part)
        if size < DET_SIZE_STEP_PX or size > max_size_px or size % DET_SIZE_STEP_PX:
            raise ValueError(
                f"det_sizes: {size} must be a multiple of {DET_SIZE_STEP_PX} "
                f"between {DET_SIZE_STEP_PX} and {max_size_px}"
            )
        if size not in sizes:  # upstream drops repeated sizes too
            sizes.append(size)
    if len(sizes) > max_sizes:
        raise ValueError(f"det_sizes: at most {max_sizes} sizes, got {len(sizes)}")
    return tuple(sizes)


def candidates_of_pass(
    detector_pass: DetectorPass,
    threshold: float,
    strides: Sequence[int] = SCRFD_STRIDES,
    anchors_per_cell: int = SCRFD_ANCHORS_PER_CELL,
) -> Detections:
    """One pass's faces at or above `threshold`, in original-image pixels, descending score.

    Faces with a non-finite value are dropped; the sort is stable, as upstream's.
    """
    detections = decode_scrfd(
        detector_pass.scores,
        detector_pass.bbox_dists,
        detector_pass.kps_dists,
        strides,
        detector_pass.input_size_px,
        threshold,
        anchors_per_cell,
    )
    detections = drop_nonfinite(rescale_detections(detections, detector_pass.scale))
    return detections.take(np.argsort(-detections.scores, kind="stable"))


def merge_passes(
    passes: Sequence[DetectorPass],
    image_shape: tuple[int, ...],
    threshold: float,
    nms_iou: float,
    max_faces: int = 0,
    min_size_px: float = 0.0,
    *,
    strides: Sequence[int] = SCRFD_STRIDES,
    anchors_per_cell: int = SCRFD_ANCHORS_PER_CELL,
) -> Detections:
    """insightface 2.1's SCRFD.detect after the forward passes, for one image.

    `passes` in the order of the requested sizes; `image_shape` is the original image's
    (H, W, ...). Returns Detections in original-image pixels: every pass's candidates
    stacked, stable-sorted by descending score, one NMS at `nms_iou` (pixel-inclusive IoU),
    then select_faces' `min_size_px` and `max_faces`.
    """
    found = [candidates_of_pass(p, threshold, strides, anchors_per_cell) for p in passes]
    if not found:
        return Detections.empty()
    detections = Detections(
        boxes=np.concatenate([d.boxes for d in found]),
        scores=np.concatenate([d.scores for d in found]),
        kps=np.concatenate([d.kps for d in found]),
    )
    detections = detections.take(np.argsort(-detections.scores, kind="stable"))
    detections = detections.take(nms(detections.boxes, detections.scores, nms_iou))
    return select_faces(detections, image_shape, max_faces=max_faces, min_size_px=min_size_px)


def postprocess_detections(
    scores: Sequence[AnyFloatArray],
    bbox_dists: Sequence[AnyFloatArray],
    kps_dists: Sequence[AnyFloatArray],
    scale: float,
    image_shape: tuple[int, ...],
    threshold: float,
    nms_iou: float = 0.4,
    max_faces: int = 0,
    min_size_px: float = 0.0,
    *,
    strides: Sequence[int] = SCRFD_STRIDES,
    input_size_px: int = SCRFD_INPUT_SIZE_PX,
    anchors_per_cell: int = SCRFD_ANCHORS_PER_CELL,
) -> Detections:
    """InsightFace's SCRFD.detect after the forward pass, for one letterboxed image.

    Inputs are decode_scrfd's, plus the letterbox `scale` and the original image's
    `image_shape` (H, W, ...). Returns Detections in original-image pixels: faces with a
    non-finite value dropped, NMS at `nms_iou` (pixel-inclusive IoU, as upstream), then
    select_faces' `min_size_px` and `max_faces`. Order is upstream's: descending score,
    or descending prominence when more than max_faces faces were found. This is
    merge_passes with a single pass.
    """
    detector_pass = DetectorPass(scores, bbox_dists, kps_dists, input_size_px, scale)
    return merge_passes(
        [detector_pass],
        image_shape,
        threshold,
        nms_iou,
        max_faces,
        min_size_px,
        strides=strides,
        anchors_per_cell=anchors_per_cell,
    )
