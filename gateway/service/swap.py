"""Face swap orchestration: source identity -> swapper on Triton -> paste-back.

Follows InsightFace's INSwapper flow: the source identity is the recognizer's L2-normalised
embedding (several source images: mean of their normalised embeddings, renormalised); each
target face is aligned to the 128 px template, swapped, and pasted back in turn onto the
image as modified by the previous faces. The swapper load starts as soon as the request
arrives, so it overlaps with detection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from gateway import ports, processing
from gateway.errors import InvalidParameter, NoFaceFound, UpstreamUnavailable
from gateway.ports import FaceModels
from gateway.processing import Detections
from gateway.service.pipeline import DetectOptions, ImageInput, Pipeline, Timings
from gateway.service.swapper_lifecycle import SwapperManager

ImageFormat = Literal["png", "jpeg"]
ALL_FACES: Literal["all"] = "all"


@dataclass(frozen=True)
class SwapRequest:
    """Which faces to use: indexes follow /v1/detect's order (descending score)."""

    source_face: int | None = None
    target_face: int | Literal["all"] | None = None
    threshold: float = 0.5


@dataclass(frozen=True)
class SwapResult:
    img_bgr: npt.NDArray[np.uint8]
    faces_swapped: int


def most_prominent(detections: Detections, image_shape: tuple[int, ...]) -> int:
    """Index (in `detections`) of InsightFace's most prominent face: area minus centre offset."""
    boxes = detections.boxes
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    centre_y, centre_x = image_shape[0] // 2, image_shape[1] // 2
    offset = ((boxes[:, 0] + boxes[:, 2]) / 2 - centre_x) ** 2 + (
        (boxes[:, 1] + boxes[:, 3]) / 2 - centre_y
    ) ** 2
    return int(np.argmax(area - 2.0 * offset))


def _pick(
    detections: Detections, image_shape: tuple[int, ...], index: int | None, label: str
) -> int:
    if len(detections) == 0:
        raise NoFaceFound(f"no face found in {label}: send a photo with a visible face")
    if index is None:
        return most_prominent(detections, image_shape)
    if not 0 <= index < len(detections):
        raise InvalidParameter(
            f"{label} has {len(detections)} face(s); face index {index} is out of range"
        )
    return index


def encode_image(img_bgr: npt.NDArray[np.uint8], image_format: ImageFormat, quality: int) -> bytes:
    """PNG or JPEG bytes of a BGR image."""
    if image_format == "jpeg":
        ok, buf = cv2.imencode(".jpg", img_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    else:
        ok, buf = cv2.imencode(".png", img_bgr)
    if not ok:
        raise InvalidParameter(f"could not encode the result as {image_format}")
    return bytes(buf.tobytes())


class SwapPipeline:
    """Swaps faces with the swapper loaded on demand through a SwapperManager."""

    def __init__(
        self,
        pipeline: Pipeline,
        models: FaceModels,
        manager: SwapperManager,
        load_wait_s: float = 30.0,
    ) -> None:
        """load_wait_s: how long a request waits for a cold load before a 503 (the load goes on)."""
        self._load_wait_s = load_wait_s
        self._pipeline = pipeline
        self._models = models
        self._manager = manager

    async def swap(
        self,
        sources: Sequence[ImageInput],
        target: ImageInput,
        request: SwapRequest,
        timings: Timings,
    ) -> SwapResult:
        """Swap the sources' identity onto the chosen target faces, loading the swapper if needed."""
        async with self._manager.in_use():
            loading = asyncio.ensure_future(self._manager.ensure_loaded())
            # Retrieve the outcome even when this request stops waiting for it.
            loading.add_done_callback(lambda done: done.cancelled() or done.exception())
            try:
                identity, result, chosen = await self._identity_and_targets(
                    sources, target, request, timings
                )
            except BaseException:
                # The shared load is shielded and carries on for the next request.
                loading.cancel()
                raise
            started = time.perf_counter()
            try:
                await asyncio.wait_for(asyncio.shield(loading), self._load_wait_s)
            except asyncio.TimeoutError as exc:
                raise UpstreamUnavailable(
                    "the face swapper is still loading: retry in a few seconds", retry_after_s=5
                ) from exc
            timings.add("swapper_load_wait", started)
            # paste_face returns a new image each time; the decoded target is never written.
            for kps in chosen:
                result = await self._swap_one(result, kps, identity, timings)
            return SwapResult(result, len(chosen))

    async def _identity_and_targets(
        self,
        sources: Sequence[ImageInput],
        target: ImageInput,
        request: SwapRequest,
        timings: Timings,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8], list[npt.NDArray[np.float32]]]:
        options = DetectOptions(threshold=request.threshold)
        decoded, found = await self._pipeline.find_faces([*sources, target], options, timings)
        source_dets = []
        for number, (img, dets) in enumerate(zip(decoded[:-1], found[:-1], strict=True)):
            label = "source" if len(sources) == 1 else f"source #{number + 1}"
            index = _pick(dets, img.shape, request.source_face, label)
            source_dets.append(dets.take(np.array([index])))
        target_img, target_dets = decoded[-1], found[-1]
        wanted = request.target_face
        if wanted == ALL_FACES:
            _pick(target_dets, target_img.shape, None, "target")
            chosen = [target_dets.kps[i] for i in range(len(target_dets))]
        else:
            index = _pick(target_dets, target_img.shape, wanted, "target")
            chosen = [target_dets.kps[index]]
        embeddings, _ = await self._pipeline.embed_faces(decoded[:-1], source_dets, timings)
        normed = np.concatenate([e for e in embeddings if e is not None])
        return processing.average_identity(normed), target_img, chosen

    async def _swap_one(
        self,
        img_bgr: npt.NDArray[np.uint8],
        kps: npt.NDArray[np.float32],
        identity: npt.NDArray[np.float32],
        timings: Timings,
    ) -> npt.NDArray[np.uint8]:
        started = time.perf_counter()
        aligned = await self._pipeline.in_thread(
            processing.warp_faces, img_bgr, kps[None], ports.SWAPPER_INPUT_SIZE_PX
        )
        timings.add("align", started)
        started = time.perf_counter()
        try:
            swapped = await self._models.swap(aligned.crops_bgr[0], identity)
        except UpstreamUnavailable:
            # Unloaded behind our back (another replica, an admin): load once more and retry.
            self._manager.mark_unavailable()
            await self._manager.ensure_loaded()
            swapped = await self._models.swap(aligned.crops_bgr[0], identity)
        timings.add("swapper", started)
        started = time.perf_counter()
        pasted = await self._pipeline.in_thread(
            processing.paste_face, img_bgr, swapped, aligned.affines[0]
        )
        timings.add("paste", started)
        return pasted
