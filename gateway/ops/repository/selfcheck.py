"""Numerical self-check: a prepared model equals its upstream model fed InsightFace's way.

The upstream side uses cv2.dnn.blobFromImage(s) with InsightFace's constants, exactly as
insightface.model_zoo's SCRFD, ArcFaceONNX and INSwapper prepare their inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import onnx

from gateway.ops.repository.prepare import PreparedModel, _run, swapper_emap
from gateway.triton import spec

# Float outputs: in-graph (x-127.5)*scale and OpenCV's blob differ only by rounding.
FLOAT_TOLERANCE = 1e-3
# Swapper pixels: uint8 truncation may flip by one level where the float lands on an integer.
PIXEL_TOLERANCE = 1


class SelfCheckFailed(Exception):
    """The prepared model does not reproduce the upstream model."""


@dataclass(frozen=True)
class SelfCheckResult:
    """Max abs difference between prepared and upstream outputs on random inputs."""

    name: str
    max_abs_diff: float
    tolerance: float


def _fail_if(name: str, diff: float, tolerance: float) -> SelfCheckResult:
    if not np.isfinite(diff) or diff > tolerance:
        raise SelfCheckFailed(
            f"{name}: prepared model differs from upstream by {diff:.3g} (tolerance {tolerance})"
        )
    return SelfCheckResult(name, diff, tolerance)


def check_detector(
    upstream: onnx.ModelProto, prepared: PreparedModel, rng: np.random.Generator
) -> SelfCheckResult:
    size = spec.DETECTOR_INPUT_SIZE_PX
    frame = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    blob = cv2.dnn.blobFromImage(
        frame, 1.0 / 128.0, (size, size), (127.5, 127.5, 127.5), swapRB=True
    )
    expected = _run(upstream, {upstream.graph.input[0].name: blob})
    actual = _run(prepared.model, {spec.DETECTOR_INPUT.name: frame[None]})
    diff = max(
        float(np.max(np.abs(a[0] - e.reshape(a.shape[1:]))))
        for a, e in zip(actual, expected, strict=True)
    )
    return _fail_if(prepared.name, diff, FLOAT_TOLERANCE)


def check_recognizer(
    upstream: onnx.ModelProto, prepared: PreparedModel, rng: np.random.Generator
) -> SelfCheckResult:
    size = spec.RECOGNIZER_INPUT_SIZE_PX
    crops = rng.integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    blob = cv2.dnn.blobFromImages(
        list(crops), 1.0 / 127.5, (size, size), (127.5, 127.5, 127.5), swapRB=True
    )
    (expected,) = _run(upstream, {upstream.graph.input[0].name: blob})
    (actual,) = _run(prepared.model, {spec.RECOGNIZER_INPUT.name: crops})
    scale = max(1.0, float(np.max(np.abs(expected))))
    return _fail_if(
        prepared.name, float(np.max(np.abs(actual - expected))) / scale, FLOAT_TOLERANCE
    )


def check_swapper(
    upstream: onnx.ModelProto, prepared: PreparedModel, rng: np.random.Generator
) -> SelfCheckResult:
    size = spec.SWAPPER_INPUT_SIZE_PX
    crop = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    embedding = rng.standard_normal((1, 512)).astype(np.float32)
    embedding /= np.linalg.norm(embedding)
    blob = cv2.dnn.blobFromImage(crop, 1.0 / 255.0, (size, size), (0.0, 0.0, 0.0), swapRB=True)
    latent = embedding @ swapper_emap(upstream)
    latent /= np.linalg.norm(latent)
    target_name, source_name = (i.name for i in upstream.graph.input[:2])
    (pred,) = _run(upstream, {target_name: blob, source_name: latent.astype(np.float32)})
    expected = np.clip(255 * pred.transpose(0, 2, 3, 1)[0], 0, 255).astype(np.uint8)[:, :, ::-1]
    (actual,) = _run(
        prepared.model, {spec.SWAPPER_TARGET.name: crop[None], spec.SWAPPER_SOURCE.name: embedding}
    )
    diff = float(np.max(np.abs(actual[0].astype(np.int16) - expected.astype(np.int16))))
    return _fail_if(prepared.name, diff, PIXEL_TOLERANCE)


CHECKS = {
    spec.DETECTOR: check_detector,
    spec.RECOGNIZER: check_recognizer,
    spec.SWAPPER: check_swapper,
}


def self_check(
    upstream: onnx.ModelProto, prepared: PreparedModel, seed: int = 0
) -> SelfCheckResult:
    """Run the role's check; raises SelfCheckFailed above its tolerance."""
    return CHECKS[prepared.name](upstream, prepared, np.random.default_rng(seed))
