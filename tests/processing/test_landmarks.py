"""Dense landmark decoding and head pose: invariants of the crop, the decode and the pose fit."""

from __future__ import annotations

import numpy as np
import pytest

from gateway import processing
from gateway.processing.meanshape import MEANSHAPE_68

SIZE = 192
BOXES = np.array([[100, 50, 164, 130], [10.5, 20.25, 40.5, 44.75]], np.float32)


def _crops() -> processing.FaceCrops:
    img = np.zeros((300, 300, 3), np.uint8)
    return processing.crop_landmark_faces(img, BOXES, SIZE)


def test_the_crop_centre_decodes_to_the_box_centre_and_the_corners_to_1_5x_the_box() -> None:
    crops = _crops()
    raw = np.zeros((2, 106, 2), np.float32)
    raw[:, 1] = (-1.0, -1.0)
    raw[:, 2] = (1.0, 1.0)

    points = processing.decode_landmarks_2d106(raw.reshape(2, -1), crops.affines, SIZE).points

    centres = (BOXES[:, :2] + BOXES[:, 2:]) / 2
    half = 1.5 * np.max(BOXES[:, 2:] - BOXES[:, :2], axis=1) / 2
    np.testing.assert_allclose(points[:, 0], centres, atol=1e-4)
    np.testing.assert_allclose(points[:, 1], centres - half[:, None], atol=1e-4)
    np.testing.assert_allclose(points[:, 2], centres + half[:, None], atol=1e-4)
    assert crops.crops_bgr.shape == (2, SIZE, SIZE, 3)


def test_3d_decoding_keeps_the_last_68_points_and_scales_z_like_x() -> None:
    crops = _crops()
    raw = np.full((2, 1103, 3), 0.5, np.float32)
    raw[:, -68:] = 0.0
    raw[:, -68:, 2] = 1.0

    points = processing.decode_landmarks_3d68(raw.reshape(2, -1), crops.affines, SIZE).points

    assert points.shape == (2, 68, 3)
    half = 1.5 * np.max(BOXES[:, 2:] - BOXES[:, :2], axis=1) / 2
    np.testing.assert_allclose(points[:, :, 2], np.repeat(half[:, None], 68, axis=1), rtol=1e-5)


def _rotation(pitch: float, yaw: float, roll: float) -> np.ndarray:
    x, y, z = np.radians([pitch, yaw, roll])
    rx = np.array([[1, 0, 0], [0, np.cos(x), -np.sin(x)], [0, np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    return rz @ ry @ rx


@pytest.mark.parametrize(
    "angles", [(0.0, 0.0, 0.0), (10.0, 0.0, 0.0), (0.0, -35.0, 0.0), (5.0, 20.0, -12.0)]
)
def test_pose_recovers_the_rotation_of_the_mean_shape(angles: tuple[float, float, float]) -> None:
    # The mean shape turned, scaled to image pixels and moved: the pose is the turn.
    rotated = 80.0 * MEANSHAPE_68.astype(np.float64) @ _rotation(*angles).T + (320.0, 240.0, 5.0)

    pose = processing.estimate_pose(rotated[None])

    np.testing.assert_allclose([pose.pitch[0], pose.yaw[0], pose.roll[0]], angles, atol=1e-3)
    assert pose.max_abs_degrees()[0] == pytest.approx(max(abs(angles[0]), abs(angles[1])), abs=1e-3)


def test_no_faces_decode_to_empty_arrays() -> None:
    crops = processing.crop_landmark_faces(np.zeros((10, 10, 3), np.uint8), np.zeros((0, 4)), SIZE)
    points = processing.decode_landmarks_3d68(np.zeros((0, 3309)), crops.affines, SIZE).points
    assert points.shape == (0, 68, 3)
    assert processing.estimate_pose(points).yaw.shape == (0,)
