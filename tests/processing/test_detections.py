"""Detections helpers: rescaling, non-finite filtering and face selection."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gateway.processing import Detections, drop_nonfinite, rescale_detections, select_faces


def _detections(boxes: list[list[float]], scores: list[float] | None = None) -> Detections:
    box_array = np.array(boxes, np.float32).reshape(-1, 4)
    count = len(box_array)
    kps = np.repeat(box_array[:, None, :2], 5, axis=1)
    score_array = np.linspace(0.9, 0.5, count) if scores is None else np.array(scores)
    return Detections(boxes=box_array, scores=score_array.astype(np.float32), kps=kps)


def test_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Detections.empty().boxes = np.zeros((1, 4), np.float32)  # type: ignore[misc]


def test_rescale_divides_boxes_and_kps_only():
    dets = _detections([[10, 20, 30, 40]])

    scaled = rescale_detections(dets, 0.5)

    np.testing.assert_array_equal(scaled.boxes, [[20, 40, 60, 80]])
    np.testing.assert_array_equal(scaled.kps, dets.kps * 2)
    np.testing.assert_array_equal(scaled.scores, dets.scores)
    assert scaled.boxes.dtype == scaled.kps.dtype == np.float32


def test_drop_nonfinite():
    dets = _detections([[0, 0, 1, 1], [0, 0, np.nan, 1], [0, 0, 2, 2]], [0.9, 0.8, np.inf])

    kept = drop_nonfinite(dets)

    np.testing.assert_array_equal(kept.boxes, [[0, 0, 1, 1]])


def test_select_min_size_uses_the_shorter_side():
    dets = _detections([[0, 0, 50, 10], [0, 0, 20, 20], [0, 0, 19.5, 100]])

    kept = select_faces(dets, (100, 100, 3), min_size_px=20)

    np.testing.assert_array_equal(kept.boxes, [[0, 0, 20, 20]])


def test_select_prefers_large_central_faces():
    # A large centred face, a larger face in the corner, a small centred face.
    dets = _detections([[40, 40, 60, 60], [0, 0, 30, 30], [48, 48, 52, 52]])

    kept = select_faces(dets, (100, 100, 3), max_faces=2)

    # Values: 400 - 0, 900 - 2 * (35**2 * 2) = -4000, 16 - 0.
    np.testing.assert_array_equal(kept.boxes, [[40, 40, 60, 60], [48, 48, 52, 52]])


def test_select_keeps_order_when_within_budget():
    dets = _detections([[48, 48, 52, 52], [40, 40, 60, 60]])

    assert select_faces(dets, (100, 100), max_faces=2) is dets
    assert select_faces(dets, (100, 100), max_faces=0) is dets


def test_select_uses_integer_image_centre():
    # Centre (h // 2, w // 2) = (50, 50) for a 101x101 image, not 50.5.
    dets = _detections([[40, 40, 60, 60], [41, 41, 61, 61]])

    kept = select_faces(dets, (101, 101), max_faces=1)

    np.testing.assert_array_equal(kept.boxes, [[40, 40, 60, 60]])
