"""Checks and chunking of the images a client is given: bytes or decoded img_bgr arrays."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from gateway import defaults, processing
from gateway.client.errors import InvalidArgument
from gateway.errors import PayloadTooLarge
from gateway.service.pipeline import ImageFaces, ImageInput
from gateway.triton import spec


@dataclass(frozen=True)
class ClientOptions:
    """Tuning of a direct gRPC client; detection defaults are the REST gateway's.

    batch_size: images per detector request (split further where it exceeds the model's
    max batch); prefetch: batches in flight in a stream, so that one batch's detector work
    overlaps the previous batch's recognizer work; shm_regions_per_model: shared-memory
    regions (one per in-flight request) for each of the detector and the recognizer.
    """

    timeout_s: float = defaults.TRITON_TIMEOUT_S
    unavailable_retries: int = defaults.TRITON_UNAVAILABLE_RETRIES
    detect_threshold: float = defaults.DETECT_THRESHOLD
    nms_iou: float = defaults.NMS_IOU
    # Detector frame sides, e.g. "640" or "128,640" (insightface 2.1's default).
    det_sizes: str = defaults.DET_SIZES
    liveness_threshold: float = defaults.LIVENESS_THRESHOLD
    verify_threshold: float = defaults.VERIFY_THRESHOLD
    max_image_pixels: int = defaults.MAX_IMAGE_PIXELS
    swapper_load_timeout_s: float = defaults.SWAPPER_LOAD_TIMEOUT_S
    batch_size: int = 8
    prefetch: int = 2
    cpu_threads: int = 4
    shm_regions_per_model: int = 2
    detector: str = spec.DETECTOR
    recognizer: str = spec.RECOGNIZER
    swapper: str = spec.SWAPPER
    genderage: str = spec.GENDERAGE
    liveness: str = spec.LIVENESS
    landmark_2d_106: str = spec.LANDMARK_2D106
    landmark_3d_68: str = spec.LANDMARK_3D68

    def __post_init__(self) -> None:
        for name in ("timeout_s", "batch_size", "prefetch", "cpu_threads", "shm_regions_per_model"):
            if getattr(self, name) <= 0:
                raise InvalidArgument(f"ClientOptions.{name} must be positive")


def check_det_sizes(
    requested: str | Sequence[int] | None, default: str | Sequence[int]
) -> tuple[int, ...]:
    """Detector frame sides from "640", "128,640" or (128, 640); `default` when None.

    Raises InvalidArgument that says which sizes are accepted.
    """
    chosen = default if requested is None else requested
    text = chosen if isinstance(chosen, str) else ",".join(str(s) for s in chosen)
    try:
        return processing.parse_det_sizes(text)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from exc


def check_image(image: object, max_pixels: int) -> ImageInput:
    """Encoded bytes as they are, or a C-contiguous uint8 (H, W, 3) BGR array."""
    if isinstance(image, bytes | bytearray | memoryview):
        return bytes(image)
    if not isinstance(image, np.ndarray):
        raise InvalidArgument(
            f"an image is encoded bytes or a uint8 BGR array, not {type(image).__name__}"
        )
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise InvalidArgument(
            f"an image array must be uint8 (H, W, 3) BGR; got {image.dtype} {image.shape}"
        )
    if image.shape[0] * image.shape[1] > max_pixels:
        raise PayloadTooLarge(
            f"image of {image.shape[1]}x{image.shape[0]} pixels; the limit is {max_pixels}"
        )
    return np.ascontiguousarray(image)


async def chunk_images(
    images: Iterable[object] | AsyncIterable[object], size: int, max_pixels: int
) -> AsyncIterator[list[ImageInput]]:
    """Checked images in lists of `size` (the last may be shorter), in order."""
    chunk: list[ImageInput] = []
    if isinstance(images, AsyncIterable):
        async for image in images:
            chunk.append(check_image(image, max_pixels))
            if len(chunk) == size:
                yield chunk
                chunk = []
    else:
        for image in images:
            chunk.append(check_image(image, max_pixels))
            if len(chunk) == size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def encode_image(image: ImageInput) -> bytes:
    """Encoded bytes as they are; an img_bgr array as a lossless PNG."""
    if isinstance(image, bytes):
        return image
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise InvalidArgument("the image array could not be encoded as PNG")
    return bytes(buffer.tobytes())


def faces_from_outputs(outputs: Mapping[str, npt.NDArray[Any]]) -> ImageFaces:
    """ImageFaces from the `faces` model's outputs (batch axis of 1 dropped)."""
    width, height = (int(v) for v in outputs[spec.FACES_IMAGE_SIZE.name][0])
    detections = processing.Detections(
        boxes=np.array(outputs[spec.FACES_BOXES.name][0], np.float32).reshape(-1, 4),
        scores=np.array(outputs[spec.FACES_SCORES.name][0], np.float32).reshape(-1),
        kps=np.array(outputs[spec.FACES_LANDMARKS.name][0], np.float32).reshape(-1, 5, 2),
    )
    embeddings = outputs.get(spec.FACES_EMBEDDINGS.name)
    norms = outputs.get(spec.FACES_EMBEDDING_NORMS.name)
    genders = outputs.get(spec.FACES_GENDERS.name)
    ages = outputs.get(spec.FACES_AGES.name)
    attributes = None
    if genders is not None and ages is not None:
        attributes = processing.GenderAge(
            np.array(genders[0], np.int64).reshape(-1), np.array(ages[0], np.int64).reshape(-1)
        )
    return ImageFaces(
        width,
        height,
        detections,
        None
        if embeddings is None
        else np.array(embeddings[0], np.float32).reshape(-1, spec.FACES_EMBEDDINGS.shape[1]),
        None if norms is None else np.array(norms[0], np.float32).reshape(-1),
        attributes,
    )


@dataclass(frozen=True)
class Analysis:
    """The per-face analyses beyond detection a detect call asks for (dense landmarks, pose,
    quality)."""

    dense_landmarks: bool = False
    pose: bool = False
    quality: bool = False


NO_ANALYSIS = Analysis()
