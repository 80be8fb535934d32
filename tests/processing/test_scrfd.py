"""SCRFD decoding and post-processing against InsightFace's SCRFD."""

from __future__ import annotations

import numpy as np
import pytest
from insightface.model_zoo.scrfd import distance2bbox, distance2kps

from gateway.processing import (
    anchor_centres,
    decode_scrfd,
    letterbox_image,
    postprocess_detections,
)

STRIDES = (8, 16, 32)


def _insightface_centres(size_px: int, stride: int, anchors: int) -> np.ndarray:
    # Quoted from SCRFD.forward ("solution-3").
    cells = size_px // stride
    centres = np.stack(np.mgrid[:cells, :cells][::-1], axis=-1).astype(np.float32)
    centres = (centres * stride).reshape((-1, 2))
    if anchors > 1:
        centres = np.stack([centres] * anchors, axis=1).reshape((-1, 2))
    return centres


@pytest.mark.parametrize("size_px", [640, 320, 96])
@pytest.mark.parametrize("stride", STRIDES)
@pytest.mark.parametrize("anchors", [1, 2])
def test_anchor_centres_match_insightface(size_px, stride, anchors):
    centres = anchor_centres(size_px, stride, anchors)

    np.testing.assert_array_equal(centres, _insightface_centres(size_px, stride, anchors))
    assert not centres.flags.writeable


def test_decode_matches_distance2bbox_and_distance2kps(make_scrfd_outputs):
    scores, boxes, kps = make_scrfd_outputs(np.random.default_rng(0))
    threshold = 0.4

    decoded = decode_scrfd(scores, boxes, kps, STRIDES, 640, threshold)

    want_boxes, want_scores, want_kps = [], [], []
    for s, b, k, stride in zip(scores, boxes, kps, STRIDES, strict=True):
        centres = _insightface_centres(640, stride, 2)
        keep = np.where(s >= threshold)[0]
        want_scores.append(s[keep, 0])
        want_boxes.append(distance2bbox(centres, b * stride)[keep])
        want_kps.append(distance2kps(centres, k * stride).reshape(-1, 5, 2)[keep])
    np.testing.assert_array_equal(decoded.scores, np.concatenate(want_scores))
    np.testing.assert_array_equal(decoded.boxes, np.concatenate(want_boxes))
    np.testing.assert_array_equal(decoded.kps, np.concatenate(want_kps))
    assert decoded.boxes.dtype == decoded.kps.dtype == decoded.scores.dtype == np.float32
    assert len(decoded) > 100


def test_decode_accepts_flat_scores(make_scrfd_outputs):
    scores, boxes, kps = make_scrfd_outputs(np.random.default_rng(1))

    flat = decode_scrfd([s.ravel() for s in scores], boxes, kps, STRIDES, 640, 0.5)
    column = decode_scrfd(scores, boxes, kps, STRIDES, 640, 0.5)

    np.testing.assert_array_equal(flat.boxes, column.boxes)


def test_decode_rejects_mismatched_shapes(make_scrfd_outputs):
    scores, boxes, kps = make_scrfd_outputs(np.random.default_rng(2))

    with pytest.raises(ValueError, match="stride 8"):
        decode_scrfd(scores, boxes, kps, STRIDES, 320, 0.5)
    with pytest.raises(ValueError, match="strides"):
        decode_scrfd(scores[:2], boxes, kps, STRIDES, 640, 0.5)


@pytest.mark.parametrize(
    ("height", "width", "threshold", "max_faces"),
    [
        (640, 640, 0.5, 0),
        (480, 640, 0.5, 0),
        (1000, 333, 0.3, 0),
        (720, 1280, 0.5, 5),
        (512, 512, 0.2, 1),
        (3000, 4000, 0.6, 3),
    ],
)
def test_postprocess_matches_scrfd_detect(
    run_insightface_scrfd, make_scrfd_outputs, height, width, threshold, max_faces
):
    rng = np.random.default_rng(height + width)
    img = np.zeros((height, width, 3), np.uint8)
    outputs = make_scrfd_outputs(rng)

    oracle = run_insightface_scrfd(img, *outputs, threshold=threshold, max_num=max_faces)
    scale = letterbox_image(img, 640).scale
    ours = postprocess_detections(
        *outputs, scale, img.shape, threshold, nms_iou=0.4, max_faces=max_faces
    )

    assert len(ours) > 0
    np.testing.assert_array_equal(ours.boxes, oracle.det[:, :4])
    np.testing.assert_array_equal(ours.scores, oracle.det[:, 4])
    np.testing.assert_array_equal(ours.kps, oracle.kpss)


def test_postprocess_drops_small_faces_before_max_faces(make_scrfd_outputs):
    outputs = make_scrfd_outputs(np.random.default_rng(3))
    args = (*outputs, 0.5, (1280, 1280, 3), 0.5)
    every = postprocess_detections(*args)
    sides = np.minimum(every.boxes[:, 2] - every.boxes[:, 0], every.boxes[:, 3] - every.boxes[:, 1])
    min_size = float(np.median(sides))

    large = postprocess_detections(*args, min_size_px=min_size)
    top2 = postprocess_detections(*args, max_faces=2, min_size_px=min_size)

    np.testing.assert_array_equal(large.boxes, every.boxes[sides >= min_size])
    assert len(top2) == 2
    assert all(any((b == large.boxes).all(axis=1)) for b in top2.boxes)


def test_non_finite_outputs_never_reach_the_result(make_scrfd_outputs):
    scores, boxes, kps = make_scrfd_outputs(np.random.default_rng(4))
    scores[0][:50] = np.nan
    scores[0][50:60] = np.inf
    boxes[1][::7] = np.nan
    boxes[2][::5, 2] = np.inf
    kps[0][::3, 4] = -np.inf
    clean = postprocess_detections(
        *make_scrfd_outputs(np.random.default_rng(4)), 1.0, (640, 640), 0.5
    )

    result = postprocess_detections(scores, boxes, kps, 1.0, (640, 640), 0.5)

    assert len(result) > 0
    assert len(result) != len(clean)
    assert np.isfinite(result.boxes).all()
    assert np.isfinite(result.scores).all()
    assert np.isfinite(result.kps).all()


def test_all_nan_scores_give_no_faces(make_scrfd_outputs):
    scores, boxes, kps = make_scrfd_outputs(np.random.default_rng(5))
    scores = [np.full_like(s, np.nan) for s in scores]

    result = postprocess_detections(scores, boxes, kps, 1.0, (640, 640), 0.5, max_faces=3)

    assert len(result) == 0
    assert result.boxes.shape == (0, 4)
    assert result.kps.shape == (0, 5, 2)
