"""Liveness crop and input gate against insightface 2.1's liveness addon arithmetic."""

from __future__ import annotations

import cv2
import numpy as np
from insightface.addons import liveness as addon
from skimage.transform import SimilarityTransform

from gateway.processing import crop_liveness_faces, liveness_result
from gateway.processing.liveness import LIVENESS_TEMPLATE_80, MAX_OUT_OF_BOUNDS_RATIO

KPS = np.array([[80, 90], [120, 88], [101, 110], [86, 131], [117, 129]], np.float32)


def _addon_matrix(kps: np.ndarray) -> np.ndarray:
    transform = SimilarityTransform.from_estimate(kps, addon.DESTINATION_LANDMARKS)
    return np.asarray(transform.params[:2, :], np.float64)


def test_template_and_gate_are_the_addons() -> None:
    assert np.array_equal(LIVENESS_TEMPLATE_80, addon.DESTINATION_LANDMARKS)
    assert MAX_OUT_OF_BOUNDS_RATIO == addon.MAX_OOB_RATIO


def test_crop_and_out_of_bounds_equal_the_addons() -> None:
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (220, 260, 3), dtype=np.uint8)
    # One face well inside, one half outside the image (rejected by the gate).
    kps = np.stack([KPS, KPS - np.array([85, 0], np.float32)])

    got = crop_liveness_faces(img, kps)

    for index, face_kps in enumerate(kps):
        matrix = _addon_matrix(face_kps)
        valid = cv2.warpAffine(
            np.ones(img.shape[:2], np.float32),
            matrix,
            (80, 80),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        want_oob = float(np.clip(1.0 - np.mean(valid), 0.0, 1.0))
        assert abs(got.out_of_bounds[index] - want_oob) < 1e-6
        want = cv2.warpAffine(
            img, matrix, (80, 80), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        # The similarity is the same to ~1e-12; on random noise, that can still move OpenCV's
        # 1/32-px sampling grid at a few pixels, so compare the crops on average.
        assert np.abs(got.crops_bgr[index].astype(int) - want.astype(int)).mean() < 0.05
    assert got.accepted.tolist() == [True, False]


def test_degenerate_landmarks_are_rejected_not_raised() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    kps = np.full((1, 5, 2), 50.0, np.float32)
    got = crop_liveness_faces(img, kps)
    assert got.accepted.tolist() == [False]


def test_result_keeps_rejected_faces_unscored() -> None:
    img = np.zeros((220, 260, 3), np.uint8)
    crops = crop_liveness_faces(img, np.stack([KPS, KPS - np.array([85, 0], np.float32)]))
    result = liveness_result(crops, np.array([0.81], np.float32), 0.8)
    assert result.rejected.tolist() == [False, True]
    assert result.is_live.tolist() == [True, False]
    assert np.isnan(result.scores[1])
