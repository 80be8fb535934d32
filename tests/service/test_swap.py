"""The swap pipeline's own logic on the fake backend: which faces, the swapper's lifecycle."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
import pytest

from gateway.errors import InvalidParameter, NoFaceFound, UpstreamUnavailable
from gateway.service.pipeline import Pipeline, Timings
from gateway.service.swap import SwapPipeline, SwapRequest
from gateway.service.swapper_lifecycle import SwapperManager, SwapperPolicy

from ..fakes import FakeBackend
from ..images import encode, square_image

# The fake detector's face: box (128, 128, 192, 192) in a 640x640 frame.
FACE = encode(square_image(640, 640, [(160, 160, 64)]))
NO_FACE = encode(square_image(640, 640, []))


def _swapper(backend: FakeBackend, load_wait_s: float = 30.0) -> SwapPipeline:
    pipeline = Pipeline(backend, ThreadPoolExecutor(2), max_pixels=10_000_000, nms_iou=0.4)
    manager = SwapperManager(backend, "swapper", SwapperPolicy(idle_ttl_s=0))
    return SwapPipeline(pipeline, backend, manager, load_wait_s=load_wait_s)


def _swap(
    swapper: SwapPipeline, sources: list[bytes], target: bytes, request: SwapRequest | None = None
) -> npt.NDArray[np.uint8]:
    result = asyncio.run(swapper.swap(sources, target, request or SwapRequest(), Timings()))
    assert result.faces_swapped == 1
    return result.img_bgr


def test_only_the_face_region_changes_and_the_swapper_loads_once() -> None:
    backend = FakeBackend()
    swapper = _swapper(backend)
    target = square_image(640, 640, [(160, 160, 64)])
    for _ in range(2):
        swapped = _swap(swapper, [FACE], FACE)
        changed = np.argwhere(np.any(swapped != target, axis=2))
        assert len(changed) > 0
        # Paste-back touches the aligned face's neighbourhood only, never the far corners.
        assert changed.min() >= 64 and changed.max() <= 256
    assert backend.control_calls == ["load swapper"] and backend.swap_calls == 2


def test_a_swapper_unloaded_elsewhere_is_loaded_again_and_the_swap_retried() -> None:
    backend = FakeBackend()
    swapper = _swapper(backend)
    _swap(swapper, [FACE], FACE)
    backend.states["swapper"] = "UNAVAILABLE"  # another replica or an admin unloaded it
    _swap(swapper, [FACE], FACE)
    assert backend.control_calls == ["load swapper", "load swapper"]


@pytest.mark.parametrize(
    ("sources", "target", "request_", "error", "match"),
    [
        ([NO_FACE], FACE, SwapRequest(), NoFaceFound, "source"),
        ([FACE, NO_FACE], FACE, SwapRequest(), NoFaceFound, "source #2"),
        ([FACE], NO_FACE, SwapRequest(), NoFaceFound, "target"),
        ([FACE], FACE, SwapRequest(target_face=1), InvalidParameter, "1 face"),
        ([FACE], FACE, SwapRequest(source_face=3), InvalidParameter, "out of range"),
    ],
)
def test_faces_that_are_not_there_are_named(
    sources: list[bytes],
    target: bytes,
    request_: SwapRequest,
    error: type[Exception],
    match: str,
) -> None:
    backend = FakeBackend()
    with pytest.raises(error, match=match):
        asyncio.run(_swapper(backend).swap(sources, target, request_, Timings()))
    assert backend.swap_calls == 0


class SlowLoadBackend(FakeBackend):
    """A swapper load that does not finish while the test watches."""

    async def load_model(self, model: str, timeout_s: float) -> None:
        self.control_calls.append(f"load {model}")
        await asyncio.Event().wait()


def test_a_cold_load_longer_than_the_wait_is_503_with_retry_after() -> None:
    backend = SlowLoadBackend()
    with pytest.raises(UpstreamUnavailable, match="still loading") as caught:
        asyncio.run(
            _swapper(backend, load_wait_s=0.05).swap([FACE], FACE, SwapRequest(), Timings())
        )
    assert caught.value.retry_after_s is not None
    assert backend.control_calls == ["load swapper"] and backend.swap_calls == 0
