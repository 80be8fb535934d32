"""Gender and age per face: insightface's Attribute crop, genderage on Triton, its decoding."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from gateway import processing
from gateway.errors import UpstreamUnavailable
from gateway.triton import spec

GENDERAGE_HOW_TO_INSTALL = (
    "age and gender need the genderage model, which this Triton does not serve: install it "
    "with `facegate models fetch --pack buffalo_l` (or `facegate models import DIR` with "
    "genderage.onnx; `facegate models synthetic` for tests), then restart Triton"
)


@runtime_checkable
class AttributeModels(Protocol):
    """What attribute estimation needs from the inference server."""

    async def genderage(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]: ...


async def estimate_gender_age(
    models: object,
    in_thread: Callable[..., Awaitable[Any]],
    images: Sequence[npt.NDArray[np.uint8]],
    found: Sequence[processing.Detections],
    timings: Any,
) -> list[processing.GenderAge]:
    """GenderAge per image for its detections (one batched genderage call for all faces).

    `in_thread` runs the crops off the event loop; `timings` gets "attribute_crop" and
    "genderage". Raises UpstreamUnavailable (503) saying what to install when the
    model is not served.
    """
    if not isinstance(models, AttributeModels):
        raise UpstreamUnavailable(GENDERAGE_HOW_TO_INSTALL)
    started = time.perf_counter()
    size = spec.GENDERAGE_INPUT_SIZE_PX
    crops = await asyncio.gather(
        *(
            in_thread(processing.crop_attribute_faces, img, dets.boxes, size)
            for img, dets in zip(images, found, strict=True)
        )
    )
    timings.add("attribute_crop", started)
    counts = [len(dets) for dets in found]
    started = time.perf_counter()
    if sum(counts):
        try:
            raw = await models.genderage(np.concatenate([c.crops_bgr for c in crops]))
        except UpstreamUnavailable as exc:
            raise UpstreamUnavailable(
                f"{GENDERAGE_HOW_TO_INSTALL} ({exc.message})", retry_after_s=60
            ) from exc
    else:
        raw = np.zeros((0, 3), np.float32)
    timings.add("genderage", started)
    decoded = processing.decode_genderage(raw)
    bounds = np.cumsum([0, *counts])
    return [
        processing.GenderAge(decoded.genders[lo:hi], decoded.ages[lo:hi])
        for lo, hi in itertools.pairwise(bounds)
    ]
