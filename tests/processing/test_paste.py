"""paste_face against InsightFace's full-frame paste-back (INSwapper.get, paste_back=True)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from gateway.processing import estimate_affine, paste_face, template_for

CROP_PX = 128


def _insightface_paste_back(
    target_img: np.ndarray, bgr_fake: np.ndarray, M: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The oracle: INSwapper.get's paste-back, quoted from insightface 0.7.3 with the unused
    fake_diff mask left out. Returns the merged image and the blend mask (H, W, 1)."""
    IM = cv2.invertAffineTransform(M)
    img_white = np.full((bgr_fake.shape[0], bgr_fake.shape[1]), 255, dtype=np.float32)
    bgr_fake = cv2.warpAffine(
        bgr_fake, IM, (target_img.shape[1], target_img.shape[0]), borderValue=0.0
    )
    img_white = cv2.warpAffine(
        img_white, IM, (target_img.shape[1], target_img.shape[0]), borderValue=0.0
    )
    img_white[img_white > 20] = 255
    img_mask = img_white
    mask_h_inds, mask_w_inds = np.where(img_mask == 255)
    mask_h = np.max(mask_h_inds) - np.min(mask_h_inds)
    mask_w = np.max(mask_w_inds) - np.min(mask_w_inds)
    mask_size = int(np.sqrt(mask_h * mask_w))
    k = max(mask_size // 10, 10)
    kernel = np.ones((k, k), np.uint8)
    img_mask = cv2.erode(img_mask, kernel, iterations=1)
    k = max(mask_size // 20, 5)
    kernel_size = (k, k)
    blur_size = tuple(2 * i + 1 for i in kernel_size)
    img_mask = cv2.GaussianBlur(img_mask, blur_size, 0)
    img_mask /= 255
    img_mask = np.reshape(img_mask, [img_mask.shape[0], img_mask.shape[1], 1])
    fake_merged = img_mask * bgr_fake + (1 - img_mask) * target_img.astype(np.float32)
    fake_merged = fake_merged.astype(np.uint8)
    return fake_merged, img_mask


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _face_affine(centre_xy: tuple[float, float], face_px: float, angle: float) -> np.ndarray:
    """The 128 px swapper affine for a face of about face_px pixels, tilted by angle."""
    scale = face_px / CROP_PX
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    template = template_for(CROP_PX).astype(np.float64)
    kps = (template - CROP_PX / 2) @ rotation.T + np.asarray(centre_xy)
    return estimate_affine(kps, CROP_PX)


def _swapped_crop(rng: np.random.Generator, source: np.ndarray) -> np.ndarray:
    """A 128x128 stand-in for the swapper's output: a recoloured patch of a real photo."""
    y, x = rng.integers(0, source.shape[0] - 200), rng.integers(0, source.shape[1] - 200)
    patch = cv2.resize(source[y : y + 200, x : x + 200], (CROP_PX, CROP_PX))
    return np.clip(patch.astype(np.int16) + rng.integers(-60, 60, 3), 0, 255).astype(np.uint8)


def _check_against_oracle(img: np.ndarray, swapped: np.ndarray, affine: np.ndarray) -> None:
    want, mask = _insightface_paste_back(img, swapped, affine)
    before = img.copy()

    got = paste_face(img, swapped, affine)

    np.testing.assert_array_equal(img, before)  # the input is not modified
    assert got.shape == img.shape
    assert got.dtype == np.uint8
    changed = np.argwhere(np.any(want != img, axis=2) | np.any(got != img, axis=2))
    assert len(changed) > 0
    (y0, x0), (y1, x1) = changed.min(axis=0), changed.max(axis=0) + 1
    # PSNR over the face's changed rectangle, not the whole photo, so it cannot be
    # inflated by untouched background.
    assert _psnr(got[y0:y1, x0:x1], want[y0:y1, x0:x1]) >= 35.0
    # Wherever upstream's mask is exactly 0 the photo must come through untouched.
    outside = mask[:, :, 0] == 0
    np.testing.assert_array_equal(got[outside], img[outside])


CASES = [
    # (photo, centre as a fraction of (W, H), face size px, angle rad)
    ("astronaut", (0.45, 0.3), 180, 0.0),
    ("astronaut", (0.5, 0.5), 60, 0.3),
    ("astronaut", (0.5, 0.5), 40, -1.2),
    ("astronaut", (0.3, 0.6), 700, 0.1),  # face larger than the photo
    ("astronaut", (0.02, 0.5), 150, 0.5),  # half over the left edge
    ("astronaut", (0.97, 0.98), 200, -0.4),  # over the bottom-right corner
    ("group", (0.2, 0.3), 90, 0.05),
    ("group", (0.8, 0.4), 120, -0.25),
    ("group", (0.5, 0.02), 110, 2.8),  # upside down, over the top edge
    ("group", (0.6, 0.5), 25, 0.0),
]


@pytest.mark.parametrize(("photo", "centre", "face_px", "angle"), CASES)
def test_matches_insightface(astronaut_bgr, group_bgr, photo, centre, face_px, angle):
    img = astronaut_bgr if photo == "astronaut" else group_bgr
    rng = np.random.default_rng(face_px)
    height, width = img.shape[:2]
    affine = _face_affine((centre[0] * width, centre[1] * height), face_px, angle)

    _check_against_oracle(img, _swapped_crop(rng, group_bgr), affine)


def test_matches_insightface_on_random_faces(astronaut_bgr, group_bgr):
    rng = np.random.default_rng(11)
    for _ in range(25):
        img = astronaut_bgr if rng.random() < 0.5 else group_bgr
        height, width = img.shape[:2]
        centre = (rng.uniform(-0.05, 1.05) * width, rng.uniform(-0.05, 1.05) * height)
        affine = _face_affine(centre, rng.uniform(20, 400), rng.uniform(-np.pi, np.pi))
        _check_against_oracle(img, _swapped_crop(rng, group_bgr), affine)


def test_equals_insightface_bit_for_bit(astronaut_bgr, group_bgr):
    # Stricter than the PSNR contract: the region's sampling reproduces warpAffine's fixed
    # point, so with this OpenCV every pixel should match upstream's full-frame result.
    rng = np.random.default_rng(12)
    for _ in range(15):
        img = astronaut_bgr if rng.random() < 0.5 else group_bgr
        height, width = img.shape[:2]
        centre = (rng.uniform(0, width), rng.uniform(0, height))
        affine = _face_affine(centre, rng.uniform(20, 600), rng.uniform(-np.pi, np.pi))
        swapped = _swapped_crop(rng, group_bgr)

        want, _ = _insightface_paste_back(img, swapped, affine)

        np.testing.assert_array_equal(paste_face(img, swapped, affine), want)


def test_pixels_outside_the_face_region_are_untouched(group_bgr):
    affine = _face_affine((300, 200), 100, 0.2)
    inv_affine = cv2.invertAffineTransform(affine)
    crop_corners = np.array([[0, 0, 1], [128, 0, 1], [0, 128, 1], [128, 128, 1]], np.float64)
    corners = crop_corners @ inv_affine.T
    # The mask's blur radius for a ~100 px face is 5 px; 20 px is comfortably beyond it.
    x0, y0 = (corners.min(axis=0) - 20).astype(int)
    x1, y1 = (corners.max(axis=0) + 20).astype(int)

    got = paste_face(group_bgr, _swapped_crop(np.random.default_rng(0), group_bgr), affine)

    outside = np.ones(group_bgr.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(got[outside], group_bgr[outside])
    assert np.any(got[~outside] != group_bgr[~outside])


def test_face_outside_the_photo_leaves_it_unchanged(astronaut_bgr):
    affine = _face_affine((-500, 200), 100, 0.0)
    swapped = np.full((CROP_PX, CROP_PX, 3), 255, np.uint8)

    got = paste_face(astronaut_bgr, swapped, affine)

    np.testing.assert_array_equal(got, astronaut_bgr)
    assert got is not astronaut_bgr


@pytest.mark.parametrize(
    "affine",
    [np.zeros((2, 3)), np.full((2, 3), np.nan), np.eye(3)],
)
def test_rejects_unusable_affines(astronaut_bgr, affine):
    with pytest.raises(ValueError, match="affine"):
        paste_face(astronaut_bgr, np.zeros((CROP_PX, CROP_PX, 3), np.uint8), affine)


@pytest.mark.parametrize(
    "crop", [np.zeros((128, 64, 3), np.uint8), np.zeros((128, 128, 3), np.float32)]
)
def test_rejects_malformed_crops(astronaut_bgr, crop):
    with pytest.raises(ValueError, match="crop"):
        paste_face(astronaut_bgr, crop, _face_affine((200, 200), 100, 0.0))
