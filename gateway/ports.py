"""What orchestration needs from inference: Protocols and the data types that cross them.

    service/ (Pipeline, SwapPipeline, SwapperManager, ModelStatus)
        │ uses
        ▼
    ports.py  FaceModels · ModelControl · ModelStates · InferenceBackend · DetectorOutputs
        ▲ implements
        │
    triton/ (TritonFaceModels, SharedMemoryFaceModels); fakes in the unit tests

Nothing here imports tritonclient, so a fake backend (tests, a future ONNX Runtime
in-process backend) needs none of Triton's packages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from gateway.processing.scrfd import SCRFD_INPUT_SIZE_PX

# Input sizes of the models' contracts (InsightFace's packs): the letterboxed detector
# frame, the ArcFace crop, the inswapper crop; and the embedding's length.
DETECTOR_INPUT_SIZE_PX = SCRFD_INPUT_SIZE_PX
RECOGNIZER_INPUT_SIZE_PX = 112
SWAPPER_INPUT_SIZE_PX = 128
# Attribute crops: genderage's box-centred 96x96 square, the liveness addon's aligned 80x80.
GENDERAGE_INPUT_SIZE_PX = 96
LIVENESS_INPUT_SIZE_PX = 80
# Dense landmarks (insightface's Landmark): a box-centred 192x192 square for both models;
# raw values per face: 2d106det 106 (x, y), 1k3d68 1103 (x, y, z) of which the last 68 count.
LANDMARK_INPUT_SIZE_PX = 192
LANDMARK_2D106_VALUES = 106 * 2
LANDMARK_3D68_VALUES = 1103 * 3
EMBEDDING_SIZE = 512
# Aligned faces per recognizer request (the served configs' max_batch_size).
RECOGNIZER_MAX_BATCH = 32


@dataclass(frozen=True)
class DetectorOutputs:
    """Raw SCRFD outputs for one letterboxed frame, one array per stride (8, 16, 32).

    scores (K, 1), bbox_dists (K, 4), kps_dists (K, 10) float32, K = anchors of that stride;
    distances are in stride units, as the model emits them.
    """

    scores: tuple[npt.NDArray[np.float32], ...]
    bbox_dists: tuple[npt.NDArray[np.float32], ...]
    kps_dists: tuple[npt.NDArray[np.float32], ...]


class FaceModels(Protocol):
    """Inference on the three models, batched by the implementation as it sees fit."""

    async def detect(self, frames_bgr: npt.NDArray[np.uint8]) -> list[DetectorOutputs]:
        """(N, 640, 640, 3) uint8 BGR letterboxed frames -> N DetectorOutputs."""
        ...

    async def embed(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """(N, 112, 112, 3) uint8 BGR aligned crops -> raw (N, 512) float32 embeddings."""
        ...

    async def swap(
        self, target_bgr: npt.NDArray[np.uint8], source_embedding: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.uint8]:
        """(128, 128, 3) uint8 BGR aligned target crop, (512,) unit identity -> swapped crop."""
        ...


@runtime_checkable
class AttributeModels(Protocol):
    """Gender and age, served only when the genderage model is installed (optional)."""

    async def genderage(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """(N, 96, 96, 3) uint8 BGR attribute crops -> raw (N, 3) [female, male, age/100]."""
        ...


@runtime_checkable
class LivenessModels(Protocol):
    """Liveness, served only when insightface 2.1's liveness addon is installed (optional)."""

    async def liveness(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """(N, 80, 80, 3) uint8 BGR aligned crops -> (N,) float32 live probabilities."""
        ...


@runtime_checkable
class LandmarkModels(Protocol):
    """Dense landmarks, served only when 2d106det and 1k3d68 are installed (optional)."""

    async def landmarks_2d106(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """(N, 192, 192, 3) uint8 BGR landmark crops -> raw (N, 212) float32."""
        ...

    async def landmarks_3d68(self, crops_bgr: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """(N, 192, 192, 3) uint8 BGR landmark crops -> raw (N, 3309) float32."""
        ...

    async def landmarks_served(self) -> tuple[bool, bool]:
        """Whether 2d106det and 1k3d68 are served (READY), from a briefly cached status."""
        ...


class ModelControl(Protocol):
    """Loading and unloading one model (the swapper) on the inference server."""

    async def load_model(self, model: str, timeout_s: float) -> None: ...

    async def unload_model(self, model: str) -> None: ...

    async def is_model_ready(self, model: str) -> bool: ...


class ModelStates(Protocol):
    """Each model's state as the inference server reports it (READY, UNAVAILABLE, ...)."""

    async def model_states(self) -> dict[str, str]: ...


class InferenceBackend(FaceModels, ModelControl, ModelStates, Protocol):
    """Everything the gateway's services need; create_app builds the Triton one by default."""

    async def close(self) -> None: ...
