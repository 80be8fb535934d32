"""The pipeline's own logic with a fake backend (no Triton)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from gateway.errors import NoFaceFound, PayloadTooLarge, UndecodableImage, UnsupportedMediaType
from gateway.service.pipeline import DetectOptions, Pipeline, Timings

from ..fakes import FakeBackend
from ..images import encode, square_image


def _pipeline(models: FakeBackend) -> Pipeline:
    return Pipeline(models, ThreadPoolExecutor(2), max_pixels=10_000_000, nms_iou=0.4)


def test_batch_runs_one_detector_and_one_recognizer_call() -> None:
    models = FakeBackend([True, False, True])
    images = [encode(square_image(640, 640, [])) for _ in range(3)]
    results = asyncio.run(_pipeline(models).detect(images, DetectOptions(embed=True), Timings()))
    assert models.detect_calls == [3] and models.embed_calls == [2]
    assert [len(r.detections) for r in results] == [1, 0, 1]
    np.testing.assert_allclose(results[0].detections.boxes[0], [128, 128, 192, 192])
    assert results[0].embeddings is not None
    assert np.allclose(np.linalg.norm(results[0].embeddings, axis=1), 1.0)
    assert results[1].embeddings is not None and results[1].embeddings.shape == (0, 512)


def test_no_embedding_without_embed() -> None:
    models = FakeBackend([True])
    (result,) = asyncio.run(
        _pipeline(models).detect([encode(square_image(64, 64, []))], DetectOptions(), Timings())
    )
    assert result.embeddings is None and models.embed_calls == []


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"junk", UnsupportedMediaType),
        (encode(square_image(64, 64, []))[:50], UndecodableImage),
    ],
)
def test_decode_errors_translate(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        asyncio.run(_pipeline(FakeBackend([True])).detect([data], DetectOptions(), Timings()))


def test_pixel_limit_is_413() -> None:
    pipeline = Pipeline(FakeBackend([True]), ThreadPoolExecutor(1), max_pixels=100, nms_iou=0.4)
    with pytest.raises(PayloadTooLarge):
        asyncio.run(pipeline.detect([encode(square_image(64, 64, []))], DetectOptions(), Timings()))


def test_verify_names_the_image_without_a_face() -> None:
    image = encode(square_image(640, 640, []))
    with pytest.raises(NoFaceFound, match="image_b"):
        asyncio.run(_pipeline(FakeBackend([True, False])).verify(image, image, 0.3, Timings()))
