"""Alignment against InsightFace's estimate_norm / norm_crop, and its own invariants."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from insightface.utils import face_align
from skimage.transform import SimilarityTransform

from gateway.processing import (
    ARCFACE_TEMPLATE_112,
    estimate_affine,
    template_for,
    warp_face,
    warp_faces,
)

SIZES = [112, 128, 224, 256]

# The oracle (estimate_norm) calls skimage's deprecated SimilarityTransform.estimate.
pytestmark = pytest.mark.filterwarnings("ignore:`estimate` is deprecated:FutureWarning")


def _apply(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ affine[:, :2].T + affine[:, 2]


def _random_kps(rng: np.random.Generator, image_px: float = 800.0) -> np.ndarray:
    """A template landmark set moved by a random similarity, plus landmark noise."""
    angle = rng.uniform(-np.pi, np.pi)
    scale = rng.uniform(0.3, 4.0)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = rng.uniform(0, image_px, 2)
    kps = (ARCFACE_TEMPLATE_112 - 56.0) @ rotation.T + centre
    return (kps + rng.normal(0, 3.0 * scale, kps.shape)).astype(np.float32)


def test_template_values_are_insightfaces():
    np.testing.assert_array_equal(ARCFACE_TEMPLATE_112, face_align.arcface_dst)
    shifted = face_align.arcface_dst.copy()
    shifted[:, 0] += 8.0
    np.testing.assert_array_equal(template_for(128), shifted)


@pytest.mark.parametrize("size_px", SIZES)
def test_template_maps_to_itself(size_px):
    template = template_for(size_px)

    affine = estimate_affine(template, size_px)

    np.testing.assert_allclose(affine, [[1, 0, 0], [0, 1, 0]], atol=1e-9)


@pytest.mark.parametrize("size_px", SIZES)
def test_similar_landmarks_land_exactly_on_the_template(size_px):
    rng = np.random.default_rng(size_px)
    angle, scale = 0.7, 2.3
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    kps = template_for(size_px).astype(np.float64) @ rotation.T + rng.uniform(0, 500, 2)

    affine = estimate_affine(kps, size_px)

    np.testing.assert_allclose(_apply(affine, kps), template_for(size_px), atol=1e-4)


def _skimage_affine(kps: np.ndarray, size_px: int) -> np.ndarray:
    """estimate_norm's fit, with inputs in float64.

    skimage 0.26 fits float32 input in float32, so estimate_norm itself carries ~1e-7
    relative error (older skimage cast to float64); this is the exact reference.
    """
    tform = SimilarityTransform()
    tform.estimate(np.asarray(kps, np.float64), template_for(size_px).astype(np.float64))
    return np.asarray(tform.params[:2])


@pytest.mark.parametrize("size_px", SIZES)
def test_affine_matches_skimage_umeyama(size_px):
    rng = np.random.default_rng(size_px + 1)
    for _ in range(50):
        kps = _random_kps(rng)
        np.testing.assert_allclose(
            estimate_affine(kps, size_px), _skimage_affine(kps, size_px), rtol=1e-9, atol=1e-9
        )


@pytest.mark.parametrize("size_px", SIZES)
def test_affine_matches_estimate_norm(size_px):
    rng = np.random.default_rng(size_px + 2)
    for _ in range(50):
        kps = _random_kps(rng)
        ours = estimate_affine(kps, size_px)
        theirs = face_align.estimate_norm(kps, size_px)

        np.testing.assert_allclose(ours[:, :2], theirs[:, :2], rtol=1e-5, atol=1e-6)
        # Within float32 rounding of upstream's fit (landmarks up to 1000 px carry ~6e-5
        # px of it): the landmarks land within 5e-4 crop pixels of upstream's, far below
        # warpAffine's 1/32 px sampling step.
        np.testing.assert_allclose(_apply(ours, kps), _apply(theirs, kps), atol=5e-4)


def test_mirrored_landmarks_give_a_rotation_not_a_reflection():
    rng = np.random.default_rng(3)
    kps = _random_kps(rng)
    kps[:, 0] = -kps[:, 0]  # a mirror image: no proper similarity fits exactly

    affine = estimate_affine(kps, 112)

    np.testing.assert_allclose(affine, _skimage_affine(kps, 112), rtol=1e-9, atol=1e-9)
    assert np.linalg.det(affine[:, :2]) > 0


@pytest.mark.parametrize("size_px", [112, 128])
def test_crops_match_norm_crop(group_bgr, size_px):
    rng = np.random.default_rng(size_px)
    height, width = group_bgr.shape[:2]
    for _ in range(30):
        kps = _random_kps(rng, image_px=min(height, width))
        want = face_align.norm_crop(group_bgr, kps, size_px)
        exact = cv2.warpAffine(
            group_bgr, _skimage_affine(kps, size_px), (size_px, size_px), borderValue=0.0
        )

        crop = warp_face(group_bgr, estimate_affine(kps, size_px), size_px)

        assert crop.shape == (size_px, size_px, 3)
        assert crop.dtype == np.uint8
        np.testing.assert_array_equal(crop, exact)
        # Upstream's float32 fit moves samples by ~1e-5 px, which warpAffine's 1/32 px
        # fixed point turns into a rare one-step change at a sharp edge.
        differing = np.count_nonzero(np.any(crop != want, axis=2))
        assert differing <= 0.002 * size_px * size_px, differing


def test_warp_faces_stacks_crops_and_affines(group_bgr):
    rng = np.random.default_rng(9)
    kps = np.stack([_random_kps(rng, 400) for _ in range(3)])

    aligned = warp_faces(group_bgr, kps, 112)

    assert aligned.crops_bgr.shape == (3, 112, 112, 3)
    assert aligned.affines.shape == (3, 2, 3)
    for i in range(3):
        np.testing.assert_array_equal(
            aligned.crops_bgr[i], warp_face(group_bgr, aligned.affines[i], 112)
        )
        np.testing.assert_array_equal(aligned.affines[i], estimate_affine(kps[i], 112))


def test_warp_faces_with_no_faces(group_bgr):
    aligned = warp_faces(group_bgr, np.zeros((0, 5, 2), np.float32), 112)

    assert aligned.crops_bgr.shape == (0, 112, 112, 3)
    assert aligned.affines.shape == (0, 2, 3)


def test_rejects_degenerate_landmarks_and_sizes():
    with pytest.raises(ValueError, match="coincide"):
        estimate_affine(np.full((5, 2), 7.0), 112)
    with pytest.raises(ValueError, match="coincide"):
        estimate_affine(np.full((5, 2), np.nan), 112)
    with pytest.raises(ValueError, match="multiple"):
        estimate_affine(ARCFACE_TEMPLATE_112, 100)
