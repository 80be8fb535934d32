"""Quality measurements and grading: sharpness falls with blur, grades follow the bounds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gateway import defaults, processing
from gateway.processing.quality import QualityBounds, QualityThresholds

THRESHOLDS = QualityThresholds(
    medium=QualityBounds(min_size_px=24, min_sharpness=5, max_pose_deg=45),
    high=QualityBounds(min_size_px=48, min_sharpness=20, max_pose_deg=25),
)


def _texture(seed: int = 3) -> np.ndarray:
    small = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    return cv2.resize(small, (112, 112), interpolation=cv2.INTER_NEAREST)


def test_sharpness_falls_monotonically_with_blur() -> None:
    crop = _texture()
    crops = np.stack([crop] + [cv2.GaussianBlur(crop, (0, 0), s) for s in (0.5, 1, 2, 4)])
    sharpness = processing.measure_sharpness(crops)
    assert (np.diff(sharpness) < 0).all(), sharpness
    assert processing.measure_sharpness(np.zeros((1, 112, 112, 3), np.uint8))[0] == 0.0


# The ArcFace template's five points (112 px), to place a face in a larger image.
_TEMPLATE = np.array(
    [[38.29, 51.70], [73.53, 51.50], [56.03, 71.74], [41.55, 92.37], [70.73, 92.20]], np.float32
)


def _graded(sharpness: float) -> str:
    bounds = defaults.QUALITY_THRESHOLDS
    return processing.grade_quality([1.0], [128], [sharpness], [float("nan")], bounds).levels[0]


def _blurred_face_at(left_px: float) -> float:
    """Sharpness of a sigma-6 blurred textured face whose aligned crop starts at `left_px`."""
    texture = np.random.default_rng(0).integers(0, 256, (80, 80, 3), np.uint8)
    img = cv2.GaussianBlur(
        cv2.resize(texture, (800, 800), interpolation=cv2.INTER_CUBIC), (0, 0), 6
    )
    kps = (_TEMPLATE * 1.5 + np.array([left_px, 300], np.float32))[None]
    aligned = processing.warp_faces(img, kps, 112)
    valid = processing.crop_valid_masks(img.shape, aligned.affines, 112)
    return float(processing.measure_sharpness(aligned.crops_bgr, valid)[0])


def test_the_frame_cutting_a_blurred_face_does_not_make_it_sharp() -> None:
    inside = _blurred_face_at(300)
    assert _graded(inside) != "high", inside
    for left in (-40, -60, -80):  # 24% to 47% of the crop outside the image
        cut = _blurred_face_at(left)
        assert cut == pytest.approx(inside, rel=0.25), (left, cut, inside)
        assert _graded(cut) == _graded(inside), (left, cut, inside)
    # Mostly outside the image: not measured, so not graded above low.
    assert _blurred_face_at(-120) == 0.0


def test_noise_does_not_lift_a_blurred_face() -> None:
    blurred = cv2.GaussianBlur(_texture(), (0, 0), 6)
    noise = np.random.default_rng(1).normal(0, 3, blurred.shape)
    noisy = np.clip(blurred + noise, 0, 255).astype(np.uint8)
    sharpness = processing.measure_sharpness(np.stack([blurred, noisy]))
    assert _graded(float(sharpness[0])) == _graded(float(sharpness[1])) == "low", sharpness
    # A sharp face stays well above the high bound.
    sharp = float(processing.measure_sharpness(_texture()[None])[0])
    assert sharp > 3 * defaults.QUALITY_THRESHOLDS.high.min_sharpness


def test_box_sizes_are_the_shorter_side() -> None:
    sizes = processing.box_sizes(np.array([[0, 0, 30, 50], [10, 10, 90, 20]], np.float32))
    assert sizes.tolist() == [30.0, 10.0]


@pytest.mark.parametrize(
    ("size", "sharpness", "pose", "level"),
    [
        (64, 50, 10, "high"),
        (64, 50, float("nan"), "high"),  # unknown pose is not graded
        (40, 50, 10, "medium"),
        (64, 10, 10, "medium"),
        (64, 50, 30, "medium"),
        (20, 50, 10, "low"),
        (64, 3, 10, "low"),
        (64, 50, 60, "low"),
    ],
)
def test_a_face_is_the_highest_level_whose_bounds_it_meets(
    size: float, sharpness: float, pose: float, level: str
) -> None:
    graded = processing.grade_quality([10.0], [size], [sharpness], [pose], THRESHOLDS)
    assert graded.levels == (level,)
    for minimum in processing.QUALITY_LEVELS:
        expected = processing.QUALITY_LEVELS.index(level) >= processing.QUALITY_LEVELS.index(
            minimum
        )
        assert processing.meets_quality(level, minimum) is expected


def test_failed_components_name_what_misses_the_bounds() -> None:
    bounds = THRESHOLDS.high
    assert processing.failed_components(10, 3, 80, bounds) == ["size", "sharpness", "pose"]
    assert processing.failed_components(100, 100, float("nan"), bounds) == []


def test_the_default_bounds_are_ordered() -> None:
    medium, high = defaults.QUALITY_THRESHOLDS.medium, defaults.QUALITY_THRESHOLDS.high
    assert medium.min_size_px < high.min_size_px
    assert medium.min_sharpness < high.min_sharpness
    assert medium.max_pose_deg > high.max_pose_deg
