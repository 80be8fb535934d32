"""detect_stream's pipelining, with a fake Triton: the next batch's detector overlaps this recognizer."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from gateway.client import AsyncFaceClient, ClientOptions
from gateway.ports import DetectorOutputs
from gateway.triton import spec


class SlowFakeModels:
    """Detector and recognizer that take a while and log when each call starts and ends."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.calls = {"detect": 0, "embed": 0}

    async def _work(self, kind: str) -> None:
        self.calls[kind] += 1
        number = self.calls[kind]
        self.events.append(f"{kind}-start-{number}")
        await asyncio.sleep(0.05)
        self.events.append(f"{kind}-end-{number}")

    async def detect(self, frames_bgr: npt.NDArray[np.uint8]) -> list[DetectorOutputs]:
        await self._work("detect")
        anchors = [(spec.DETECTOR_INPUT_SIZE_PX // s) ** 2 * 2 for s in spec.DETECTOR_STRIDES]
        zeros = [tuple(np.zeros((k, width), np.float32) for k in anchors) for width in (1, 4, 10)]
        return [DetectorOutputs(*zeros) for _ in frames_bgr]

    async def embed(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        await self._work("embed")
        return np.zeros((len(crops_bgr), 512), np.float32)

    async def close(self) -> None:
        pass

    async def swap(self, *args: Any) -> npt.NDArray[np.uint8]:
        raise AssertionError("not used")


@pytest.mark.parametrize("prefetch", [1, 2])
def test_next_detector_batch_overlaps_this_recognizer_batch(
    prefetch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = SlowFakeModels()

    async def connect(self: AsyncFaceClient, target: object) -> SlowFakeModels:
        return fake

    monkeypatch.setattr(AsyncFaceClient, "_connect", connect)
    image = np.zeros((64, 64, 3), np.uint8)

    async def main() -> int:
        # One detector size, so that each batch is one detector call.
        options = ClientOptions(batch_size=2, prefetch=prefetch, det_sizes="640")
        async with AsyncFaceClient("fake:1", options=options) as client:
            return len([f async for f in client.detect_stream([image] * 6, embed=True)])

    assert asyncio.run(main()) == 6
    assert fake.calls == {"detect": 3, "embed": 3}
    overlapped = fake.events.index("detect-start-2") < fake.events.index("embed-end-1")
    assert overlapped is (prefetch == 2)
