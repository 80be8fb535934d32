"""letterbox_image against the frame InsightFace's SCRFD.detect feeds its model."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.processing import letterbox_image


def _empty_outputs() -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    counts = [(640 // s) ** 2 * 2 for s in (8, 16, 32)]
    return (
        [np.zeros((c, 1), np.float32) for c in counts],
        [np.zeros((c, 4), np.float32) for c in counts],
        [np.zeros((c, 10), np.float32) for c in counts],
    )


@pytest.mark.parametrize(
    ("height", "width"),
    [(512, 512), (480, 640), (640, 480), (333, 1000), (1000, 333), (37, 59), (1200, 1601)],
)
def test_frame_matches_insightface(run_insightface_scrfd, astronaut_bgr, height, width):
    rng = np.random.default_rng(height * width)
    img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    # Smooth content as well, where interpolation differences would show.
    img[: min(height, 512), : min(width, 512)] = astronaut_bgr[:height, :width]

    letterbox = letterbox_image(img, 640)
    oracle = run_insightface_scrfd(img, *_empty_outputs())

    np.testing.assert_array_equal(letterbox.frame_bgr, oracle.frame_bgr)


@pytest.mark.parametrize(("height", "width"), [(480, 640), (640, 480), (333, 1000), (101, 99)])
def test_scale_is_new_height_over_height(height, width):
    img = np.zeros((height, width, 3), np.uint8)
    aspect = height / width
    new_height = 640 if aspect > 1 else int(640 * aspect)

    letterbox = letterbox_image(img, 640)

    assert letterbox.scale == new_height / height
    assert letterbox.frame_bgr.shape == (640, 640, 3)
    assert letterbox.frame_bgr.dtype == np.uint8


def test_padding_is_zero_bottom_right():
    img = np.full((300, 600, 3), 200, np.uint8)

    frame = letterbox_image(img, 640).frame_bgr

    assert (frame[:320, :640] == 200).all()
    assert (frame[320:] == 0).all()


def test_extreme_aspect_ratio_does_not_crash():
    frame = letterbox_image(np.full((1, 5000, 3), 9, np.uint8), 640).frame_bgr

    assert frame.shape == (640, 640, 3)
    assert (frame[0] == 9).all()
    assert (frame[1:] == 0).all()
