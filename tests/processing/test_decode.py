"""decode_image: formats, orientation, colour modes, and hostile input."""

from __future__ import annotations

import contextlib
import io
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gateway.processing import (
    CorruptImage,
    ImageError,
    ImageTooLarge,
    UnsupportedImageType,
    decode_image,
)

MAX_PIXELS = 40_000_000
LOSSLESS = [("PNG", {}), ("BMP", {}), ("WEBP", {"lossless": True})]


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _rgb(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth, asymmetric RGB content: JPEG keeps it close, flips and turns show."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png_declaring(width: int, height: int) -> bytes:
    """A well-formed PNG header declaring width x height RGB, with a tiny data stream."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + _png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("fmt", "params"), LOSSLESS)
def test_lossless_round_trip(fmt, params):
    rgb = _rgb()

    bgr = decode_image(_encode(Image.fromarray(rgb), fmt, **params), MAX_PIXELS)

    assert bgr.dtype == np.uint8
    assert bgr.flags.c_contiguous
    np.testing.assert_array_equal(bgr, rgb[:, :, ::-1])


def test_jpeg_round_trip_matches_opencv():
    data = _encode(Image.fromarray(_rgb(120, 160)), "JPEG", quality=95)

    bgr = decode_image(data, MAX_PIXELS)

    reference = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert bgr.shape == reference.shape == (120, 160, 3)
    # Pillow and OpenCV may bundle different libjpeg builds; IDCT rounding can differ.
    assert np.abs(bgr.astype(int) - reference).mean() < 1.0


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "WEBP", "JPEG"])
def test_one_pixel_image(fmt):
    bgr = decode_image(_encode(Image.new("RGB", (1, 1), (10, 200, 30)), fmt), MAX_PIXELS)

    assert bgr.shape == (1, 1, 3)
    np.testing.assert_allclose(bgr[0, 0], (30, 200, 10), atol=4)


# EXIF orientation -> how the stored pixels must be turned to be upright.
ORIENTATIONS = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, k=1),
}


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_exif_orientation_is_applied(orientation):
    rgb = _rgb(30, 50)
    exif = Image.Exif()
    exif[0x0112] = orientation

    bgr = decode_image(_encode(Image.fromarray(rgb), "PNG", exif=exif), MAX_PIXELS)

    np.testing.assert_array_equal(
        bgr, np.ascontiguousarray(ORIENTATIONS[orientation](rgb))[..., ::-1]
    )


def test_jpeg_orientation_6_is_turned_upright():
    rgb = np.zeros((40, 80, 3), np.uint8)
    rgb[:20, :40] = (255, 0, 0)  # red in the stored top-left quadrant
    exif = Image.Exif()
    exif[0x0112] = 6

    bgr = decode_image(_encode(Image.fromarray(rgb), "JPEG", exif=exif, quality=95), MAX_PIXELS)

    # Turned 90 degrees clockwise: 80 rows, 40 columns, red now top-right.
    assert bgr.shape == (80, 40, 3)
    assert bgr[10, 30, 2] > 200 and bgr[10, 30, 0] < 50
    assert bgr[10, 10].max() < 50
    assert bgr[60, 30].max() < 50


def test_greyscale():
    grey = _rgb()[:, :, 0]

    bgr = decode_image(_encode(Image.fromarray(grey, "L"), "PNG"), MAX_PIXELS)

    np.testing.assert_array_equal(bgr, np.repeat(grey[:, :, None], 3, axis=2))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_dropped(mode):
    rgb = _rgb()
    alpha = np.linspace(0, 255, rgb.shape[1], dtype=np.uint8)[None, :].repeat(rgb.shape[0], 0)
    colour = rgb if mode == "RGBA" else np.repeat(rgb[:, :, :1], 3, axis=2)
    layers = [*np.moveaxis(colour, 2, 0)] if mode == "RGBA" else [colour[:, :, 0]]
    image = Image.fromarray(np.dstack([*layers, alpha]), mode)

    bgr = decode_image(_encode(image, "PNG"), MAX_PIXELS)

    np.testing.assert_array_equal(bgr, colour[:, :, ::-1])


def test_palette_with_transparency():
    rgb = _rgb()
    image = Image.fromarray(rgb).quantize(16)
    image.info["transparency"] = 0
    expected = np.asarray(image.convert("RGB"))

    bgr = decode_image(_encode(image, "PNG", transparency=0), MAX_PIXELS)

    np.testing.assert_array_equal(bgr, expected[:, :, ::-1])


def test_sixteen_bit_greyscale_matches_opencv():
    wide = (np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 21).astype(np.uint16)
    data = _encode(Image.fromarray(wide), "PNG")

    bgr = decode_image(data, MAX_PIXELS)

    # OpenCV's IMREAD_COLOR reduces 16 bits the same way: the high byte.
    np.testing.assert_array_equal(
        bgr, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    )
    assert bgr[..., 0].max() > 200


def test_cmyk_jpeg():
    rgb = _rgb(64, 64)
    cmyk = Image.fromarray(rgb).convert("CMYK")

    bgr = decode_image(_encode(cmyk, "JPEG", quality=95), MAX_PIXELS)

    assert bgr.shape == (64, 64, 3)
    assert np.abs(bgr.astype(int) - rgb[:, :, ::-1]).mean() < 4


def test_one_bit_bmp():
    bits = _rgb()[:, :, 0] > 128

    bgr = decode_image(_encode(Image.fromarray(bits), "BMP"), MAX_PIXELS)

    np.testing.assert_array_equal(bgr[:, :, 1], np.where(bits, 255, 0))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_truncated_image_is_undecodable(fmt):
    data = _encode(Image.fromarray(_rgb(200, 200)), fmt)

    with pytest.raises(CorruptImage, match=r"truncated or corrupt|header"):
        decode_image(data[: len(data) // 2], MAX_PIXELS)


@pytest.mark.parametrize(("fmt", "name"), [("GIF", "GIF"), ("TIFF", "TIFF"), ("ICO", "recognised")])
def test_other_formats_are_unsupported(fmt, name):
    data = _encode(Image.fromarray(_rgb()), fmt)

    with pytest.raises(UnsupportedImageType, match=name):
        decode_image(data, MAX_PIXELS)


def test_empty_body_is_undecodable():
    with pytest.raises(CorruptImage, match="empty"):
        decode_image(b"", MAX_PIXELS)


def test_pixel_limit_is_checked_before_decoding():
    # The declared size is over the limit and the data behind it is garbage: only a check
    # on the header can answer ImageTooLarge rather than CorruptImage.
    data = _png_declaring(2000, 1000)

    with pytest.raises(ImageTooLarge, match="2000x1000"):
        decode_image(data, 1_999_999)


def test_image_at_the_limit_is_accepted():
    decode_image(_encode(Image.fromarray(_rgb(40, 50)), "PNG"), 2000)
    with pytest.raises(ImageTooLarge):
        decode_image(_encode(Image.fromarray(_rgb(40, 50)), "PNG"), 1999)


def test_decompression_bomb_is_rejected_quickly():
    data = _png_declaring(30000, 30000)

    started = time.perf_counter()
    with pytest.raises(ImageTooLarge, match="limit"):
        decode_image(data, MAX_PIXELS)
    assert time.perf_counter() - started < 0.5


def test_webp_bomb_beyond_pillows_hard_limit_is_too_large():
    # Pillow's WebP plugin enforces its own hard limit (2 * MAX_IMAGE_PIXELS) while
    # parsing the header, whatever the caller allows; it must surface as ImageTooLarge.
    exif = Image.Exif()
    exif[0x0112] = 1  # any metadata makes Pillow write the extended (VP8X) header
    data = bytearray(_encode(Image.fromarray(_rgb(16, 16)), "WEBP", lossless=True, exif=exif))
    vp8x = data.find(b"VP8X")
    assert vp8x > 0
    data[vp8x + 12 : vp8x + 18] = (15999).to_bytes(3, "little") * 2  # 16000 x 16000 canvas

    with pytest.raises(ImageTooLarge, match="Downscale"):
        decode_image(bytes(data), 10**9)


def test_zero_size_image_is_undecodable():
    header = struct.pack(">IIBBBBB", 0, 10, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IEND", b"")

    with pytest.raises(CorruptImage):
        decode_image(data, MAX_PIXELS)


SAMPLES = [
    _encode(Image.fromarray(_rgb(32, 32)), fmt, **params)
    for fmt, params in [*LOSSLESS, ("JPEG", {})]
]


MAGICS = [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\0\0\0\0WEBP", b"BM", b"GIF89a"]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(magic=st.sampled_from(MAGICS), rest=st.binary(max_size=2048))
def test_random_bytes_raise_only_image_errors(magic, rest):
    # The magic prefixes get random bytes past the sniffing and into Pillow's parsers.
    with contextlib.suppress(ImageError):
        decode_image(magic + rest, MAX_PIXELS)


@settings(max_examples=300, deadline=None)
@given(
    sample=st.sampled_from(SAMPLES),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 10**6),
)
def test_corrupted_images_raise_only_image_errors(sample, edits, cut):
    corrupted = bytearray(sample)
    for position, value in edits:
        corrupted[position % len(corrupted)] = value
    corrupted = corrupted[: max(cut % (len(corrupted) + 1), 1)]
    try:
        bgr = decode_image(bytes(corrupted), MAX_PIXELS)
    except ImageError:
        return
    assert bgr.dtype == np.uint8
    assert bgr.ndim == 3 and bgr.shape[2] == 3
