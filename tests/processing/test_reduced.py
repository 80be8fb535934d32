"""JPEG decoding at reduced scale for the detector frame (processing/reduced.py)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from gateway.processing import (
    CorruptImage,
    ImageTooLarge,
    UnsupportedImageType,
    decode_image,
    decode_reduced,
    reduction_factor,
)


def _jpeg(img_bgr: npt.NDArray[np.uint8], quality: int = 95, orientation: int = 0) -> bytes:
    image = Image.fromarray(np.ascontiguousarray(img_bgr[:, :, ::-1]))
    buffer = io.BytesIO()
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(buffer, "JPEG", quality=quality, exif=exif)
    else:
        image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _scene(height: int, width: int) -> npt.NDArray[np.uint8]:
    """Smooth gradients and a few blocks: something an area average and a resize agree on."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], -1)
    img[height // 4 : height // 2, width // 4 : width // 2] = (40, 200, 90)
    return np.asarray(img, np.uint8)


@given(
    width=st.integers(1, 9000),
    height=st.integers(1, 9000),
    min_side=st.integers(1, 4000),
    max_factor=st.sampled_from([1, 2, 4, 8]),
)
def test_factor_divides_both_sides_and_keeps_the_long_side(
    width: int, height: int, min_side: int, max_factor: int
) -> None:
    factor = reduction_factor(width, height, min_side, max_factor)
    assert factor in (1, 2, 4, 8) and factor <= max(max_factor, 1)
    if factor > 1:
        assert width % factor == 0 and height % factor == 0
        assert max(width, height) // factor >= min_side
    # No larger allowed factor would also do.
    for larger in (2, 4, 8):
        if factor < larger <= max_factor and width % larger == 0 and height % larger == 0:
            assert max(width, height) // larger < min_side


def test_large_jpeg_decodes_at_half_scale_close_to_an_area_resize() -> None:
    full_bgr = _scene(1600, 2400)
    data = _jpeg(full_bgr)
    reduced = decode_reduced(data, 10**8, 640, max_factor=2)
    assert reduced is not None and reduced.factor == 2
    assert reduced.img_bgr.shape == (800, 1200, 3) and reduced.img_bgr.flags.c_contiguous
    assert reduced.full_shape == decode_image(data, 10**8).shape
    area = cv2.resize(decode_image(data, 10**8), (1200, 800), interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.img_bgr.astype(int) - area).mean() < 2.0


def test_exif_rotation_applies_to_the_reduced_image_too() -> None:
    stored = _scene(1600, 2400)
    data = _jpeg(stored, orientation=6)
    reduced = decode_reduced(data, 10**8, 600, max_factor=4)
    upright = decode_image(data, 10**8)
    assert reduced is not None and reduced.factor == 4
    assert upright.shape == (2400, 1600, 3) and reduced.full_shape == upright.shape
    area = cv2.resize(upright, (400, 600), interpolation=cv2.INTER_AREA)
    assert np.abs(reduced.img_bgr.astype(int) - area).mean() < 2.0


@pytest.mark.parametrize(
    ("height", "width", "why"),
    [
        (480, 640, "the long side would fall below the detector's 640"),
        (1601, 2400, "an odd side: the scale would not be exact"),
    ],
)
def test_no_reduction_when_it_would_not_be_exact_or_useful(
    height: int, width: int, why: str
) -> None:
    assert decode_reduced(_jpeg(_scene(height, width)), 10**8, 640) is None, why


def test_other_formats_and_truncated_jpegs_are_left_to_the_full_decoder() -> None:
    img = _scene(1600, 2400)
    ok, png = cv2.imencode(".png", img)
    assert ok and decode_reduced(png.tobytes(), 10**8, 640) is None
    data = _jpeg(img)
    assert decode_reduced(data[: len(data) // 2], 10**8, 640) is None


def test_bad_bytes_raise_what_the_full_decoder_raises() -> None:
    with pytest.raises(CorruptImage):
        decode_reduced(b"", 10**8, 640)
    with pytest.raises(UnsupportedImageType):
        decode_reduced(b"GIF89a....", 10**8, 640)
    with pytest.raises(ImageTooLarge):
        decode_reduced(_jpeg(_scene(1600, 2400)), 1000, 640)
