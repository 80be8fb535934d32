"""Batch extraction for the compatibility routes: a bad image fails in place, not the batch.

/v1/detect/batch refuses a whole request when one image is bad; InsightFace-REST's
/extract reports that image as failed and answers the rest. So images are decoded one by
one here (failures kept as errors at their index), and the good ones go through the same
Pipeline.detect (one batched detector call, one batched recognizer call). Gender and age
come from the genderage model where it is served and are None where it is not, as
InsightFace-REST answers null without its attribute model.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from gateway import ports, processing
from gateway.errors import FacegateError, InvalidInput, InvalidParameter, UpstreamUnavailable
from gateway.processing import Detections
from gateway.service.attributes import estimate_gender_age
from gateway.service.pipeline import DetectOptions, ImageFaces, Pipeline, Timings, decode_or_raise

# An image's encoded bytes, or the reason it could not be read (reported in place).
ImageSource = bytes | FacegateError


@dataclass(frozen=True)
class ExtractedImage:
    """Faces of one image and what InsightFace-REST reports besides them.

    `scale`: detector pixels per original pixel (the letterbox scale, 1.0 for crops);
    `crops_bgr`: uint8 (N, 112, 112, 3) aligned crops in face order, or None unless asked.
    """

    faces: ImageFaces
    scale: float
    crops_bgr: npt.NDArray[np.uint8] | None


ExtractResult = ExtractedImage | FacegateError


async def _decode(
    pipeline: Pipeline, source: ImageSource, max_pixels: int
) -> npt.NDArray[np.uint8] | FacegateError:
    if isinstance(source, FacegateError):
        return source
    try:
        return await pipeline.in_thread(decode_or_raise, source, max_pixels)
    except InvalidInput as exc:
        return exc


async def decode_sources(
    pipeline: Pipeline, sources: Sequence[ImageSource], max_pixels: int, timings: Timings
) -> list[npt.NDArray[np.uint8] | FacegateError]:
    """Decode every image (in threads) to uint8 HxWx3 BGR; bad ones become their error."""
    started = time.perf_counter()
    decoded = await asyncio.gather(*(_decode(pipeline, s, max_pixels) for s in sources))
    timings.add("decode", started)
    return list(decoded)


async def extract_faces(
    pipeline: Pipeline,
    sources: Sequence[ImageSource],
    options: DetectOptions,
    *,
    max_pixels: int,
    with_crops: bool,
    group_size: int,
    timings: Timings,
    with_gender_age: bool = False,
) -> list[ExtractResult]:
    """Detect (and embed, per options) faces in every readable image; results in order.

    with_gender_age: ImageFaces.attributes per image where the genderage model is served,
    None where it is not (never an error: the rest of the answer stands).

    Images go through in groups of `group_size`, one group after the other. That bounds
    the decoded images held at once and the Triton calls one request has in flight: all 64
    images of an InsightFace-REST batch at once queue their last detector chunks past
    Triton's per-call deadline on a CPU host.
    """
    results: list[ExtractResult] = []
    for start in range(0, len(sources), group_size):
        group = sources[start : start + group_size]
        results += await _extract_group(
            pipeline, group, options, max_pixels, with_crops, with_gender_age, timings
        )
    return results


async def _extract_group(
    pipeline: Pipeline,
    sources: Sequence[ImageSource],
    options: DetectOptions,
    max_pixels: int,
    with_crops: bool,
    with_gender_age: bool,
    timings: Timings,
) -> list[ExtractResult]:
    decoded = await decode_sources(pipeline, sources, max_pixels, timings)
    results: list[ExtractResult] = [
        d if isinstance(d, FacegateError) else _PENDING for d in decoded
    ]
    good = [(i, d) for i, d in enumerate(decoded) if not isinstance(d, FacegateError)]
    if not good:
        return results
    images = [img for _, img in good]
    found = await pipeline.detect(images, options, timings)
    if with_gender_age:
        attributes = await _gender_age_or_none(pipeline, images, found, timings)
        found = [replace(faces, attributes=ga) for faces, ga in zip(found, attributes, strict=True)]
    crops: list[npt.NDArray[np.uint8] | None] = [None] * len(good)
    if with_crops:
        started = time.perf_counter()
        aligned = await asyncio.gather(
            *(
                pipeline.in_thread(
                    processing.warp_faces, img, faces.detections.kps, ports.RECOGNIZER_INPUT_SIZE_PX
                )
                for img, faces in zip(images, found, strict=True)
            )
        )
        timings.add("align", started)
        crops = [a.crops_bgr for a in aligned]
    for (index, _), faces, crop in zip(good, found, crops, strict=True):
        _, _, scale = processing.letterbox_size(
            faces.height, faces.width, ports.DETECTOR_INPUT_SIZE_PX
        )
        results[index] = ExtractedImage(faces, scale, crop)
    return results


async def _gender_age_or_none(
    pipeline: Pipeline,
    images: Sequence[npt.NDArray[np.uint8]],
    found: Sequence[ImageFaces],
    timings: Timings,
) -> list[processing.GenderAge | None]:
    """GenderAge per image, or None per image when the genderage model is not served.

    UpstreamUnavailable is what an uninstalled model gives (Triton's NOT_FOUND, or a backend
    without the method); detection just succeeded, so Triton itself is up.
    """
    try:
        return list(
            await estimate_gender_age(
                pipeline.models,
                pipeline.in_thread,
                images,
                [faces.detections for faces in found],
                timings,
            )
        )
    except UpstreamUnavailable:
        return [None] * len(found)


async def embed_aligned_crops(
    pipeline: Pipeline, sources: Sequence[ImageSource], *, max_pixels: int, timings: Timings
) -> list[ExtractResult]:
    """Embed images that already are aligned 112x112 face crops (no detection).

    Each readable crop becomes one face covering the whole crop, score 1.0, with the
    ArcFace template as its landmarks (where an aligned crop has them by construction).
    """
    size = ports.RECOGNIZER_INPUT_SIZE_PX
    decoded = await decode_sources(pipeline, sources, max_pixels, timings)
    results: list[ExtractResult] = []
    good: list[tuple[int, npt.NDArray[np.uint8]]] = []
    for index, item in enumerate(decoded):
        if isinstance(item, FacegateError):
            results.append(item)
        elif item.shape[:2] != (size, size):
            results.append(
                InvalidParameter(
                    f"embed_only expects aligned {size}x{size} face crops; this image is "
                    f"{item.shape[1]}x{item.shape[0]}: send whole photos without embed_only"
                )
            )
        else:
            results.append(_PENDING)
            good.append((index, item))
    if not good:
        return results
    normed, norms = await pipeline.embed_crops([crop for _, crop in good], timings)
    template = processing.template_for(size)
    for row, (index, _) in enumerate(good):
        detections = Detections(
            boxes=np.array([[0, 0, size, size]], dtype=np.float32),
            scores=np.ones((1,), dtype=np.float32),
            kps=template[None].astype(np.float32),
        )
        faces = ImageFaces(size, size, detections, normed[row : row + 1], norms[row : row + 1])
        results[index] = ExtractedImage(faces, 1.0, None)
    return results


# Placeholder for a slot filled once the batch is processed; never returned.
_PENDING = FacegateError("internal: image not processed")
