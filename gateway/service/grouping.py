"""Grouping faces into people, stateless (/v1/group): embeddings or every face of images.

The maths is gateway/processing/grouping.py (candidates over a neighbour graph, average
linkage inside each); here it runs off the event loop, with neighbours from all pairs (a
request holds at most MAX_GROUP_EMBEDDINGS faces, well within a dense matrix).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gateway.defaults import GROUP_MAX_DISTANCE, GROUP_MIN_FACES, MAX_GROUP_EMBEDDINGS
from gateway.errors import InvalidParameter
from gateway.gallery_ports import EMBEDDING_DIM
from gateway.processing import Detections
from gateway.processing.grouping import Grouping, group_faces, neighbour_pairs
from gateway.processing.multiscale import DEFAULT_DET_SIZES_PX
from gateway.service.pipeline import DetectOptions, ImageInput, Pipeline, Timings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupParams:
    """How close two faces of one person are (cosine distance) and the smallest group."""

    max_distance: float = GROUP_MAX_DISTANCE
    min_faces: int = GROUP_MIN_FACES


@dataclass(frozen=True)
class ImageGrouping:
    """Groups over every face of some images: `faces` (image index, face index by score)
    per grouped row, and each image's detections for the boxes."""

    grouping: Grouping
    faces: list[tuple[int, int]]
    detections: list[Detections]


def _group(embeddings: npt.NDArray[np.float32], params: GroupParams) -> Grouping:
    pairs = neighbour_pairs(embeddings, params.max_distance)
    return group_faces(embeddings, pairs, params.max_distance, params.min_faces)


async def group_embeddings(
    pipeline: Pipeline, embeddings: npt.NDArray[np.float32], params: GroupParams
) -> Grouping:
    """Group L2-normalised float32 (N, EMBEDDING_DIM) embeddings, N <= MAX_GROUP_EMBEDDINGS."""
    if len(embeddings) > MAX_GROUP_EMBEDDINGS:
        raise InvalidParameter(f"group takes at most {MAX_GROUP_EMBEDDINGS} faces per call")
    grouping = await pipeline.in_thread(_group, embeddings, params)
    log.info("group: %d face(s) into %d group(s)", len(embeddings), len(grouping.members()))
    return grouping


async def group_images(
    pipeline: Pipeline,
    images: Sequence[ImageInput],
    params: GroupParams,
    detect_threshold: float,
    det_sizes_px: tuple[int, ...] = DEFAULT_DET_SIZES_PX,
) -> ImageGrouping:
    """Detect and embed every face of the images, then group them all."""
    options = DetectOptions(threshold=detect_threshold, embed=True, det_sizes_px=det_sizes_px)
    found = await pipeline.detect(images, options, Timings())
    faces = [(i, j) for i, image in enumerate(found) for j in range(len(image.detections))]
    rows = [image.embeddings for image in found if image.embeddings is not None]
    embeddings = (
        np.concatenate(rows).astype(np.float32)
        if rows
        else np.zeros((0, EMBEDDING_DIM), np.float32)
    )
    grouping = await group_embeddings(pipeline, embeddings, params)
    return ImageGrouping(grouping, faces, [image.detections for image in found])
