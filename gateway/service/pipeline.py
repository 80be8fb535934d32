"""Async orchestration: processing (in threads) -> Triton -> processing.

The pipeline talks to the ports.FaceModels protocol, so unit tests hand it a fake and the
integration tests the real Triton. Foreign image-decoding errors are translated here.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from gateway import defaults, ports, processing
from gateway.errors import (
    InvalidInput,
    InvalidParameter,
    NoFaceFound,
    PayloadTooLarge,
    UndecodableImage,
    UnsupportedMediaType,
)
from gateway.ports import FaceModels
from gateway.processing import Detections
from gateway.service.attributes import estimate_gender_age, estimate_liveness
from gateway.service.landmarks import FaceLandmarks, estimate_landmarks
from gateway.service.quality import assess_quality

T = TypeVar("T")
# Largest libjpeg reduction for the detector frames. On a 12 MP JPEG, 1/4 moved detector
# scores by up to 6e-3 against InsightFace's full decode (fidelity tolerance 1e-3), 1/2 by
# 4e-4 (tests/fidelity/test_reduced_decode_fidelity.py; docs/BENCHMARKS.md).
REDUCED_DECODE_MAX_FACTOR = 2
# An image as encoded bytes (JPEG, PNG, WebP, BMP) or an already decoded img_bgr
# (uint8 HxWx3; the direct gRPC client checks it before it gets here).
ImageInput = bytes | npt.NDArray[np.uint8]


@dataclass(frozen=True)
class DetectOptions:
    """Per-request detection options (validated at the API boundary)."""

    threshold: float = 0.5
    max_faces: int = 0
    min_size_px: float = 0.0
    embed: bool = False
    # Detector frame sides, one pass each, merged as insightface 2.1 merges them; the API's
    # default is insightface 2.1's (128, 640), this one keeps single-scale callers as they were.
    det_sizes_px: tuple[int, ...] = (ports.DETECTOR_INPUT_SIZE_PX,)
    # Gender and age per face (genderage on Triton; 503 when it is not installed).
    attributes: bool = False
    # Liveness per face (insightface 2.1's addon on Triton; 503 when it is not installed).
    liveness: bool = False
    liveness_threshold: float = processing.DEFAULT_LIVENESS_THRESHOLD
    # 106 2-D and 68 3-D landmarks per face (2d106det and 1k3d68 on Triton; 503 without them).
    dense_landmarks: bool = False
    # Head pose per face (from 1k3d68's points; 503 without it).
    pose: bool = False
    # Quality for recognition per face (size, sharpness, norm, and pose where 1k3d68 is served
    # and `quality_pose`: one more inference per face).
    quality: bool = False
    quality_pose: bool = True


@dataclass(frozen=True)
class ImageFaces:
    """Faces of one image: detections in original pixels, descending score, and embeddings.

    `embeddings` is float32 (N, 512) L2-normalised, or None when not asked for;
    `embedding_norms` (N,) are the raw vectors' norms.
    """

    width: int
    height: int
    detections: Detections
    embeddings: npt.NDArray[np.float32] | None
    embedding_norms: npt.NDArray[np.float32] | None
    # Gender and age per face, or None when not asked for.
    attributes: processing.GenderAge | None = None
    # Liveness per face, or None when not asked for.
    liveness: processing.LivenessResult | None = None
    # Dense landmarks and head pose per face, or None when neither was asked for.
    landmarks: FaceLandmarks | None = None
    # Quality per face, or None when not asked for.
    quality: processing.FaceQuality | None = None


@dataclass
class Timings:
    """Wall-clock milliseconds per stage of one request."""

    stages: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, started: float) -> None:
        self.stages[stage] = self.stages.get(stage, 0.0) + (time.perf_counter() - started) * 1000


@dataclass(frozen=True)
class Verification:
    """The most prominent face of each image and their cosine similarity."""

    similarity: float
    threshold: float
    face_a: ImageFaces
    face_b: ImageFaces

    @property
    def match(self) -> bool:
        return self.similarity >= self.threshold


# processing's decoding errors -> the gateway's tree (the seam for image decoding).
_DECODE_ERRORS: tuple[tuple[type[processing.ImageError], type[InvalidInput]], ...] = (
    (processing.ImageTooLarge, PayloadTooLarge),
    (processing.UnsupportedImageType, UnsupportedMediaType),
    (processing.CorruptImage, UndecodableImage),
)


def decode_or_raise(data: bytes, max_pixels: int) -> npt.NDArray[np.uint8]:
    """decode_image with its errors translated into the gateway's error tree."""
    return _translated(processing.decode_image, data, max_pixels)


def _translated(fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    except processing.ImageError as exc:
        error = next(
            (domain for foreign, domain in _DECODE_ERRORS if isinstance(exc, foreign)),
            UndecodableImage,
        )
        raise error(str(exc)) from exc


@dataclass(frozen=True)
class _Frames:
    """One image made ready for the detector.

    `img_bgr`: the full-resolution image, or None while it is still to be decoded (the
    detector frames came from a reduced decode); `factor`: full-image pixels per pixel of
    the image the frames were cut from; `shape`: the full image's (H, W, 3).
    """

    img_bgr: npt.NDArray[np.uint8] | None
    letterboxes: list[processing.Letterbox]
    factor: int
    shape: tuple[int, ...]


def _prepare_frames(
    data: ImageInput, max_pixels: int, sizes_px: tuple[int, ...], reduced_decode: bool
) -> _Frames:
    if reduced_decode and not isinstance(data, np.ndarray):
        reduced = _translated(
            processing.decode_reduced,
            data,
            max_pixels,
            max(sizes_px),
            REDUCED_DECODE_MAX_FACTOR,
        )
        if reduced is not None:
            frames = [processing.letterbox_image(reduced.img_bgr, size) for size in sizes_px]
            return _Frames(None, frames, reduced.factor, reduced.full_shape)
    img_bgr = data if isinstance(data, np.ndarray) else decode_or_raise(data, max_pixels)
    frames = [processing.letterbox_image(img_bgr, size) for size in sizes_px]
    return _Frames(img_bgr, frames, 1, img_bgr.shape)


def _decode_crop(data: ImageInput, max_pixels: int) -> npt.NDArray[np.uint8]:
    return data if isinstance(data, np.ndarray) else decode_or_raise(data, max_pixels)


class Pipeline:
    """detect / detect-batch / verify over a FaceModels backend."""

    def __init__(
        self,
        models: FaceModels,
        executor: ThreadPoolExecutor,
        *,
        max_pixels: int,
        nms_iou: float,
        reduced_decode: bool = False,
        allowed_det_sizes_px: tuple[int, ...] = (),
        quality_thresholds: processing.QualityThresholds = defaults.QUALITY_THRESHOLDS,
    ) -> None:
        self._models = models
        self.thresholds = quality_thresholds
        self._executor = executor
        self._max_pixels = max_pixels
        self._nms_iou = nms_iou
        # Non-empty: the only detector sizes served (a TensorRT detector's warmed-up sizes;
        # any other would build an engine on the request path for minutes).
        self._allowed_det_sizes_px = allowed_det_sizes_px
        # Detector frames of large JPEGs from a 1/2-scale decode (processing/reduced.py).
        self._reduced_decode = reduced_decode

    @property
    def models(self) -> FaceModels:
        """The inference backend (read-only), for services built on the pipeline."""
        return self._models

    def _check_det_sizes(self, sizes: tuple[int, ...]) -> None:
        allowed = self._allowed_det_sizes_px
        refused = [s for s in sizes if allowed and s not in allowed]
        if refused:
            raise InvalidParameter(
                f"det_sizes {','.join(map(str, refused))} is not served here: this detector is "
                f"prepared for {','.join(map(str, allowed))} only (FACEGATE_DET_SIZES_ALLOWED); "
                "ask for those"
            )

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU work (decode, warp, paste) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def find_faces(
        self, images: Sequence[ImageInput], options: DetectOptions, timings: Timings
    ) -> tuple[list[npt.NDArray[np.uint8]], list[Detections]]:
        """Decode each image and detect its faces (one batched detector call).

        Returns the decoded img_bgr per image and its Detections in original pixels,
        in descending score.
        """
        started = time.perf_counter()
        sizes = options.det_sizes_px
        self._check_det_sizes(sizes)
        prepared = await asyncio.gather(
            *(
                self.in_thread(_prepare_frames, data, self._max_pixels, sizes, self._reduced_decode)
                for data in images
            )
        )
        # Full-resolution decodes of images whose frames came from a reduced decode run
        # while the detector does: alignment needs the full image, detection does not.
        pending = {
            i: asyncio.ensure_future(self.in_thread(decode_or_raise, data, self._max_pixels))
            for i, (data, frames) in enumerate(zip(images, prepared, strict=True))
            if frames.img_bgr is None and isinstance(data, bytes)
        }
        timings.add("decode", started)

        started = time.perf_counter()
        try:
            # One batched detector call per size, all sizes at once (a request holds one shape).
            raw = await asyncio.gather(
                *(
                    self._models.detect(np.stack([f.letterboxes[k].frame_bgr for f in prepared]))
                    for k in range(len(sizes))
                )
            )
        except BaseException:
            await asyncio.gather(*pending.values(), return_exceptions=True)
            raise
        timings.add("detector", started)

        started = time.perf_counter()
        found = [
            self._postprocess(
                [
                    processing.DetectorPass(
                        raw[k][i].scores,
                        raw[k][i].bbox_dists,
                        raw[k][i].kps_dists,
                        size,
                        frames.letterboxes[k].scale / frames.factor,
                    )
                    for k, size in enumerate(sizes)
                ],
                frames.shape,
                options,
            )
            for i, frames in enumerate(prepared)
        ]
        timings.add("postprocess", started)
        full: dict[int, npt.NDArray[np.uint8]] = {}
        if pending:
            started = time.perf_counter()
            full = dict(zip(pending, await asyncio.gather(*pending.values()), strict=True))
            timings.add("full decode wait", started)
        decoded = [
            frames.img_bgr if frames.img_bgr is not None else full[i]
            for i, frames in enumerate(prepared)
        ]
        return decoded, found

    async def detect(
        self, images: Sequence[ImageInput], options: DetectOptions, timings: Timings
    ) -> list[ImageFaces]:
        """Detect (and optionally embed) faces in each image; detector and recognizer batched."""
        decoded, found = await self.find_faces(images, options, timings)
        embeddings: list[npt.NDArray[np.float32] | None] = [None] * len(found)
        norms: list[npt.NDArray[np.float32] | None] = [None] * len(found)
        attributes: list[processing.GenderAge | None] = [None] * len(found)
        if options.embed or options.quality:
            embeddings, norms = await self.embed_faces(decoded, found, timings)
        if options.attributes:
            attributes = list(
                await estimate_gender_age(self._models, self.in_thread, decoded, found, timings)
            )
        liveness: list[processing.LivenessResult | None] = [None] * len(found)
        if options.liveness:
            liveness = list(
                await estimate_liveness(
                    self._models,
                    self.in_thread,
                    decoded,
                    found,
                    options.liveness_threshold,
                    timings,
                )
            )
        landmarks: list[FaceLandmarks | None] = [None] * len(found)
        if options.dense_landmarks or options.pose:
            landmarks = list(
                await estimate_landmarks(
                    self._models,
                    self.in_thread,
                    decoded,
                    found,
                    timings,
                    dense=options.dense_landmarks,
                    pose=options.pose,
                )
            )
        quality: list[processing.FaceQuality | None] = [None] * len(found)
        if options.quality:
            graded = await self.assess_quality(
                decoded, found, norms, timings, landmarks, pose=options.quality_pose
            )
            quality = [*graded]
        if not options.embed:
            embeddings, norms = [None] * len(found), [None] * len(found)
        return [
            ImageFaces(img.shape[1], img.shape[0], dets, emb, norm, attrs, live, marks, q)
            for img, dets, emb, norm, attrs, live, marks, q in zip(
                decoded,
                found,
                embeddings,
                norms,
                attributes,
                liveness,
                landmarks,
                quality,
                strict=True,
            )
        ]

    def _postprocess(
        self,
        passes: Sequence[processing.DetectorPass],
        image_shape: tuple[int, ...],
        options: DetectOptions,
    ) -> Detections:
        detections = processing.merge_passes(
            passes,
            image_shape,
            options.threshold,
            self._nms_iou,
            options.max_faces,
            options.min_size_px,
        )
        return processing.by_descending_score(detections)

    async def assess_quality(
        self,
        images: Sequence[npt.NDArray[np.uint8]],
        found: Sequence[Detections],
        norms: Sequence[npt.NDArray[np.float32] | None],
        timings: Timings,
        landmarks: Sequence[FaceLandmarks | None] | None = None,
        *,
        pose: bool = True,
        strict_pose: bool = False,
    ) -> list[processing.FaceQuality]:
        """FaceQuality per image at this pipeline's thresholds (pose from `landmarks` where
        they hold it, else, when `pose`, from 1k3d68 when served; see assess_quality)."""
        marks = landmarks if landmarks is not None else [None] * len(found)
        return list(
            await assess_quality(
                self._models,
                self.in_thread,
                images,
                found,
                norms,
                marks,
                self.thresholds,
                timings,
                pose=pose,
                strict_pose=strict_pose,
            )
        )

    async def embed_faces(
        self,
        images: Sequence[npt.NDArray[np.uint8]],
        found: Sequence[Detections],
        timings: Timings,
    ) -> tuple[list[npt.NDArray[np.float32] | None], list[npt.NDArray[np.float32] | None]]:
        """L2-normalised embeddings and raw norms per image (one batched recognizer call)."""
        started = time.perf_counter()
        aligned = await asyncio.gather(
            *(
                self.in_thread(processing.warp_faces, img, dets.kps, ports.RECOGNIZER_INPUT_SIZE_PX)
                for img, dets in zip(images, found, strict=True)
            )
        )
        timings.add("align", started)
        crops = [a.crops_bgr for a in aligned]
        counts = [len(c) for c in crops]
        started = time.perf_counter()
        raw = await self._models.embed(np.concatenate(crops) if sum(counts) else crops[0])
        timings.add("recognizer", started)
        norms_all = np.linalg.norm(raw, axis=1).astype(np.float32)
        normed_all = processing.l2_normalize(raw)
        bounds = np.cumsum([0, *counts])
        embeddings: list[npt.NDArray[np.float32] | None] = []
        norms: list[npt.NDArray[np.float32] | None] = []
        for lo, hi in itertools.pairwise(bounds):
            embeddings.append(normed_all[lo:hi])
            norms.append(norms_all[lo:hi])
        return embeddings, norms

    async def embed_crops(
        self, crops: Sequence[npt.NDArray[np.uint8]], timings: Timings
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Embeddings of already aligned uint8 112x112x3 BGR crops (one batched call).

        Returns float32 (N, 512) L2-normalised embeddings and (N,) raw norms, in order.
        """
        started = time.perf_counter()
        raw = await self._models.embed(np.stack(crops))
        timings.add("recognizer", started)
        return processing.l2_normalize(raw), np.linalg.norm(raw, axis=1).astype(np.float32)

    async def embed_aligned(
        self, crops: Sequence[ImageInput], timings: Timings
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """embed_crops for encoded or decoded crops that must already be aligned 112x112.

        A crop of another size is InvalidParameter (422): nothing is resized, since a resized
        whole image would give a meaningless embedding.
        """
        started = time.perf_counter()
        decoded = await asyncio.gather(
            *(self.in_thread(_decode_crop, data, self._max_pixels) for data in crops)
        )
        size = ports.RECOGNIZER_INPUT_SIZE_PX
        for index, crop in enumerate(decoded):
            if crop.shape[:2] != (size, size):
                raise InvalidParameter(
                    f"crop {index} is {crop.shape[1]}x{crop.shape[0]}; /v1/embed takes faces "
                    f"already aligned to {size}x{size} (send whole images to "
                    "/v1/detect?embed=true)"
                )
        timings.add("decode", started)
        return await self.embed_crops(decoded, timings)

    async def verify(
        self,
        image_a: ImageInput,
        image_b: ImageInput,
        threshold: float,
        timings: Timings,
        detect_threshold: float = 0.5,
        det_sizes_px: tuple[int, ...] = (ports.DETECTOR_INPUT_SIZE_PX,),
    ) -> Verification:
        """Compare the most prominent face of each image (InsightFace's prominence rule)."""
        options = DetectOptions(
            threshold=detect_threshold, max_faces=1, embed=True, det_sizes_px=det_sizes_px
        )
        face_a, face_b = await self.detect([image_a, image_b], options, timings)
        for label, faces in (("image_a", face_a), ("image_b", face_b)):
            if len(faces.detections) == 0:
                raise NoFaceFound(f"no face found in {label}: send a photo with a visible face")
        assert face_a.embeddings is not None and face_b.embeddings is not None
        similarity = processing.cosine_similarity(face_a.embeddings[0], face_b.embeddings[0])
        return Verification(similarity, threshold, face_a, face_b)
