"""Numerical self-check: a prepared model equals its upstream model fed InsightFace's way.

The upstream side uses cv2.dnn.blobFromImage(s) with InsightFace's constants, exactly as
insightface.model_zoo's SCRFD, ArcFaceONNX and INSwapper prepare their inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import onnx

from gateway.ops.failures import ModelRefused
from gateway.ops.repository.prepare import (
    PreparedModel,
    arcface_normalisation,
    attribute_normalisation,
    graph_inputs,
    open_session,
    run_model,
    swapper_emap,
)
from gateway.triton import spec

# Float outputs: in-graph (x-127.5)*scale and OpenCV's blob differ only by rounding.
FLOAT_TOLERANCE = 1e-3
# Swapper pixels: uint8 truncation may flip by one level where the float lands on an integer.
PIXEL_TOLERANCE = 1


class SelfCheckFailed(ModelRefused):
    """The prepared model does not reproduce the upstream model."""


@dataclass(frozen=True)
class SelfCheckResult:
    """Max abs difference between prepared and upstream outputs on random inputs."""

    name: str
    max_abs_diff: float
    tolerance: float


DETECTOR_CHECK_SIZES_PX = (128, spec.DETECTOR_INPUT_SIZE_PX)


def _fail_if(name: str, diff: float, tolerance: float) -> SelfCheckResult:
    if not np.isfinite(diff) or diff > tolerance:
        raise SelfCheckFailed(
            f"self-check of the {name}: the prepared model differs from the upstream file by "
            f"{diff:.3g} (tolerance {tolerance}) on the same pixels fed InsightFace's way, so "
            "facegate will not serve it. Nothing was installed. This points at a prepare step "
            "that does not understand the file: rerun with --debug and report it with the "
            "file's sha256; meanwhile install the official file (facegate models fetch)."
        )
    return SelfCheckResult(name, diff, tolerance)


def _input_name(model: onnx.ModelProto, index: int = 0) -> str:
    return graph_inputs(model)[index].name


def check_detector(
    upstream: onnx.ModelProto, prepared: PreparedModel, rng: np.random.Generator
) -> SelfCheckResult:
    diff = 0.0
    # Both sizes of insightface 2.1's default where the upstream frame is symbolic (the packs'
    # files); a file exported at a fixed 640 answers only 640 (serve it with det_sizes=640).
    dims = graph_inputs(upstream)[0].type.tensor_type.shape.dim
    fixed = len(dims) == 4 and all(d.HasField("dim_value") for d in dims[2:])
    for size in (spec.DETECTOR_INPUT_SIZE_PX,) if fixed else DETECTOR_CHECK_SIZES_PX:
        frame = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        blob = cv2.dnn.blobFromImage(
            frame, 1.0 / 128.0, (size, size), (127.5, 127.5, 127.5), swapRB=True
        )
        expected = run_model(upstream, {_input_name(upstream): blob})
        actual = run_model(prepared.model, {spec.DETECTOR_INPUT.name: frame[None]})
        diff = max(
            diff,
            *(
                float(np.max(np.abs(a[0] - e.reshape(a.shape[1:]))))
                for a, e in zip(actual, expected, strict=True)
            ),
        )
    return _fail_if(prepared.name, diff, FLOAT_TOLERANCE)


def check_recognizer(
    upstream: onnx.ModelProto, prepared: PreparedModel, rng: np.random.Generator
) -> SelfCheckResult:
    size = spec.RECOGNIZER_INPUT_SIZE_PX
    # The served model takes the crops as one batch where it is batched; the upstream one
    # takes them one at a time, as ArcFaceONNX.get feeds it (its file may fix batch 1).
    count = 3 if prepared.max_batch_size else 1
    crops = rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    mean, std = arcface_normalisation(upstream)
    blobs = [
        cv2.dnn.blobFromImage(crop, 1.0 / std, (size, size), (mean, mean, mean), swapRB=True)
        for crop in crops
    ]
    run_upstream = open_session(upstream)
    expected = np.concatenate([run_upstream({_input_name(upstream): b})[0] for b in blobs])
    (actual,) = run_model(prepared.model, {spec.RECOGNIZER_INPUT.name: crops})
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
    feeds = {_input_name(upstream, 0): blob, _input_name(upstream, 1): latent.astype(np.float32)}
    (pred,) = run_model(upstream, feeds)
    expected = np.clip(255 * pred.transpose(0, 2, 3, 1)[0], 0, 255).astype(np.uint8)[:, :, ::-1]
    (actual,) = run_model(
        prepared.model, {spec.SWAPPER_TARGET.name: crop[None], spec.SWAPPER_SOURCE.name: embedding}
    )
    diff = float(np.max(np.abs(actual[0].astype(np.int16) - expected.astype(np.int16))))
    return _fail_if(prepared.name, diff, PIXEL_TOLERANCE)


def _check_attribute_style(
    upstream: onnx.ModelProto, prepared: PreparedModel, rng: np.random.Generator, size: int
) -> SelfCheckResult:
    """One random crop: the upstream file fed as Attribute/Landmark feed it (RGB blob, their
    normalisation) against the served model fed uint8 BGR; relative to the output's scale."""
    crop = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    mean, std = attribute_normalisation(upstream)
    blob = cv2.dnn.blobFromImage(crop, 1.0 / std, (size, size), (mean, mean, mean), swapRB=True)
    (expected,) = run_model(upstream, {_input_name(upstream): blob})
    (actual,) = run_model(prepared.model, {_input_name(prepared.model): crop[None]})
    scale = max(1.0, float(np.max(np.abs(expected))))
    diff = float(np.max(np.abs(actual.reshape(-1) - expected.reshape(-1)))) / scale
    return _fail_if(prepared.name, diff, FLOAT_TOLERANCE)


def check_genderage(
    upstream: onnx.ModelProto, prepared: PreparedModel, rng: np.random.Generator
) -> SelfCheckResult:
    return _check_attribute_style(upstream, prepared, rng, spec.GENDERAGE_INPUT_SIZE_PX)


def check_liveness(
    upstream: onnx.ModelProto, prepared: PreparedModel, rng: np.random.Generator
) -> SelfCheckResult:
    size = spec.LIVENESS_INPUT_SIZE_PX
    crops = rng.integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    # The addon's own input: RGB float32 divided by 255.
    tensor = np.ascontiguousarray(crops[:, :, :, ::-1].transpose(0, 3, 1, 2), dtype=np.float32)
    tensor /= 255.0
    (expected,) = run_model(upstream, {_input_name(upstream): tensor})
    (actual,) = run_model(prepared.model, {spec.LIVENESS_INPUT.name: crops})
    diff = float(np.max(np.abs(actual.reshape(-1) - expected.reshape(-1))))
    return _fail_if(prepared.name, diff, FLOAT_TOLERANCE)


def _check_landmark(
    upstream: onnx.ModelProto, prepared: PreparedModel, rng: np.random.Generator
) -> SelfCheckResult:
    return _check_attribute_style(upstream, prepared, rng, spec.LANDMARK_INPUT_SIZE_PX)


CHECKS = {
    spec.DETECTOR: check_detector,
    spec.RECOGNIZER: check_recognizer,
    spec.SWAPPER: check_swapper,
    spec.GENDERAGE: check_genderage,
    spec.LIVENESS: check_liveness,
    spec.LANDMARK_2D106: _check_landmark,
    spec.LANDMARK_3D68: _check_landmark,
}


def self_check(
    upstream: onnx.ModelProto, prepared: PreparedModel, seed: int = 0
) -> SelfCheckResult:
    """Run the role's check; raises SelfCheckFailed above its tolerance."""
    return CHECKS[prepared.name](upstream, prepared, np.random.default_rng(seed))
