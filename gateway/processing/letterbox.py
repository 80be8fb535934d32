"""Fit an image into the detector's square input the way InsightFace's SCRFD.detect does."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gateway.processing._types import UInt8Array


@dataclass(frozen=True)
class Letterbox:
    """A detector input frame and the scale that produced it.

    `frame_bgr`: uint8 (size_px, size_px, 3), the resized image at the top-left corner and
    zeros to the bottom and right. `scale`: detector pixels per original pixel, the same on
    both axes; divide detector-space coordinates by it to get original-image pixels.
    """

    frame_bgr: UInt8Array
    scale: float


def letterbox_size(height: int, width: int, size_px: int = 640) -> tuple[int, int, float]:
    """(new_width, new_height, scale) of an HxW image fitted into a size_px square.

    The arithmetic is SCRFD.detect's for a square input: the long side becomes size_px,
    the short side is truncated with int(), and the scale is new_height / H.
    """
    aspect = float(height) / width
    # Upstream compares against the model's aspect ratio, which is 1 for a square input.
    if aspect > 1.0:
        new_height = size_px
        new_width = int(new_height / aspect)
    else:
        new_width = size_px
        new_height = int(new_width * aspect)
    # Upstream crashes on an extreme aspect ratio whose short side truncates to 0; one
    # pixel keeps the frame valid (such an image holds no detectable face anyway).
    new_width = max(new_width, 1)
    new_height = max(new_height, 1)
    return new_width, new_height, float(new_height) / height


def letterbox_image(img_bgr: UInt8Array, size_px: int = 640) -> Letterbox:
    """Resize `img_bgr` (uint8 HxWx3) to fit a size_px square, keeping its aspect ratio.

    Sizes and scale come from letterbox_size. cv2.resize uses its default bilinear
    interpolation, as upstream, so detections match it.
    """
    height, width = img_bgr.shape[:2]
    new_width, new_height, scale = letterbox_size(height, width, size_px)
    frame_bgr = np.zeros((size_px, size_px, 3), dtype=np.uint8)
    frame_bgr[:new_height, :new_width] = cv2.resize(img_bgr, (new_width, new_height))
    return Letterbox(frame_bgr=frame_bgr, scale=scale)
