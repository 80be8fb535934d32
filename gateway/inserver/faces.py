"""Triton's `faces` model: a Python-backend model that runs the pipeline next to the models.

model_repository/faces/1/model.py (written by `facegate models ...`) imports TritonPythonModel
from here, so the interpreter of Triton's Python backend must import gateway.inserver and
gateway.processing: the embedded Triton's stub runs in facegate's own virtual environment,
and Dockerfile.triton adds exactly these packages to the NGC image.

Each execute() gets the requests the dynamic batcher grouped; their images are decoded on a
thread pool (Pillow and OpenCV release the GIL), every frame of one det size goes to the
detector in one BLS request (split at the detector's max batch) and every face to the
recognizer in one, and each request gets its own response: a bad image or bad parameter
answers INVALID_ARG for that request alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway import processing
from gateway.inserver.parameters import (
    FacesDefaults,
    FacesRequest,
    InvalidRequest,
    parse_parameters_json,
)
from gateway.inserver.pipeline import (
    AttributesUnavailable,
    FacesAnswer,
    FacesPipeline,
    PipelineConfig,
)
from gateway.triton import spec

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton (tests, type checks)
    pb_utils = None

# Config parameters (string values, as Triton passes them); gateway/ops/repository/pipeline.py
# writes them.
PARAMETER_DETECTOR = "detector"
PARAMETER_RECOGNIZER = "recognizer"
PARAMETER_DETECTOR_MAX_BATCH = "detector_max_batch"
PARAMETER_RECOGNIZER_MAX_BATCH = "recognizer_max_batch"
PARAMETER_GENDERAGE = "genderage"
PARAMETER_GENDERAGE_MAX_BATCH = "genderage_max_batch"
PARAMETER_MAX_IMAGE_PIXELS = "max_image_pixels"
PARAMETER_NMS_IOU = "nms_iou"
PARAMETER_DETECT_THRESHOLD = "detect_threshold"
PARAMETER_DET_SIZES = "det_sizes"
PARAMETER_DET_SIZES_ALLOWED = "det_sizes_allowed"
PARAMETER_CPU_THREADS = "cpu_threads"


class UpstreamError(RuntimeError):
    """A BLS call to the detector or the recognizer failed (Triton's message inside)."""


def pipeline_config(params: dict[str, str]) -> PipelineConfig:
    """PipelineConfig from the config's parameters; absent keys keep the defaults."""
    base = PipelineConfig()
    fallback = FacesDefaults(
        threshold=float(params.get(PARAMETER_DETECT_THRESHOLD, base.fallback.threshold)),
        det_sizes_px=(
            processing.parse_det_sizes(params[PARAMETER_DET_SIZES])
            if PARAMETER_DET_SIZES in params
            else base.fallback.det_sizes_px
        ),
        det_sizes_allowed_px=(
            processing.parse_det_sizes(params[PARAMETER_DET_SIZES_ALLOWED])
            if params.get(PARAMETER_DET_SIZES_ALLOWED)
            else ()
        ),
    )
    return PipelineConfig(
        detector=params.get(PARAMETER_DETECTOR, base.detector),
        recognizer=params.get(PARAMETER_RECOGNIZER, base.recognizer),
        genderage=params.get(PARAMETER_GENDERAGE, base.genderage),
        detector_max_batch=int(params.get(PARAMETER_DETECTOR_MAX_BATCH, base.detector_max_batch)),
        recognizer_max_batch=int(
            params.get(PARAMETER_RECOGNIZER_MAX_BATCH, base.recognizer_max_batch)
        ),
        genderage_max_batch=int(
            params.get(PARAMETER_GENDERAGE_MAX_BATCH, base.genderage_max_batch)
        ),
        max_image_pixels=int(params.get(PARAMETER_MAX_IMAGE_PIXELS, base.max_image_pixels)),
        nms_iou=float(params.get(PARAMETER_NMS_IOU, base.nms_iou)),
        fallback=fallback,
    )


def image_bytes(array: npt.NDArray[Any] | None) -> bytes:
    """The one encoded image of a request's IMAGE tensor (shape [1, 1], BYTES)."""
    if array is None or array.size != 1:
        shape = None if array is None else list(array.shape)
        raise InvalidRequest(
            f"send one encoded image per request: IMAGE of shape [1, 1], not {shape}"
        )
    data = array.reshape(-1)[0]
    if not isinstance(data, bytes | bytearray | np.bytes_):
        raise InvalidRequest("IMAGE holds the encoded image's bytes (BYTES)")
    return bytes(data)


def answer_tensors(answer: FacesAnswer) -> list[tuple[str, npt.NDArray[Any]]]:
    """The response's tensors, each with the request's batch axis of 1 in front.

    EMBEDDINGS and EMBEDDING_NORMS are left out when the request said embed=false, GENDERS
    and AGES unless it said attributes=true.
    """
    dets = answer.detections
    tensors: list[tuple[str, npt.NDArray[Any]]] = [
        (spec.FACES_BOXES.name, dets.boxes.astype(np.float32)[None]),
        (spec.FACES_SCORES.name, dets.scores.astype(np.float32)[None]),
        (spec.FACES_LANDMARKS.name, dets.kps.astype(np.float32)[None]),
        (spec.FACES_IMAGE_SIZE.name, np.array([[answer.width, answer.height]], np.int32)),
    ]
    if answer.embeddings is not None and answer.embedding_norms is not None:
        tensors.append((spec.FACES_EMBEDDINGS.name, answer.embeddings.astype(np.float32)[None]))
        tensors.append(
            (spec.FACES_EMBEDDING_NORMS.name, answer.embedding_norms.astype(np.float32)[None])
        )
    if answer.attributes is not None:
        tensors.append((spec.FACES_GENDERS.name, answer.attributes.genders.astype(np.int32)[None]))
        tensors.append((spec.FACES_AGES.name, answer.attributes.ages.astype(np.int32)[None]))
    return tensors


class TritonPythonModel:
    """The `faces` model (Triton's Python backend)."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        threads = int(params.get(PARAMETER_CPU_THREADS, "2"))
        self._executor = ThreadPoolExecutor(max(1, threads), thread_name_prefix="faces")
        self._pipeline = FacesPipeline(pipeline_config(params), self._infer, self._executor)

    async def _infer(
        self, model: str, feeds: dict[str, npt.NDArray[Any]], outputs: Sequence[str]
    ) -> list[npt.NDArray[Any]]:
        request = pb_utils.InferenceRequest(
            model_name=model,
            requested_output_names=list(outputs),
            inputs=[pb_utils.Tensor(name, np.ascontiguousarray(a)) for name, a in feeds.items()],
        )
        response = await request.async_exec()
        if response.has_error():
            raise UpstreamError(f"model '{model}': {response.error().message()}")
        # Copies: the arrays outlive the response whose memory they would point into.
        return [
            np.array(pb_utils.get_output_tensor_by_name(response, name).as_numpy())
            for name in outputs
        ]

    def _job(self, request: Any) -> tuple[bytes, FacesRequest] | BaseException:
        try:
            options = parse_parameters_json(request.parameters(), self._pipeline.config.fallback)
            tensor = pb_utils.get_input_tensor_by_name(request, spec.FACES_INPUT.name)
            return image_bytes(None if tensor is None else tensor.as_numpy()), options
        except Exception as exc:
            # InvalidRequest or anything else: it fails this request alone, not its batch.
            return exc

    async def execute(self, requests: list[Any]) -> list[Any]:
        results = await self._pipeline.answer([self._job(r) for r in requests])
        return [self._response(result) for result in results]

    def _response(self, result: FacesAnswer | BaseException) -> Any:
        if isinstance(result, FacesAnswer):
            tensors = [pb_utils.Tensor(name, array) for name, array in answer_tensors(result)]
            return pb_utils.InferenceResponse(output_tensors=tensors)
        if isinstance(result, InvalidRequest):
            error = pb_utils.TritonError(str(result), pb_utils.TritonError.INVALID_ARG)
        elif isinstance(result, UpstreamError | AttributesUnavailable):
            error = pb_utils.TritonError(str(result), pb_utils.TritonError.UNAVAILABLE)
        else:
            # The details (which may name server paths) go to the server log, not the client.
            pb_utils.Logger.log_error(f"faces: request failed: {type(result).__name__}: {result}")
            error = pb_utils.TritonError(
                f"faces: internal error ({type(result).__name__}); the server log has the details",
                pb_utils.TritonError.INTERNAL,
            )
        return pb_utils.InferenceResponse(output_tensors=[], error=error)

    def finalize(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
