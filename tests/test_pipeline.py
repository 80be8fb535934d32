"""The pipeline's own logic with a fake FaceModels backend (no Triton)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import pytest

from gateway.errors import NoFaceFound, PayloadTooLarge, UndecodableImageError, UnsupportedMediaType
from gateway.service.pipeline import DetectOptions, Pipeline, Timings
from gateway.triton import spec
from gateway.triton.client import DetectorOutputs

from .images import encode, square_image


class FakeModels:
    """One face per frame at stride 32, cell (5, 5), anchor 0; embeddings from crop means."""

    def __init__(self, faces_per_frame: list[bool]) -> None:
        self.faces_per_frame = faces_per_frame
        self.detect_calls: list[int] = []
        self.embed_calls: list[int] = []

    async def detect(self, frames_bgr: npt.NDArray[np.uint8]) -> list[DetectorOutputs]:
        self.detect_calls.append(len(frames_bgr))
        outputs = []
        for index in range(len(frames_bgr)):
            scores, boxes, kps = [], [], []
            for tensor in spec.DETECTOR_OUTPUTS[:3]:
                count = tensor.shape[0]
                scores.append(np.zeros((count, 1), np.float32))
                boxes.append(np.full((count, 4), 1.0, np.float32))
                kps.append(
                    np.tile(
                        np.array([-0.5, -0.2, 0.5, -0.2, 0, 0.3, -0.4, 0.7, 0.4, 0.7], np.float32),
                        (count, 1),
                    )
                )
            if self.faces_per_frame[index]:
                scores[2][(5 * 20 + 5) * 2] = 0.9
            outputs.append(DetectorOutputs(tuple(scores), tuple(boxes), tuple(kps)))
        return outputs

    async def embed(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        self.embed_calls.append(len(crops_bgr))
        base = crops_bgr.reshape(len(crops_bgr), -1)[:, :512].astype(np.float32) + 1.0
        return base * 3.0


def _pipeline(models: FakeModels) -> Pipeline:
    return Pipeline(models, ThreadPoolExecutor(2), max_pixels=10_000_000, nms_iou=0.4)


def test_batch_runs_one_detector_and_one_recognizer_call() -> None:
    models = FakeModels([True, False, True])
    images = [encode(square_image(640, 640, [])) for _ in range(3)]
    results = asyncio.run(_pipeline(models).detect(images, DetectOptions(embed=True), Timings()))
    assert models.detect_calls == [3] and models.embed_calls == [2]
    assert [len(r.detections) for r in results] == [1, 0, 1]
    np.testing.assert_allclose(results[0].detections.boxes[0], [128, 128, 192, 192])
    assert results[0].embeddings is not None
    assert np.allclose(np.linalg.norm(results[0].embeddings, axis=1), 1.0)
    assert results[1].embeddings is not None and results[1].embeddings.shape == (0, 512)


def test_no_embedding_without_embed() -> None:
    models = FakeModels([True])
    (result,) = asyncio.run(
        _pipeline(models).detect([encode(square_image(64, 64, []))], DetectOptions(), Timings())
    )
    assert result.embeddings is None and models.embed_calls == []


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"junk", UnsupportedMediaType),
        (encode(square_image(64, 64, []))[:50], UndecodableImageError),
    ],
)
def test_decode_errors_translate(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        asyncio.run(_pipeline(FakeModels([True])).detect([data], DetectOptions(), Timings()))


def test_pixel_limit_is_413() -> None:
    pipeline = Pipeline(FakeModels([True]), ThreadPoolExecutor(1), max_pixels=100, nms_iou=0.4)
    with pytest.raises(PayloadTooLarge):
        asyncio.run(pipeline.detect([encode(square_image(64, 64, []))], DetectOptions(), Timings()))


def test_verify_names_the_image_without_a_face() -> None:
    image = encode(square_image(640, 640, []))
    with pytest.raises(NoFaceFound, match="image_b"):
        asyncio.run(_pipeline(FakeModels([True, False])).verify(image, image, 0.3, Timings()))
