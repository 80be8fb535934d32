"""Requests overlap in the pipeline, and reduced decoding keeps its contract (fake backend)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from gateway.ports import DetectorOutputs
from gateway.processing import decode_image
from gateway.service.pipeline import DetectOptions, Pipeline, Timings

from ..fakes import FakeBackend
from ..images import square_image


class HeldRecognizer(FakeBackend):
    """FakeBackend whose recognizer call waits until released, noting detector calls meanwhile."""

    def __init__(self) -> None:
        super().__init__([True])
        self.embedding = 0
        self.detects_during_embed = 0
        self.entered_embed = asyncio.Event()
        self.release = asyncio.Event()

    async def detect(self, frames_bgr: npt.NDArray[np.uint8]) -> list[DetectorOutputs]:
        if self.embedding:
            self.detects_during_embed += 1
        return await super().detect(frames_bgr)

    async def embed(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        self.embedding += 1
        self.entered_embed.set()
        await self.release.wait()
        self.embedding -= 1
        return await super().embed(crops_bgr)


def _jpeg(img_bgr: npt.NDArray[np.uint8]) -> bytes:
    ok, buf = cv2.imencode(".jpg", img_bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return bytes(buf.tobytes())


@pytest.mark.parametrize("cpu_threads", [1, 4])
def test_next_request_detects_while_the_previous_one_is_in_the_recognizer(
    cpu_threads: int,
) -> None:
    image = _jpeg(square_image(640, 480, []))

    async def scenario() -> tuple[int, int]:
        models = HeldRecognizer()
        pipeline = Pipeline(models, ThreadPoolExecutor(cpu_threads), max_pixels=10**8, nms_iou=0.4)
        first = asyncio.create_task(pipeline.detect([image], DetectOptions(embed=True), Timings()))
        await asyncio.wait_for(models.entered_embed.wait(), 30)
        # The first request holds the recognizer: the second must still get through detection.
        (second,) = await asyncio.wait_for(pipeline.detect([image], DetectOptions(), Timings()), 30)
        models.release.set()
        (done,) = await asyncio.wait_for(first, 30)
        assert done.embeddings is not None and len(second.detections) == 1
        return models.detects_during_embed, len(models.detect_calls)

    during, calls = asyncio.run(scenario())
    assert during == 1 and calls == 2


def test_reduced_decode_answers_in_full_image_pixels_with_the_full_image() -> None:
    big = square_image(2560, 1920, [])
    big[::7, ::5] = 200  # some texture, so the frames are not black
    data = _jpeg(big)

    def run(reduced: bool) -> tuple[list[npt.NDArray[np.uint8]], Timings, npt.NDArray[np.float32]]:
        models = FakeBackend([True])
        pipeline = Pipeline(
            models, ThreadPoolExecutor(2), max_pixels=10**8, nms_iou=0.4, reduced_decode=reduced
        )
        timings = Timings()
        decoded, found = asyncio.run(pipeline.find_faces([data], DetectOptions(), timings))
        return decoded, timings, found[0].boxes

    full_images, full_timings, full_boxes = run(False)
    reduced_images, reduced_timings, reduced_boxes = run(True)
    assert "full decode wait" in reduced_timings.stages
    assert "full decode wait" not in full_timings.stages
    # The fake's box sits at the same letterbox pixels: the same full-image box either way.
    np.testing.assert_allclose(reduced_boxes, full_boxes, atol=1e-3)
    np.testing.assert_array_equal(reduced_images[0], decode_image(data, 10**8))
    np.testing.assert_array_equal(reduced_images[0], full_images[0])
