"""Images the tiny synthetic detector answers on, at any size and aspect ratio.

The tiny detector fires on a bright square of side 4*stride detector-input pixels centred
on the stride grid (gateway/ops/repository/synthetic.py). Squares are therefore placed in
detector-input pixels and drawn at 1/scale in the original image, where scale is the
letterbox's, so that images whose letterbox scale is not 1 still hold findable faces.
Squares are textured (a smooth colour wave, or the brightened photo underneath) so that
each face gets its own embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DETECTOR_SIZE_PX = 640


@dataclass(frozen=True)
class Square:
    """A face for the tiny detector, in detector-input pixels.

    Centre (x, y) on the `stride` grid; side 4*stride. `base` is the brightest value of
    its texture (dimmer squares score lower); `seed` picks the texture.
    """

    x: int
    y: int
    stride: int
    base: int = 255
    seed: int = 0


def letterbox_fit(width: int, height: int) -> tuple[int, int, float]:
    """Resized width, height and scale of SCRFD.detect's letterbox (insightface 2.1)."""
    aspect = height / width
    if aspect > 1.0:
        new_height = DETECTOR_SIZE_PX
        new_width = int(new_height / aspect)
    else:
        new_width = DETECTOR_SIZE_PX
        new_height = int(new_width * aspect)
    return new_width, new_height, new_height / height


def _wave(side_px: int, square: Square) -> npt.NDArray[np.uint8]:
    rng = np.random.default_rng(square.seed)
    fx, fy = rng.uniform(0.5, 2.0, 2)
    phases = rng.uniform(0.0, 2 * np.pi, 3)
    yy, xx = np.mgrid[:side_px, :side_px] / side_px
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (fx * xx + fy * yy)[..., None] + phases)
    return np.clip(square.base - 60.0 * wave, 0, 255).astype(np.uint8)


def _brightened(patch_bgr: npt.NDArray[np.uint8], square: Square) -> npt.NDArray[np.uint8]:
    low = square.base - 60
    return (low + patch_bgr.astype(np.float32) * (60.0 / 255.0)).astype(np.uint8)


def square_scene(
    width: int,
    height: int,
    squares: Sequence[Square],
    *,
    background_bgr: npt.NDArray[np.uint8] | None = None,
    framed: bool = False,
) -> npt.NDArray[np.uint8]:
    """BGR (height, width, 3): the squares on black, or pasted onto `background_bgr`.

    On a background, a square's texture is the brightened photo beneath it; `framed` puts
    a black border one stride wide around it, so that it fires whatever the photo does.
    """
    new_width, new_height, scale = letterbox_fit(width, height)
    if background_bgr is None:
        img = np.zeros((height, width, 3), np.uint8)
    else:
        assert background_bgr.shape == (height, width, 3)
        img = background_bgr.copy()
    for square in squares:
        half = 2 * square.stride
        assert square.x % square.stride == 0 and square.y % square.stride == 0, square
        assert half <= square.x <= new_width - half, (square, new_width)
        assert half <= square.y <= new_height - half, (square, new_height)
        x0, y0, x1, y1 = (
            round(v / scale)
            for v in (square.x - half, square.y - half, square.x + half, square.y + half)
        )
        # A square touching the frame's edge may end a pixel past the image: clip it.
        x1, y1 = min(x1, width), min(y1, height)
        if background_bgr is None:
            texture = _wave(max(x1 - x0, y1 - y0), square)[: y1 - y0, : x1 - x0]
        else:
            texture = _brightened(img[y0:y1, x0:x1], square)
        if framed:
            border = round(square.stride / scale)
            img[max(y0 - border, 0) : y1 + border, max(x0 - border, 0) : x1 + border] = 0
        img[y0:y1, x0:x1] = texture
    return img
