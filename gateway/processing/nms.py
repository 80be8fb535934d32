"""Greedy non-maximum suppression with InsightFace's pixel-inclusive box convention."""

from __future__ import annotations

import numpy as np

from gateway.processing._types import AnyFloatArray, IndexArray


def nms(boxes: AnyFloatArray, scores: AnyFloatArray, iou_threshold: float) -> IndexArray:
    """Indices of the boxes that survive greedy NMS, highest score first.

    `boxes`: (N, 4) xyxy; `scores`: (N,). Returns int (K,) indices into them. A box is
    suppressed when its IoU with a kept, higher-scoring box exceeds `iou_threshold`.
    Widths and heights count both end pixels (x2 - x1 + 1), as in InsightFace's
    SCRFD.nms, so results match upstream. Rows with a non-finite score or coordinate are
    never kept.
    """
    finite = np.isfinite(scores) & np.isfinite(boxes).all(axis=1)
    # Arithmetic stays in the boxes' dtype (float32 from the detector), as upstream's does,
    # so IoUs at the threshold round the same way.
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    # A stable descending sort: insightface 2.1's SCRFD.nms orders ties this way (0.7.3
    # reversed an ascending argsort, which put the later of two equal scores first).
    order = np.argsort(-scores, kind="stable")
    order = order[finite[order]]

    keep: list[int] = []
    while order.size > 0:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        inter_w = np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1
        inter_h = np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1
        inter = np.maximum(0.0, inter_w) * np.maximum(0.0, inter_h)
        # Degenerate boxes can make the union 0; the NaN IoU then fails the test below and
        # suppresses the box, which is what upstream does too.
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = inter / (areas[best] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)
