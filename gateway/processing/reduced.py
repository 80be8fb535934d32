"""JPEG decoding at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) for the detector's frame.

A 12 MP photo letterboxed to 640 px throws away all but 1 in 40 of its pixels; libjpeg can
skip most of that work by decoding each 8x8 block at a fraction of its size (OpenCV's
IMREAD_REDUCED_COLOR_* flags). The reduced image is an area average rather than the
bilinear samples InsightFace's cv2.resize takes from the full image, so the detector sees
slightly different pixels: this is for the detector frame only. Alignment crops still come
from the full-resolution image, so embeddings move only as far as the landmarks do.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gateway.processing._types import UInt8Array
from gateway.processing.decode import check_image_header

# Largest factor first: the cheapest decode that still leaves the detector frame's side.
_REDUCED_FLAGS = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)


@dataclass(frozen=True)
class ReducedImage:
    """A JPEG decoded at 1/factor scale.

    `img_bgr`: uint8 (H / factor, W / factor, 3), C-contiguous, BGR, upright (EXIF
    Orientation applied) where H x W is the full image's upright size; `factor`: full-image
    pixels per reduced pixel (2, 4 or 8), exact on both axes. Coordinates in the reduced
    image times `factor` are full-image coordinates.
    """

    img_bgr: UInt8Array
    factor: int

    @property
    def full_shape(self) -> tuple[int, int, int]:
        """(H, W, 3) of the full-resolution upright image."""
        height, width = self.img_bgr.shape[:2]
        return height * self.factor, width * self.factor, 3


def reduction_factor(width: int, height: int, min_long_side_px: int, max_factor: int = 8) -> int:
    """The largest of 8, 4, 2 (up to max_factor) dividing both sides, long side >= min_long_side_px.

    1 when none does (decode at full size). Divisible sides keep the scale exact: libjpeg
    rounds a partial block up, which would shift coordinates by up to a pixel.
    """
    for factor, _ in _REDUCED_FLAGS:
        if (
            factor <= max_factor
            and width % factor == 0
            and height % factor == 0
            and max(width, height) // factor >= min_long_side_px
        ):
            return factor
    return 1


def decode_reduced(
    data: bytes, max_pixels: int, min_long_side_px: int, max_factor: int = 8
) -> ReducedImage | None:
    """Decode a JPEG at the largest reduction (see reduction_factor) that keeps its long side.

    None when that is no reduction at all, or the bytes are not a complete 8-bit RGB or
    greyscale JPEG (the caller then decodes in full with decode_image, which reports
    what is wrong). Raises decode_image's errors for bytes that are no usable image at
    all (corrupt, unsupported, more than max_pixels).
    """
    header = check_image_header(data, max_pixels)
    if header.format != "JPEG" or header.mode not in ("RGB", "L"):
        return None
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return None  # truncated: decode_image's Pillow path reports it
    factor = reduction_factor(header.width, header.height, min_long_side_px, max_factor)
    if factor == 1:
        return None
    flag = dict(_REDUCED_FLAGS)[factor]
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if decoded is None or decoded.ndim != 3:
        return None
    if sorted(decoded.shape[:2]) != sorted((header.height // factor, header.width // factor)):
        return None
    return ReducedImage(np.ascontiguousarray(decoded), factor)
