"""/v1/swap against InsightFace's own INSwapper.get(paste_back=True) on the same model files."""

from __future__ import annotations

from pathlib import Path

import cv2
import httpx
import numpy as np
import numpy.typing as npt
import pytest
from insightface.app.common import Face
from insightface.model_zoo import SCRFD, ArcFaceONNX
from insightface.model_zoo.inswapper import INSwapper

from ..images import encode, photo, square_image

pytestmark = pytest.mark.integration
MIN_PSNR_DB = 35.0


def psnr(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


class Reference:
    """InsightFace's classic pipeline on the upstream-form tiny models."""

    def __init__(self, upstream: Path) -> None:
        self.detector = SCRFD(str(upstream / "detector.onnx"))
        self.detector.prepare(-1, input_size=(640, 640), det_thresh=0.5, nms_thresh=0.4)
        self.recognizer = ArcFaceONNX(str(upstream / "recognizer.onnx"))
        self.swapper = INSwapper(str(upstream / "swapper.onnx"))

    def faces(self, img: npt.NDArray[np.uint8], max_num: int = 0) -> list[Face]:
        boxes, kps = self.detector.detect(img, input_size=(640, 640), max_num=max_num)
        return [Face(bbox=b[:4], kps=k, det_score=b[4]) for b, k in zip(boxes, kps, strict=True)]

    def swap(
        self, source: npt.NDArray[np.uint8], target: npt.NDArray[np.uint8], all_faces: bool
    ) -> npt.NDArray[np.uint8]:
        (source_face,) = self.faces(source, max_num=1)
        self.recognizer.get(source, source_face)
        result = target.copy()
        for face in self.faces(target, max_num=0 if all_faces else 1):
            result = self.swapper.get(result, face, source_face, paste_back=True)
        return result


@pytest.fixture(scope="module")
def reference(tiny_upstream_dir: Path) -> Reference:
    return Reference(tiny_upstream_dir)


def _with_squares(
    img: npt.NDArray[np.uint8], squares: list[tuple[int, int, int]]
) -> npt.NDArray[np.uint8]:
    """Bright squares on a dark frame (1.5x the side), what the tiny detector fires on."""
    out = img.copy()
    for cx, cy, side in squares:
        half = side * 3 // 4
        out[max(cy - half, 0) : cy + half, max(cx - half, 0) : cx + half] = 10
        out[cy - side // 2 : cy + side // 2, cx - side // 2 : cx + side // 2] = 245
    return out


def _cases() -> list[tuple[str, npt.NDArray[np.uint8], npt.NDArray[np.uint8], bool]]:
    source = square_image(640, 640, [(240, 128, 64)], value=230)
    astronaut = photo("astronaut")  # 512x512: letterbox scale 1.25
    coffee = photo("coffee")  # 600x400
    t1 = photo("t1")
    big = cv2.resize(photo("astronaut"), (4000, 3000))
    return [
        ("squares", source, square_image(640, 640, [(320, 320, 128), (96, 400, 32)]), True),
        ("astronaut", source, _with_squares(astronaut, [(205, 205, 102), (320, 128, 51)]), True),
        (
            "coffee",
            _with_squares(coffee, [(300, 150, 60)]),
            _with_squares(coffee, [(150, 200, 120)]),
            False,
        ),
        ("t1", source, _with_squares(t1, [(640, 448, 128)]), False),
        ("12mp", source, _with_squares(big, [(2000, 1500, 800)]), False),
    ]


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c[0])
def test_swap_matches_inswapper_paste_back(
    client: httpx.Client,
    reference: Reference,
    case: tuple[str, npt.NDArray[np.uint8], npt.NDArray[np.uint8], bool],
) -> None:
    name, source, target, all_faces = case
    expected = reference.swap(source, target, all_faces)
    assert not np.array_equal(expected, target), f"{name}: the oracle swapped nothing"
    response = client.post(
        "/v1/swap",
        files=[("source", encode(source)), ("target", encode(target))],
        params={"target_face": "all"} if all_faces else {},
    )
    assert response.status_code == 200, response.text
    got = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    changed = np.any(expected != target, axis=2)
    value = psnr(got[changed], expected[changed])
    print(f"{name}: PSNR {value:.1f} dB over {int(changed.sum())} changed pixels")
    assert value >= MIN_PSNR_DB
    assert psnr(got, expected) >= MIN_PSNR_DB
