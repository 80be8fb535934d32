"""Synthetic "people" for the tiny models: textured bright squares.

The tiny detector fires on a bright square of side 32/64/128 px centred on its stride grid;
the texture inside decides the embedding. The same texture elsewhere in the image is "the
same person in another photo" (cosine 1.0 after alignment); another seed is another person
(cosine ~0.98 with the tiny recognizer, so tests match at a threshold of 0.995).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from tests.images import encode

SAME_PERSON = 0.995


def person_image(
    seed: int, centre: tuple[int, int] = (320, 320), side: int = 128, size: int = 640
) -> npt.NDArray[np.uint8]:
    """A dark size x size BGR image with person `seed`'s textured square at `centre`."""
    img = np.zeros((size, size, 3), np.uint8)
    texture = np.random.default_rng(seed).integers(170, 256, (16, 16, 3), dtype=np.uint8)
    patch = cv2.resize(texture, (side, side), interpolation=cv2.INTER_NEAREST)
    cx, cy = centre
    img[cy - side // 2 : cy + side // 2, cx - side // 2 : cx + side // 2] = patch
    return img


def person_png(seed: int, centre: tuple[int, int] = (320, 320), side: int = 128) -> bytes:
    return encode(person_image(seed, centre, side))


def group_png(seeds_and_centres: list[tuple[int, tuple[int, int]]], side: int = 64) -> bytes:
    """Several people in one 640x640 image."""
    img = np.zeros((640, 640, 3), np.uint8)
    for seed, centre in seeds_and_centres:
        one = person_image(seed, centre, side)
        mask = one.any(axis=2)
        img[mask] = one[mask]
    return encode(img)
