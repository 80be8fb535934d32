"""Attribute crop and decoding against insightface 2.1's face_align.transform and Attribute.get."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from insightface.utils import face_align

from gateway.processing import attribute_affine, crop_attribute_faces, decode_genderage


@settings(max_examples=100, deadline=None)
@given(
    x1=st.floats(-50, 600),
    y1=st.floats(-50, 400),
    w=st.floats(4, 500),
    h=st.floats(4, 500),
)
def test_affine_is_insightfaces_transform_without_rotation(
    x1: float, y1: float, w: float, h: float
) -> None:
    box = np.array([x1, y1, x1 + w, y1 + h], np.float32)
    bw, bh = box[2] - box[0], box[3] - box[1]
    centre = (box[2] + box[0]) / 2, (box[3] + box[1]) / 2
    scale = 96 / (max(bw, bh) * 1.5)
    img = np.zeros((8, 8, 3), np.uint8)
    _, want = face_align.transform(img, centre, 96, scale, 0)

    np.testing.assert_allclose(attribute_affine(box, 96), want, rtol=1e-6, atol=1e-6)


def test_crops_equal_insightfaces_pixels() -> None:
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    boxes = np.array([[10.5, 20.25, 110.0, 160.0], [300.0, 200.0, 420.0, 330.0]], np.float32)

    got = crop_attribute_faces(img, boxes, 96)

    for box, crop in zip(boxes, got.crops_bgr, strict=True):
        w, h = box[2] - box[0], box[3] - box[1]
        centre = (box[2] + box[0]) / 2, (box[3] + box[1]) / 2
        want, _ = face_align.transform(img, centre, 96, 96 / (max(w, h) * 1.5), 0)
        assert np.array_equal(crop, want)


@pytest.mark.parametrize(
    ("pred", "gender", "age"),
    [
        ([0.2, 0.9, 0.354], 1, 35),
        ([1.5, -0.1, 0.2], 0, 20),
        ([0.5, 0.5, 0.3], 0, 30),  # a tie goes to the first index, as np.argmax upstream
        ([0.0, 1.0, 0.0], 1, 0),
    ],
)
def test_decoding_is_attribute_gets(pred: list[float], gender: int, age: int) -> None:
    decoded = decode_genderage(np.array([pred], np.float32))
    # Upstream: np.argmax(pred[:2]) and int(np.round(pred[2] * 100)) on float32.
    want_age = int(np.round(np.float32(pred[2]) * 100))
    assert decoded.genders.tolist() == [gender]
    assert decoded.ages.tolist() == [want_age] == [age]
    assert decoded.labels() == ["M" if gender else "F"]
