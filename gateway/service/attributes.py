"""Per-face analysis beyond detection: gender and age (genderage), liveness (the addon)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway import ports, processing
from gateway.errors import UpstreamUnavailable
from gateway.ports import AttributeModels, LivenessModels

GENDERAGE_HOW_TO_INSTALL = (
    "age and gender need the genderage model, which this Triton does not serve: install it "
    "with `facegate models fetch` (buffalo_l and buffalo_s ship it) or `facegate models install "
    "genderage FILE` (`facegate models synthetic` for tests), then restart Triton (Helm: "
    "models.optional.genderage; compose: FACEGATE_TRITON_OPTIONAL_MODELS)"
)


LIVENESS_HOW_TO_INSTALL = (
    "liveness needs insightface 2.1's liveness addon (liveness.onnx), which this Triton does "
    "not serve: `facegate models fetch` downloads it, `facegate models install liveness FILE` "
    "adds a copy you downloaded (`facegate models synthetic` for tests), then restart Triton "
    "(Helm: models.optional.liveness; compose: FACEGATE_TRITON_OPTIONAL_MODELS)"
)

# The addon's English reason for a face it does not score.
LIVENESS_REJECTED_REASON = processing.OUT_OF_BOUNDS_REASON


async def estimate_liveness(
    models: object,
    in_thread: Callable[..., Awaitable[Any]],
    images: Sequence[npt.NDArray[np.uint8]],
    found: Sequence[processing.Detections],
    threshold: float,
    timings: Any,
) -> list[processing.LivenessResult]:
    """LivenessResult per image (one batched liveness call for the faces the gate accepts).

    Faces whose aligned crop lies more than 30% outside the image are not scored (NaN), as
    the addon rejects them. Raises UpstreamUnavailable (503) saying what to install.
    """
    if not isinstance(models, LivenessModels):
        raise UpstreamUnavailable(LIVENESS_HOW_TO_INSTALL)
    started = time.perf_counter()
    crops = await asyncio.gather(
        *(
            in_thread(processing.crop_liveness_faces, img, dets.kps)
            for img, dets in zip(images, found, strict=True)
        )
    )
    timings.add("liveness_crop", started)
    accepted = [c.crops_bgr[c.accepted] for c in crops]
    counts = [len(a) for a in accepted]
    started = time.perf_counter()
    scores = np.zeros((0,), np.float32)
    if sum(counts):
        try:
            scores = await models.liveness(np.concatenate(accepted))
        except UpstreamUnavailable as exc:
            raise UpstreamUnavailable(
                f"{LIVENESS_HOW_TO_INSTALL} ({exc.message})", retry_after_s=60
            ) from exc
    timings.add("liveness", started)
    bounds = np.cumsum([0, *counts])
    return [
        processing.liveness_result(c, scores[lo:hi], threshold)
        for c, (lo, hi) in zip(crops, itertools.pairwise(bounds), strict=True)
    ]


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
    size = ports.GENDERAGE_INPUT_SIZE_PX
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
