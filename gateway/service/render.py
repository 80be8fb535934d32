"""Annotated images: detect (and estimate attributes), then draw the faces on the image."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway import processing
from gateway.service.attributes import estimate_gender_age, estimate_liveness
from gateway.service.landmarks import estimate_landmarks
from gateway.service.pipeline import DetectOptions, ImageInput, Pipeline, Timings


async def render_faces(
    pipeline: Pipeline, image: ImageInput, options: DetectOptions, timings: Timings
) -> tuple[npt.NDArray[np.uint8], int]:
    """The image (uint8 BGR) with its faces drawn, and how many faces were drawn.

    With options.attributes, gender and age are drawn too (503 without genderage); with
    options.liveness, the liveness verdict and score (503 without the liveness model); with
    options.dense_landmarks the 106 points, with options.pose the angles (503 without them).
    """
    decoded, found = await pipeline.find_faces([image], options, timings)
    gender_age = None
    if options.attributes:
        (gender_age,) = await estimate_gender_age(
            pipeline.models, pipeline.in_thread, decoded, found, timings
        )
    liveness = None
    if options.liveness:
        (liveness,) = await estimate_liveness(
            pipeline.models,
            pipeline.in_thread,
            decoded,
            found,
            options.liveness_threshold,
            timings,
        )
    dense = pose = None
    if options.dense_landmarks or options.pose:
        (marks,) = await estimate_landmarks(
            pipeline.models,
            pipeline.in_thread,
            decoded,
            found,
            timings,
            dense=options.dense_landmarks,
            pose=options.pose,
        )
        dense, pose = marks.points_2d, marks.pose
    drawn = await pipeline.in_thread(
        processing.draw_faces, decoded[0], found[0], gender_age, liveness, dense, pose
    )
    return drawn, len(found[0])
