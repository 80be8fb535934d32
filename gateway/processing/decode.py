"""Untrusted image bytes to an 8-bit BGR array, with the size checked before decoding.

The errors below are this step's own; the service translates them into the gateway's
error tree (CorruptImage -> UndecodableImage 400, ImageTooLarge -> PayloadTooLarge 413,
UnsupportedImageType -> UnsupportedMediaType 415).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import (
    BmpImagePlugin,
    Image,
    ImageFile,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    WebPImagePlugin,
)

from gateway.processing._types import UInt8Array

_SUPPORTED_NAMES = "JPEG, PNG, WebP or BMP"

# Pillow's plugin classes, keyed by the format name the magic bytes select. They are
# constructed directly instead of through Image.open so that only the sniffed format is
# tried and Pillow's own bomb check (a process-global limit that warns through the
# warnings module) does not run: the caller's max_pixels is the limit here.
_DECODERS: dict[str, type[ImageFile.ImageFile]] = {
    "JPEG": JpegImagePlugin.JpegImageFile,
    "PNG": PngImagePlugin.PngImageFile,
    "WebP": WebPImagePlugin.WebPImageFile,
    "BMP": BmpImagePlugin.BmpImageFile,
}

# Formats that are recognised only to name them in the error message.
_REJECTED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)

# Pillow's 16/32-bit greyscale modes; convert("RGB") would clip them at 255 instead of
# scaling, so they are reduced to 8 bits here the way OpenCV's imdecode does (>> 8).
_WIDE_GREY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})


class ImageError(Exception):
    """Base of the errors raised for an image that cannot be used."""


class CorruptImage(ImageError):
    """The bytes claim a supported format but are corrupt, truncated or empty (HTTP 400)."""


class UnsupportedImageType(ImageError):
    """The bytes are not JPEG, PNG, WebP or BMP (HTTP 415)."""


class ImageTooLarge(ImageError):
    """The image has more pixels than allowed (HTTP 413)."""


def decode_image(data: bytes, max_pixels: int) -> UInt8Array:
    """Decode JPEG, PNG, WebP or BMP bytes to an upright 8-bit BGR image.

    Returns `img_bgr`: uint8 (H, W, 3), C-contiguous, BGR, rotated as the EXIF
    Orientation tag says. Greyscale, palette, CMYK and 16-bit images are converted to
    8-bit BGR; an alpha channel is dropped, as cv2.imdecode(IMREAD_COLOR) does. The pixel
    count is read from the header and checked against `max_pixels` before any pixel data
    is decoded; that is the only pixel limit, bar Pillow's hard limit for WebP headers
    (2 * PIL.Image.MAX_IMAGE_PIXELS), which also raises ImageTooLarge.

    Raises UnsupportedImageType, ImageTooLarge or CorruptImage; never another
    exception for any input bytes.
    """
    image, image_format = _checked_header(data, max_pixels)
    if image_format == "JPEG" and image.mode in ("RGB", "L"):
        fast = _decode_complete_jpeg(data)
        if fast is not None:
            return fast
    pixels = _decode_pixels(image, image_format)
    return _to_bgr(pixels)


@dataclass(frozen=True)
class ImageHeader:
    """What the header says: format ("JPEG", "PNG", "WebP", "BMP"), Pillow mode, stored size."""

    format: str
    mode: str
    width: int
    height: int


def check_image_header(data: bytes, max_pixels: int) -> ImageHeader:
    """decode_image's checks on the header alone (no pixel data is decoded).

    Raises CorruptImage, UnsupportedImageType or ImageTooLarge as decode_image does.
    `width` x `height` is the stored size, before any EXIF rotation.
    """
    image, image_format = _checked_header(data, max_pixels)
    return ImageHeader(image_format, image.mode, *image.size)


def _checked_header(data: bytes, max_pixels: int) -> tuple[ImageFile.ImageFile, str]:
    if not data:
        raise CorruptImage("The image is empty. Send the image file's bytes.")
    image_format = sniff_format(data)
    image = _open_header(data, image_format)
    _check_size(image.size, max_pixels)
    return image, image_format


def _decode_complete_jpeg(data: bytes) -> UInt8Array | None:
    """OpenCV's JPEG decoder (about 3x Pillow's plus conversions on a 12 MP photo).

    Same libjpeg-turbo pixels and EXIF orientation as the Pillow path, but OpenCV fills a
    truncated file with grey instead of failing, so only files that end in the EOI marker
    take this path; None sends the rest through Pillow, which reports truncation.
    """
    if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        return None
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if decoded is None or decoded.ndim != 3:
        return None
    bgr: UInt8Array = np.ascontiguousarray(decoded)
    return bgr


def sniff_format(data: bytes) -> str:
    """Name the image format from its leading magic bytes.

    Returns one of "JPEG", "PNG", "WebP", "BMP"; raises UnsupportedImageType otherwise.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data.startswith(b"BM"):
        return "BMP"
    for magic, name in _REJECTED_MAGIC:
        if data.startswith(magic):
            raise UnsupportedImageType(
                f"{name} images are not supported. Convert the image to {_SUPPORTED_NAMES}."
            )
    raise UnsupportedImageType(
        f"The file is not a recognised image. Send a {_SUPPORTED_NAMES} image."
    )


def _open_header(data: bytes, image_format: str) -> ImageFile.ImageFile:
    """Parse the header only; no pixel data is decoded yet."""
    try:
        return _DECODERS[image_format](io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        # The WebP plugin applies Pillow's hard limit while parsing its header.
        raise ImageTooLarge(
            "The image has too many pixels. Downscale it and send it again."
        ) from exc
    # Pillow's parsers raise a wide, undocumented range of exceptions on hostile input
    # (SyntaxError, OSError, struct.error, IndexError, ...); all of them mean bad bytes.
    except Exception as exc:
        raise CorruptImage(
            f"The {image_format} header could not be read; the file is corrupt. "
            f"Re-save it as {_SUPPORTED_NAMES} and send it again."
        ) from exc


def _check_size(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise CorruptImage(
            f"The image declares a size of {width}x{height} pixels. Send a non-empty image."
        )
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"The image is {width}x{height} ({width * height} pixels); the limit is "
            f"{max_pixels} pixels. Downscale it and send it again."
        )


def _decode_pixels(image: ImageFile.ImageFile, image_format: str) -> Image.Image:
    """Decode the pixel data, then turn it upright as the EXIF Orientation tag says."""
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(
            "The image has too many pixels. Downscale it and send it again."
        ) from exc
    # Same reasoning as in _open_header: any failure while decoding untrusted bytes
    # (truncated data raises OSError) is the client's corrupt file.
    except Exception as exc:
        raise CorruptImage(
            f"The {image_format} image data is truncated or corrupt. "
            f"Re-save it as {_SUPPORTED_NAMES} and send it again."
        ) from exc
    try:
        return ImageOps.exif_transpose(image)
    # A malformed EXIF block says nothing about the pixels, which decoded fine: keep the
    # image as stored rather than reject a photo over its metadata.
    except Exception:
        return image


def _to_bgr(image: Image.Image) -> UInt8Array:
    if image.mode in _WIDE_GREY_MODES:
        wide = np.asarray(image).astype(np.float64)
        grey = (np.clip(wide, 0, 65535).astype(np.uint32) >> 8).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    # Pillow cannot convert premultiplied greyscale+alpha straight to RGB.
    if image.mode == "La":
        image = image.convert("LA")
    try:
        rgb: UInt8Array = np.asarray(
            image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8
        )
    except ValueError as exc:
        raise CorruptImage(
            f"The image's colour mode {image.mode} cannot be converted to RGB. "
            f"Re-save it as 8-bit RGB {_SUPPORTED_NAMES} and send it again."
        ) from exc
    # cv2's channel swap is ~10x faster than a reversed-stride copy on a 12 MP photo.
    bgr: UInt8Array = np.asarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), dtype=np.uint8)
    return bgr
