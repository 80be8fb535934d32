"""draw_faces: draws on a copy, where the faces are, and more with gender and age."""

from __future__ import annotations

import numpy as np

from gateway.processing import Detections, GenderAge, HeadPose, LivenessResult, draw_faces
from gateway.processing.render import DENSE_BGR


def _one_face() -> Detections:
    kps = np.array([[[110, 120], [150, 120], [130, 140], [115, 160], [145, 160]]], np.float32)
    return Detections(
        boxes=np.array([[100, 100, 160, 180]], np.float32),
        scores=np.array([0.91], np.float32),
        kps=kps,
    )


def test_draws_a_copy_around_the_box_and_leaves_the_rest() -> None:
    img = np.zeros((240, 320, 3), np.uint8)
    drawn = draw_faces(img, _one_face())
    assert not img.any(), "the input must stay untouched"
    assert drawn.shape == img.shape and drawn.dtype == np.uint8
    assert (drawn[100, 100:161] == (0, 0, 255)).all(), "the box's top edge is red"
    assert (drawn[230:, :] == 0).all() and (drawn[:, 200:] == 0).all()


def test_no_faces_draws_nothing() -> None:
    img = np.random.default_rng(0).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    assert np.array_equal(draw_faces(img, Detections.empty()), img)


def test_gender_and_age_add_a_longer_label() -> None:
    img = np.zeros((240, 320, 3), np.uint8)
    plain = draw_faces(img, _one_face())
    labelled = draw_faces(
        img, _one_face(), GenderAge(np.array([1], np.int64), np.array([34], np.int64))
    )
    text_rows = slice(70, 100)
    assert (labelled[text_rows] != 0).sum() > (plain[text_rows] != 0).sum() > 0


def test_liveness_adds_a_verdict() -> None:
    img = np.zeros((240, 320, 3), np.uint8)
    plain = draw_faces(img, _one_face())
    live = draw_faces(img, _one_face(), liveness=LivenessResult(np.array([0.93], np.float32), 0.8))
    text_rows = slice(70, 100)
    assert (live[text_rows] != 0).sum() > (plain[text_rows] != 0).sum()


def test_dense_points_are_drawn_where_they_are_and_pose_lengthens_the_label() -> None:
    img = np.zeros((240, 320, 3), np.uint8)
    points = np.array([[[120.0, 130.0], [140.0, 150.0]]], np.float32)
    dotted = draw_faces(img, _one_face(), dense_points=points)
    assert (dotted[130, 120] == DENSE_BGR).all() and (dotted[150, 140] == DENSE_BGR).all()
    plain = draw_faces(img, _one_face())
    pose = HeadPose(*(np.array([v], np.float32) for v in (5.0, -20.0, 3.0)))
    posed = draw_faces(img, _one_face(), pose=pose)
    text_rows = slice(70, 100)
    assert (posed[text_rows] != 0).sum() > (plain[text_rows] != 0).sum()
