"""The gateway's pipeline on prepared model files run by onnxruntime in process.

The embedded Triton serves a prepared model.onnx by running it with onnxruntime
(runner.py, CPU provider, the same file), and the Triton client splits a batch into
requests of at most max_batch_size (1 where it is 0). This FaceModels does the same
without the wire, so a variant's answers can be compared with insightface's quickly;
tests/repository/test_variants_triton.py runs a representative subset through Triton.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from gateway.ops.repository.install import read_manifest
from gateway.service.pipeline import DetectOptions, Pipeline, Timings
from gateway.triton import spec
from gateway.triton.client import DetectorOutputs

from ...fidelity.oracle import OracleFaces


class OnnxFaceModels:
    """FaceModels over <repository>/<model>/1/model.onnx with onnxruntime on the CPU."""

    def __init__(self, repository: Path) -> None:
        manifest = read_manifest(repository)
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._max_batch: dict[str, int] = {}
        for name in spec.ALL_MODELS:
            path = repository / name / "1" / "model.onnx"
            if path.exists():
                self._sessions[name] = ort.InferenceSession(
                    str(path), providers=["CPUExecutionProvider"]
                )
                self._max_batch[name] = int(manifest[name]["max_batch_size"])  # type: ignore[call-overload]

    def _run(self, name: str, feeds: dict[str, npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        first = next(iter(feeds.values()))
        size = self._max_batch[name] or 1
        parts = [
            self._sessions[name].run(None, {k: v[i : i + size] for k, v in feeds.items()})
            for i in range(0, len(first), size)
        ]
        return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]

    async def detect(self, frames_bgr: npt.NDArray[np.uint8]) -> list[DetectorOutputs]:
        outputs = self._run(spec.DETECTOR, {spec.DETECTOR_INPUT.name: frames_bgr})
        n = len(spec.DETECTOR_STRIDES)
        return [
            DetectorOutputs(
                tuple(o[i] for o in outputs[:n]),
                tuple(o[i] for o in outputs[n : 2 * n]),
                tuple(o[i] for o in outputs[2 * n :]),
            )
            for i in range(len(frames_bgr))
        ]

    async def embed(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        if len(crops_bgr) == 0:
            return np.zeros((0, 512), np.float32)
        (embedding,) = self._run(spec.RECOGNIZER, {spec.RECOGNIZER_INPUT.name: crops_bgr})
        return np.asarray(embedding, np.float32)

    async def swap(
        self, target_bgr: npt.NDArray[np.uint8], source_embedding: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.uint8]:
        feeds = {
            spec.SWAPPER_TARGET.name: target_bgr[None],
            spec.SWAPPER_SOURCE.name: source_embedding.astype(np.float32)[None],
        }
        (swapped,) = self._run(spec.SWAPPER, feeds)
        return np.asarray(swapped[0], np.uint8)


def gateway_faces(
    repository: Path, img_bgr: npt.NDArray[np.uint8], threshold: float
) -> OracleFaces:
    """The gateway pipeline's faces (detect + embed) for one image, as OracleFaces."""
    with ThreadPoolExecutor(2) as executor:
        pipeline = Pipeline(OnnxFaceModels(repository), executor, max_pixels=1 << 26, nms_iou=0.4)
        options = DetectOptions(threshold=threshold, embed=True)
        (faces,) = asyncio.run(pipeline.detect([img_bgr], options, Timings()))
    assert faces.embeddings is not None
    return OracleFaces(
        boxes=faces.detections.boxes,
        scores=faces.detections.scores,
        kps=faces.detections.kps,
        embeddings=faces.embeddings,
    )
