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
