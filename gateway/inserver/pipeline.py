"""The `faces` pipeline without Triton: encoded images in, faces out, models behind `infer`.

The same processing steps, in the same order, as the gateway's service/pipeline.py (decode,
letterbox per det size, SCRFD decode, one NMS across sizes, selection, descending score,
5-point alignment, recognizer, L2 normalisation): the maths is gateway.processing's, here
and there. What differs is only where the models are: `infer` is Triton's BLS inside the
server (faces.py), and the requests are those the dynamic batcher handed one execute().
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from gateway import defaults, processing
from gateway.inserver.parameters import FacesDefaults, FacesRequest, InvalidRequest
from gateway.triton import spec

T = TypeVar("T")
# One model call: (model name, {input name: array}, output names) -> the outputs in that order.
Infer = Callable[
    [str, dict[str, npt.NDArray[Any]], Sequence[str]], Awaitable[list[npt.NDArray[Any]]]
]
_DETECTOR_OUTPUTS = tuple(t.name for t in spec.DETECTOR_OUTPUTS)


@dataclass(frozen=True)
class PipelineConfig:
    """The model config's parameters: the models called, their batch limits, the gateway's
    defaults (max_batch 0: the model takes one item per call)."""

    detector: str = spec.DETECTOR
    recognizer: str = spec.RECOGNIZER
    genderage: str = spec.GENDERAGE
    detector_max_batch: int = 8
    recognizer_max_batch: int = spec.RECOGNIZER_MAX_BATCH
    genderage_max_batch: int = spec.GENDERAGE_MAX_BATCH
    max_image_pixels: int = defaults.MAX_IMAGE_PIXELS
    nms_iou: float = defaults.NMS_IOU
    fallback: FacesDefaults = field(default_factory=FacesDefaults)


@dataclass(frozen=True)
class FacesAnswer:
    """One image's faces: detections in original pixels, descending score; embeddings
    float32 (N, 512) L2-normalised and their raw norms (N,), or None without embed;
    gender and age per face, or None without attributes."""

    width: int
    height: int
    detections: processing.Detections
    embeddings: npt.NDArray[np.float32] | None
    embedding_norms: npt.NDArray[np.float32] | None
    attributes: processing.GenderAge | None = None


@dataclass(frozen=True)
class _Decoded:
    img_bgr: npt.NDArray[np.uint8]
    letterboxes: list[processing.Letterbox]


def _decode(data: bytes, max_pixels: int, sizes_px: tuple[int, ...]) -> _Decoded:
    try:
        img_bgr = processing.decode_image(data, max_pixels)
    except processing.ImageError as exc:
        raise InvalidRequest(str(exc)) from None
    return _Decoded(img_bgr, [processing.letterbox_image(img_bgr, s) for s in sizes_px])


def _chunks(count: int, max_batch: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges of at most max_batch items (1 where the model is unbatched)."""
    step = max_batch if max_batch > 0 else 1
    return [(lo, min(lo + step, count)) for lo in range(0, count, step)]


class AttributesUnavailable(RuntimeError):
    """attributes=true, and the genderage call failed (not served here, or it broke)."""


GENDERAGE_HOW_TO_INSTALL = (
    "attributes=true needs the genderage model on this Triton: install it with `facegate models "
    "fetch` (buffalo_l and buffalo_s ship it) and load it"
)


class FacesPipeline:
    """Answers the requests of one execute(): each gets a FacesAnswer or its own exception."""

    def __init__(self, config: PipelineConfig, infer: Infer, executor: ThreadPoolExecutor) -> None:
        self.config = config
        self._infer = infer
        self._executor = executor

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def answer(
        self, jobs: Sequence[tuple[bytes, FacesRequest] | BaseException]
    ) -> list[FacesAnswer | BaseException]:
        """A result per job, in order; a job that is already an exception stays one.

        An image that does not decode fails its own job (InvalidRequest); a model call that
        fails fails the jobs that were in it.
        """
        results: list[FacesAnswer | BaseException | None] = [
            job if isinstance(job, BaseException) else None for job in jobs
        ]
        live = [(i, job) for i, job in enumerate(jobs) if not isinstance(job, BaseException)]
        decoded_or_error = await asyncio.gather(
            *(
                self._in_thread(_decode, data, self.config.max_image_pixels, req.det_sizes_px)
                for _, (data, req) in live
            ),
            return_exceptions=True,
        )
        ready: list[tuple[int, FacesRequest, _Decoded]] = []
        for (index, (_, request)), outcome in zip(live, decoded_or_error, strict=True):
            if isinstance(outcome, BaseException):
                results[index] = outcome
            else:
                ready.append((index, request, outcome))
        if ready:
            try:
                answers = await self._detect_and_embed(ready)
            except Exception as exc:  # a failed model call fails every job that was in it
                answers = [exc] * len(ready)
            for (index, _, _), answer in zip(ready, answers, strict=True):
                results[index] = answer
        return [r if r is not None else RuntimeError("no result") for r in results]

    async def _detect_and_embed(
        self, ready: Sequence[tuple[int, FacesRequest, _Decoded]]
    ) -> list[FacesAnswer | BaseException]:
        passes = await self._detect(ready)
        found = [
            processing.by_descending_score(
                processing.merge_passes(
                    job_passes,
                    decoded.img_bgr.shape,
                    request.threshold,
                    self.config.nms_iou,
                    request.max_faces,
                    request.min_size_px,
                )
            )
            for (_, request, decoded), job_passes in zip(ready, passes, strict=True)
        ]
        wanted = [
            i for i, (_, request, _) in enumerate(ready) if request.embed and len(found[i]) > 0
        ]
        embedded = await self._embed(
            [ready[i][2].img_bgr for i in wanted], [found[i].kps for i in wanted]
        )
        vectors: dict[int, tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = dict(
            zip(wanted, embedded, strict=True)
        )
        asked = [i for i, (_, request, _) in enumerate(ready) if request.attributes]
        try:
            estimated: dict[int, processing.GenderAge] | AttributesUnavailable = dict(
                zip(
                    asked,
                    await self._gender_age(
                        [ready[i][2].img_bgr for i in asked], [found[i] for i in asked]
                    ),
                    strict=True,
                )
            )
        except AttributesUnavailable as exc:  # fails the requests that asked, not their neighbours
            estimated = exc
        empty = np.zeros((0, spec.FACES_EMBEDDINGS.shape[1]), np.float32)
        answers: list[FacesAnswer | BaseException] = []
        for i, (_, request, decoded) in enumerate(ready):
            embeddings = norms = None
            if request.embed:
                embeddings, norms = vectors.get(i, (empty, np.zeros((0,), np.float32)))
            attributes = None
            if request.attributes:
                if isinstance(estimated, AttributesUnavailable):
                    answers.append(estimated)
                    continue
                attributes = estimated[i]
            height, width = decoded.img_bgr.shape[:2]
            answers.append(FacesAnswer(width, height, found[i], embeddings, norms, attributes))
        return answers

    async def _gender_age(
        self, images: Sequence[npt.NDArray[np.uint8]], found: Sequence[processing.Detections]
    ) -> list[processing.GenderAge]:
        """GenderAge per image, as the gateway's estimate_gender_age: one batch of all faces."""
        counts = [len(dets) for dets in found]
        if not sum(counts):
            return [processing.decode_genderage(np.zeros((0, 3), np.float32)) for _ in images]
        size = spec.GENDERAGE_INPUT_SIZE_PX
        crops = await asyncio.gather(
            *(
                self._in_thread(processing.crop_attribute_faces, img, dets.boxes, size)
                for img, dets in zip(images, found, strict=True)
            )
        )
        batch = np.concatenate([c.crops_bgr for c in crops])
        try:
            parts = await asyncio.gather(
                *(
                    self._infer(
                        self.config.genderage,
                        {spec.GENDERAGE_INPUT.name: batch[lo:hi]},
                        (spec.GENDERAGE_OUTPUT.name,),
                    )
                    for lo, hi in _chunks(len(batch), self.config.genderage_max_batch)
                )
            )
        except Exception as exc:
            raise AttributesUnavailable(f"{GENDERAGE_HOW_TO_INSTALL} ({exc})") from exc
        decoded = processing.decode_genderage(np.concatenate([p[0].reshape(-1, 3) for p in parts]))
        bounds = np.cumsum([0, *counts])
        return [
            processing.GenderAge(decoded.genders[lo:hi], decoded.ages[lo:hi])
            for lo, hi in itertools.pairwise(bounds)
        ]

    async def _detect(
        self, ready: Sequence[tuple[int, FacesRequest, _Decoded]]
    ) -> list[list[processing.DetectorPass]]:
        """Every job's detector passes, in the order of its det sizes: one batch per size."""
        by_size: dict[int, list[tuple[int, int]]] = {}
        for job, (_, request, _) in enumerate(ready):
            for k, size in enumerate(request.det_sizes_px):
                by_size.setdefault(size, []).append((job, k))
        calls = []
        for size, members in by_size.items():
            frames = np.stack([ready[job][2].letterboxes[k].frame_bgr for job, k in members])
            for lo, hi in _chunks(len(members), self.config.detector_max_batch):
                calls.append((size, members[lo:hi], frames[lo:hi]))
        outputs = await asyncio.gather(
            *(
                self._infer(
                    self.config.detector, {spec.DETECTOR_INPUT.name: chunk}, _DETECTOR_OUTPUTS
                )
                for _, _, chunk in calls
            )
        )
        count = len(spec.DETECTOR_STRIDES)
        passes: list[dict[int, processing.DetectorPass]] = [{} for _ in ready]
        for (size, members, _), heads in zip(calls, outputs, strict=True):
            for row, (job, k) in enumerate(members):
                per_frame = [h[row] for h in heads]
                passes[job][k] = processing.DetectorPass(
                    per_frame[:count],
                    per_frame[count : 2 * count],
                    per_frame[2 * count :],
                    size,
                    ready[job][2].letterboxes[k].scale,
                )
        return [[p[k] for k in sorted(p)] for p in passes]

    async def _embed(
        self, images: Sequence[npt.NDArray[np.uint8]], kps: Sequence[npt.NDArray[np.float32]]
    ) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]]:
        """(L2-normalised embeddings, raw norms) per image: all faces in recognizer batches."""
        if not images:
            return []
        aligned = await asyncio.gather(
            *(
                self._in_thread(processing.warp_faces, img, points, spec.RECOGNIZER_INPUT_SIZE_PX)
                for img, points in zip(images, kps, strict=True)
            )
        )
        crops = np.concatenate([a.crops_bgr for a in aligned])
        parts = await asyncio.gather(
            *(
                self._infer(
                    self.config.recognizer,
                    {spec.RECOGNIZER_INPUT.name: crops[lo:hi]},
                    (spec.RECOGNIZER_OUTPUT.name,),
                )
                for lo, hi in _chunks(len(crops), self.config.recognizer_max_batch)
            )
        )
        raw = np.concatenate([p[0].reshape(-1, spec.RECOGNIZER_OUTPUT.shape[0]) for p in parts])
        norms = np.linalg.norm(raw, axis=1).astype(np.float32)
        normed = processing.l2_normalize(raw)
        bounds = np.cumsum([0, *(len(a.crops_bgr) for a in aligned)])
        return [(normed[lo:hi], norms[lo:hi]) for lo, hi in itertools.pairwise(bounds)]
