"""Face detections and the model-independent steps applied to them after NMS."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gateway.processing._types import Float32Array, IndexArray


@dataclass(frozen=True)
class Detections:
    """Faces found in one image, row i of each array describing face i.

    `boxes`: float32 (N, 4) x1, y1, x2, y2; `scores`: float32 (N,) in [0, 1];
    `kps`: float32 (N, 5, 2) x, y of the eyes, nose tip and mouth corners in the order
    of the ArcFace template (image-left eye first). The coordinate space (detector input
    or original image) is stated by whoever returns it.
    """

    boxes: Float32Array
    scores: Float32Array
    kps: Float32Array

    @classmethod
    def empty(cls) -> Detections:
        """No faces: arrays of shape (0, 4), (0,) and (0, 5, 2)."""
        return cls(
            boxes=np.zeros((0, 4), dtype=np.float32),
            scores=np.zeros((0,), dtype=np.float32),
            kps=np.zeros((0, 5, 2), dtype=np.float32),
        )

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def take(self, indices: IndexArray) -> Detections:
        """The faces at `indices` (int (M,)), in that order."""
        return Detections(
            boxes=self.boxes[indices], scores=self.scores[indices], kps=self.kps[indices]
        )


def rescale_detections(detections: Detections, scale: float) -> Detections:
    """Map detector-input pixels to original-image pixels by dividing by the letterbox scale.

    The letterbox puts the image at the detector frame's origin, so there is no offset.
    """
    return Detections(
        boxes=(detections.boxes / scale).astype(np.float32, copy=False),
        scores=detections.scores,
        kps=(detections.kps / scale).astype(np.float32, copy=False),
    )


def drop_nonfinite(detections: Detections) -> Detections:
    """Drop faces with a NaN or infinite score, box coordinate or landmark.

    A model fed a pathological input can emit them; no later step can use such a face.
    """
    finite = (
        np.isfinite(detections.scores)
        & np.isfinite(detections.boxes).all(axis=1)
        & np.isfinite(detections.kps).all(axis=(1, 2))
    )
    return detections.take(np.flatnonzero(finite))


def by_descending_score(detections: Detections) -> Detections:
    """The faces in descending score; a stable sort, so equal scores keep their order.

    What every facegate answer lists faces in, after select_faces' prominence order.
    """
    return detections.take(np.argsort(-detections.scores, kind="stable"))


def select_faces(
    detections: Detections,
    image_shape: tuple[int, ...],
    max_faces: int = 0,
    min_size_px: float = 0.0,
) -> Detections:
    """Drop small faces, then keep the `max_faces` most prominent ones (0 keeps all).

    `detections` and `min_size_px` are in original-image pixels; `image_shape` is the
    original image's (H, W, ...). A face is small when min(x2 - x1, y2 - y1) < min_size_px;
    this runs first so that small faces do not take places from the max_faces budget.

    Prominence is InsightFace's SCRFD.detect rule: box area minus twice the squared
    distance from the box centre to the image centre (H // 2, W // 2). As upstream, faces
    are reordered by descending prominence only when there are more than max_faces;
    otherwise they keep their incoming order (descending score after NMS).
    """
    boxes = detections.boxes
    if min_size_px > 0:
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        detections = detections.take(np.flatnonzero(sides >= min_size_px))
        boxes = detections.boxes
    if max_faces <= 0 or len(detections) <= max_faces:
        return detections

    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    centre_y, centre_x = image_shape[0] // 2, image_shape[1] // 2
    offset_x = (boxes[:, 0] + boxes[:, 2]) / 2 - centre_x
    offset_y = (boxes[:, 1] + boxes[:, 3]) / 2 - centre_y
    # The factor 2 is upstream's "extra weight on the centering".
    prominence = area - 2.0 * (offset_x**2 + offset_y**2)
    # Reversing an ascending argsort (not a stable descending sort) reproduces upstream's
    # order among equal values too.
    order = np.argsort(prominence)[::-1][:max_faces]
    return detections.take(order)
