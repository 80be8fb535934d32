"""nms against InsightFace's SCRFD.nms, and the invariant it must keep."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from insightface.model_zoo.scrfd import SCRFD

from gateway.processing import nms


def _insightface_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    # SCRFD.nms reads only self.nms_thresh, so a stand-in object can play `self`.
    dets = np.hstack([boxes, scores[:, None]]).astype(np.float32)
    return [int(i) for i in SCRFD.nms(SimpleNamespace(nms_thresh=iou), dets)]


def _inclusive_iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = w * h
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return float(inter / (area_a + area_b - inter))


def _random_boxes(rng: np.random.Generator, count: int, extent: float) -> np.ndarray:
    corner = rng.uniform(0, extent, (count, 2))
    size = rng.uniform(1, extent / 3, (count, 2))
    return np.hstack([corner, corner + size]).astype(np.float32)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(0, 80),
    extent=st.floats(10, 500),
    iou=st.floats(0.05, 0.95),
    ties=st.booleans(),
)
def test_matches_insightface_and_keeps_no_overlapping_pair(seed, count, extent, iou, ties):
    rng = np.random.default_rng(seed)
    boxes = _random_boxes(rng, count, extent)
    scores = rng.random(count).astype(np.float32)
    if ties:
        scores = np.round(scores, 1)

    keep = nms(boxes, scores, iou)

    assert keep.tolist() == _insightface_nms(boxes, scores, iou)
    assert (np.diff(scores[keep]) <= 0).all()
    for i, a in enumerate(keep):
        for b in keep[i + 1 :]:
            assert _inclusive_iou(boxes[a], boxes[b]) <= iou + 1e-6


def test_every_dropped_box_overlaps_a_kept_higher_scorer():
    rng = np.random.default_rng(7)
    boxes = _random_boxes(rng, 300, 200)
    scores = rng.random(300).astype(np.float32)

    keep = set(nms(boxes, scores, 0.4).tolist())

    assert 0 < len(keep) < 300
    for j in set(range(300)) - keep:
        assert any(
            scores[k] >= scores[j] and _inclusive_iou(boxes[k], boxes[j]) > 0.4 for k in keep
        )


def test_identical_boxes_keep_the_best():
    boxes = np.tile(np.array([[10, 10, 50, 50]], np.float32), (4, 1))
    scores = np.array([0.2, 0.9, 0.5, 0.7], np.float32)

    assert nms(boxes, scores, 0.4).tolist() == [1]


def test_empty_input():
    keep = nms(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), 0.4)

    assert keep.shape == (0,)
    assert keep.dtype == np.intp


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_rows_are_never_kept(bad):
    boxes = np.array([[0, 0, 10, 10], [100, 100, 120, 120], [200, 200, 230, 230]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    nan_score = scores.copy()
    nan_score[0] = bad
    nan_box = boxes.copy()
    nan_box[1, 2] = bad

    assert nms(boxes, nan_score, 0.4).tolist() == [1, 2]
    assert nms(nan_box, scores, 0.4).tolist() == [0, 2]
