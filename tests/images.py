"""Test images: squares the tiny synthetic detector finds exactly, and real photographs."""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import insightface
import numpy as np
import numpy.typing as npt
import skimage.data

INSIGHTFACE_IMAGES = Path(insightface.__file__).parent / "data" / "images"


def square_image(
    width: int, height: int, squares: list[tuple[int, int, int]], value: int = 255
) -> npt.NDArray[np.uint8]:
    """Dark BGR image with bright squares given as (centre x, centre y, side) in pixels."""
    img = np.zeros((height, width, 3), np.uint8)
    for cx, cy, side in squares:
        img[cy - side // 2 : cy + side // 2, cx - side // 2 : cx + side // 2] = value
    return img


def encode(img_bgr: npt.NDArray[np.uint8], ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, img_bgr)
    assert ok
    return bytes(buf.tobytes())


def photo(name: str) -> npt.NDArray[np.uint8]:
    """A real photograph as BGR: skimage's 'astronaut', 'coffee', or insightface's 't1'."""
    if name == "t1":
        img = cv2.imread(str(INSIGHTFACE_IMAGES / "t1.jpg"))
        assert img is not None
        return img
    rgb = getattr(skimage.data, name)()
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=-1)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height pixels (decompression bomb shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
        )

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    row = b"\x00" + b"\x00" * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row))
        + chunk(b"IEND", b"")
    )
