"""Identify from an image: the collection guard overlaps detection, and its error stops it."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from gateway.errors import NotFound
from gateway.service.gallery import Gallery


class _UnknownCollectionStore:
    async def collection_recognizer(self, collection: str) -> str:
        await asyncio.sleep(0.01)
        raise NotFound(f"no collection '{collection}'")


class _SlowPipeline:
    """A detection that runs until cancelled (or 30 s), recording which."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = False

    async def detect(self, images: Any, options: Any, timings: Any) -> Any:
        self.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        raise AssertionError("detection was not stopped")


def test_an_unknown_collection_stops_the_detection_it_overlapped() -> None:
    async def scenario() -> _SlowPipeline:
        pipeline = _SlowPipeline()

        async def sha() -> str:
            return "0" * 64

        gallery = Gallery(cast(Any, _UnknownCollectionStore()), cast(Any, pipeline), sha)
        with pytest.raises(NotFound):
            await asyncio.wait_for(
                gallery.identify_image(
                    "missing",
                    cast(Any, b"jpeg"),
                    top_k=1,
                    threshold=0.3,
                    max_faces=1,
                    detect_threshold=0.5,
                ),
                10,
            )
        assert pipeline.started.is_set()  # the two overlapped
        await asyncio.sleep(0)  # let the cancellation reach the detection
        return pipeline

    assert asyncio.run(scenario()).cancelled
