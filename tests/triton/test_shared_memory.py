"""Region layouts from model configs and the region pool's lending rules (no Triton, no shm)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import numpy as np
import pytest

from gateway.triton.shared_memory import (
    ALIGN_BYTES,
    Region,
    RegionLayout,
    RegionPool,
    layout_from_config,
)

DETECTOR_CONFIG: dict[str, Any] = {
    "max_batch_size": 8,
    "input": [{"name": "images", "data_type": "TYPE_UINT8", "dims": ["640", "640", "3"]}],
    "output": [
        {"name": "score_8", "data_type": "TYPE_FP32", "dims": ["12800", "1"]},
        {"name": "bbox_8", "data_type": "TYPE_FP32", "dims": ["12800", "4"]},
    ],
}


def test_layout_places_tensors_apart_and_aligned() -> None:
    layout = layout_from_config(DETECTOR_CONFIG)
    assert layout is not None
    extents = [layout.inputs["images"], layout.outputs["score_8"], layout.outputs["bbox_8"]]
    assert [e.byte_size for e in extents] == [8 * 640 * 640 * 3, 8 * 12800 * 4, 8 * 12800 * 16]
    for extent in extents:
        assert extent.offset % ALIGN_BYTES == 0
    # No two tensors overlap, and the region holds them all.
    spans = sorted((e.offset, e.offset + e.byte_size) for e in extents)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))
    assert spans[-1][1] <= layout.byte_size


def test_unbatched_models_get_room_for_one_request() -> None:
    config = {**DETECTOR_CONFIG, "max_batch_size": 0}
    layout = layout_from_config(config)
    assert layout is not None and layout.inputs["images"].byte_size == 640 * 640 * 3


@pytest.mark.parametrize(
    "tensor",
    [
        {"name": "x", "data_type": "TYPE_UINT8", "dims": ["-1", "3"]},
        {"name": "x", "data_type": "TYPE_STRING", "dims": ["3"]},
    ],
    ids=["variable-dimension", "unknown-dtype"],
)
def test_layouts_that_cannot_be_sized_are_none(tensor: dict[str, Any]) -> None:
    assert layout_from_config({"max_batch_size": 1, "input": [tensor], "output": []}) is None


def _pool(regions: int) -> RegionPool:
    layout = layout_from_config(DETECTOR_CONFIG)
    assert layout is not None
    return RegionPool(layout, [Region(f"r{i}", f"/k{i}", None) for i in range(regions)])


def test_fits_checks_names_and_sizes() -> None:
    pool = _pool(1)
    frames = np.zeros((8, 640, 640, 3), np.uint8)
    assert pool.fits({"images": frames}, ["score_8"])
    assert not pool.fits({"images": np.zeros((9, 640, 640, 3), np.uint8)}, ["score_8"])
    assert not pool.fits({"other": frames}, ["score_8"])
    assert not pool.fits({"images": frames}, ["kps_8"])


def test_one_request_per_region_and_the_next_waits() -> None:
    async def scenario() -> list[str]:
        pool = _pool(1)
        events: list[str] = []

        async def request(name: str, hold: asyncio.Event | None) -> None:
            async with pool.lend() as region:
                assert region is not None
                events.append(f"{name} got {region.name}")
                if hold is not None:
                    await hold.wait()
            events.append(f"{name} done")

        hold = asyncio.Event()
        first = asyncio.create_task(request("a", hold))
        await asyncio.sleep(0)
        second = asyncio.create_task(request("b", None))
        await asyncio.sleep(0)
        events.append("b waiting")
        hold.set()
        await asyncio.gather(first, second)
        return events

    assert asyncio.run(scenario()) == ["a got r0", "b waiting", "a done", "b got r0", "b done"]


def test_a_failed_request_retires_its_region_and_the_last_one_falls_back_to_the_wire() -> None:
    async def scenario() -> tuple[list[str | None], bool]:
        pool = _pool(2)
        for _ in range(2):
            with pytest.raises(RuntimeError):
                async with pool.lend() as region:
                    assert region is not None
                    raise RuntimeError("request failed; Triton may still write the outputs")
        lent = []
        for _ in range(2):  # every waiter learns there is no region left
            async with pool.lend() as region:
                lent.append(None if region is None else region.name)
        return lent, pool.fits({"images": np.zeros((1, 640, 640, 3), np.uint8)}, ["score_8"])

    lent, fits = asyncio.run(scenario())
    assert lent == [None, None] and not fits


def test_layout_is_frozen() -> None:
    layout = RegionLayout({}, {}, 0)
    with pytest.raises(AttributeError):
        layout.byte_size = 1  # type: ignore[misc]
