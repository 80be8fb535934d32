"""The benchmark's images: a real photo with squares the synthetic detector finds planted."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from gateway.ops.bench.options import BenchError
from gateway.triton import spec

JPEG_QUALITY = 90
# (centre x, centre y, stride) in 640x640 detector-input pixels. The synthetic detectors fire
# on a bright square of side 4*stride centred on the stride grid with a dark surround.
FACE_LAYOUT = ((104, 96, 8), (240, 112, 16), (480, 256, 32), (160, 352, 16))


@dataclass(frozen=True)
class BenchImage:
    """One encoded test image and the number of 'faces' planted in it."""

    name: str
    jpeg: bytes
    width: int
    height: int
    planted: int


def crop_to_cover(img_bgr: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
    """Scale the image to cover width x height, then centre-crop it to exactly that."""
    scale = max(width / img_bgr.shape[1], height / img_bgr.shape[0])
    size = (math.ceil(img_bgr.shape[1] * scale), math.ceil(img_bgr.shape[0] * scale))
    resized = cv2.resize(img_bgr, size, interpolation=cv2.INTER_CUBIC)
    top = (resized.shape[0] - height) // 2
    left = (resized.shape[1] - width) // 2
    return np.ascontiguousarray(resized[top : top + height, left : left + width])


def compose_image(photo_bgr: npt.NDArray[np.uint8], width: int, height: int) -> BenchImage:
    """The photo at width x height (4:3) with FACE_LAYOUT's squares planted, JPEG-encoded.

    A 4:3 image letterboxes into the detector input at width/640, so the layout is scaled by
    the inverse: a 64 px square in detector space is 400 px in a 4000x3000 image.
    """
    if width * 3 != height * 4:
        raise BenchError(f"benchmark images are 4:3; got {width}x{height}")
    img = crop_to_cover(photo_bgr, width, height)
    scale = width / spec.DETECTOR_INPUT_SIZE_PX
    for cx, cy, stride in FACE_LAYOUT:
        x, y = round(cx * scale), round(cy * scale)
        dark = round(4 * stride * scale)  # dark surround of side 8*stride
        half = round(2 * stride * scale)  # bright square of side 4*stride
        img[y - dark : y + dark, x - dark : x + dark] = 0
        img[y - half : y + half, x - half : x + half] = 255
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise BenchError("could not encode the benchmark image")
    return BenchImage(f"{width}x{height}", buf.tobytes(), width, height, len(FACE_LAYOUT))


def sample_photo() -> npt.NDArray[np.uint8]:
    """InsightFace's group photo t1.jpg (BGR), shipped in its package."""
    try:
        import insightface
    except ImportError as exc:
        raise BenchError(
            "the benchmark needs insightface: pip install -c constraints.txt insightface==2.1"
        ) from exc

    path = Path(insightface.__file__).parent / "data" / "images" / "t1.jpg"
    photo = cv2.imread(str(path))
    if photo is None:
        raise BenchError(f"cannot read InsightFace's sample photo {path}")
    return np.asarray(photo, dtype=np.uint8)


def bench_images() -> tuple[BenchImage, ...]:
    """A 640x480 and a 12 MP (4000x3000) version of InsightFace's group photo t1.jpg."""
    photo_bgr = sample_photo()
    return (compose_image(photo_bgr, 640, 480), compose_image(photo_bgr, 4000, 3000))
