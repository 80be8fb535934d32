"""The recognizer floor: batches of aligned faces through plain onnxruntime and through Triton.

The floor is the upstream recognizer in a bare onnxruntime session in this process, fed
the normalisation InsightFace's ArcFaceONNX.get_feat uses (cv2.dnn.blobFromImages with the
model's mean and std, RGB order). Triton gets the same crops as uint8 BGR (the prepared
model folds the normalisation in), over gRPC or through system shared memory. All sides
must return the same embeddings, or the run stops.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from gateway.ops.bench.measure import Progress, split_evenly, time_in_rounds
from gateway.ops.bench.options import BenchError, BenchOptions
from gateway.ops.bench.tuning import ORT_DEFAULTS, OrtSettings
from gateway.triton import spec

FLOOR_BATCH = spec.RECOGNIZER_MAX_BATCH
# The floor's reference side: plain onnxruntime with spin-wait off and its best threads.
FLOOR_TUNED = "onnxruntime tuned"
EMBEDDING_COSINE_MIN = 0.99  # prepared vs upstream graph: float rounding only
TRITON_TIMEOUT_S = 120.0

Embed = Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class FloorSide:
    """A named way to embed a (N, 112, 112, 3) uint8 BGR batch of aligned faces."""

    name: str
    description: str
    run: Embed


@dataclass
class FloorResult:
    """Batch times of one side, per interleaved round."""

    side: str
    description: str
    batch_size: int
    rounds_ms: list[list[float]] = field(default_factory=list)

    @property
    def batches_ms(self) -> list[float]:
        return [ms for chunk in self.rounds_ms for ms in chunk]

    @property
    def faces_per_s(self) -> float:
        total_ms = sum(self.batches_ms)
        return self.batch_size * len(self.batches_ms) / (total_ms / 1000) if total_ms else np.nan

    def round_faces_per_s(self) -> list[float]:
        return [self.batch_size * len(c) / (sum(c) / 1000) for c in self.rounds_ms if sum(c)]


class OnnxRuntimeRecognizer:
    """The upstream recognizer in a plain onnxruntime CPU session, InsightFace's normalisation."""

    def __init__(
        self,
        recognizer_onnx: Path,
        settings: OrtSettings = ORT_DEFAULTS,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        import onnxruntime as ort
        from insightface.model_zoo import ArcFaceONNX

        self._session = ort.InferenceSession(
            str(recognizer_onnx), settings.session_options(), providers=list(providers)
        )
        # ArcFaceONNX reads the model's mean/std from its graph; only those are used here.
        reference = ArcFaceONNX(str(recognizer_onnx), session=self._session)
        self._mean = float(reference.input_mean)
        self._std = float(reference.input_std)
        self._input = self._session.get_inputs()[0].name

    def __call__(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        size = spec.RECOGNIZER_INPUT_SIZE_PX
        blob = cv2.dnn.blobFromImages(
            list(crops_bgr), 1.0 / self._std, (size, size), (self._mean,) * 3, swapRB=True
        )
        (embeddings,) = self._session.run(None, {self._input: blob})
        return np.asarray(embeddings, np.float32)


class TritonRecognizer:
    """TritonFaceModels.embed on a private event loop: the wire, or system shared memory."""

    def __init__(self, triton_url: str, repository_key: str, shared_memory: bool) -> None:
        self._loop = asyncio.new_event_loop()
        self._models: Any = self._loop.run_until_complete(
            self._open(triton_url, repository_key, shared_memory)
        )

    @staticmethod
    async def _open(url: str, repository_key: str, shared_memory: bool) -> Any:
        from gateway.triton.client import TritonFaceModels, TritonTarget
        from gateway.triton.shared_memory import SharedMemoryFaceModels, SharedMemoryUnavailable

        target = TritonTarget(url, TRITON_TIMEOUT_S, 0, repository_key)
        if not shared_memory:
            return TritonFaceModels(target)
        models = SharedMemoryFaceModels(target, regions_per_model=1)
        try:
            await models.register()
        except SharedMemoryUnavailable as exc:
            await models.close()
            raise BenchError(f"no shared memory with Triton: {exc.message}") from exc
        return models

    def __call__(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        result: npt.NDArray[np.float32] = self._loop.run_until_complete(
            self._models.embed(crops_bgr)
        )
        return result

    def close(self) -> None:
        self._loop.run_until_complete(self._models.close())
        self._loop.close()


def _check_agreement(sides: Sequence[FloorSide], crops_bgr: npt.NDArray[np.uint8]) -> None:
    """Every side's embeddings point where the first side's do (cosine per face)."""
    unit = [e / np.linalg.norm(e, axis=1, keepdims=True) for e in (s.run(crops_bgr) for s in sides)]
    for side, embeddings in zip(sides[1:], unit[1:], strict=True):
        worst = float(np.min(np.sum(embeddings * unit[0], axis=1)))
        if worst < EMBEDDING_COSINE_MIN:
            raise BenchError(
                f"recognizer floor: {side.name} disagrees with {sides[0].name} "
                f"(cosine {worst:.4f} < {EMBEDDING_COSINE_MIN})"
            )


def measure_floor(
    sides: Sequence[FloorSide], crops_bgr: npt.NDArray[np.uint8], options: BenchOptions
) -> list[FloorResult]:
    """Sequential batches per side, in interleaved rounds, after one checked warm-up batch."""
    _check_agreement(sides, crops_bgr)
    bar = Progress(len(sides) * options.floor_batches, options.progress, unit="batch")
    calls = [
        (f"recognizer floor {s.name} batch {len(crops_bgr)}", functools.partial(s.run, crops_bgr))
        for s in sides
    ]
    try:
        chunks = split_evenly(options.floor_batches, options.rounds)
        rounds_ms = time_in_rounds(calls, chunks, bar)
    finally:
        bar.close()
    results = [
        FloorResult(s.name, s.description, len(crops_bgr), ms)
        for s, ms in zip(sides, rounds_ms, strict=True)
    ]
    return results
