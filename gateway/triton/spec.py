"""The one place that names Triton models and tensors.

Model names are the same string as the directory under model_repository/, the `name`
field of both config files and the constants here. Tensor contracts (what direct gRPC
clients see) are documented in docs/MODELS.md; this module is their source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway import ports
from gateway.processing.scrfd import SCRFD_ANCHORS_PER_CELL, SCRFD_STRIDES

DETECTOR = "detector"
RECOGNIZER = "recognizer"
SWAPPER = "swapper"
ALL_MODELS = (DETECTOR, RECOGNIZER, SWAPPER)
# Loaded when Triton starts; the swapper is loaded on demand.
STARTUP_MODELS = (DETECTOR, RECOGNIZER)

# Custom config name selected with Triton's --model-config-name in the embedded server
# (model_repository/<model>/configs/embedded.pbtxt); config.pbtxt is the NGC/ONNX Runtime one.
EMBEDDED_CONFIG_NAME = "embedded"

# Header that unlocks Triton's model-repository API (load/unload/index); Triton is
# started with --grpc-restricted-protocol / --http-restricted-api naming it.
REPOSITORY_KEY_HEADER = "facegate-repository-key"
# Over gRPC, Triton expects restricted-protocol headers with this prefix.
REPOSITORY_KEY_GRPC_HEADER = f"triton-grpc-protocol-{REPOSITORY_KEY_HEADER}"
# Config parameter holding the sha256 of the prepared model.onnx (written at install): the
# gallery records the recognizer's, since embeddings of different files are not comparable.
MODEL_SHA256_PARAMETER = "facegate_model_sha256"


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a prepared model: name, Triton dtype and shape.

    `shape` excludes the batch dimension; `batched` says whether a leading batch
    dimension (-1) precedes it on the wire.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]


# Detector (SCRFD): uint8 BGR letterboxed 640x640 frames in, raw head outputs out.
# Strides, anchors and sizes are SCRFD's (processing/scrfd.py) and the ports' contract.
DETECTOR_INPUT_SIZE_PX = ports.DETECTOR_INPUT_SIZE_PX
DETECTOR_STRIDES = SCRFD_STRIDES
DETECTOR_ANCHORS_PER_CELL = SCRFD_ANCHORS_PER_CELL
DETECTOR_INPUT = TensorSpec("images", "UINT8", (DETECTOR_INPUT_SIZE_PX, DETECTOR_INPUT_SIZE_PX, 3))


def _anchor_count(stride: int) -> int:
    cells = DETECTOR_INPUT_SIZE_PX // stride
    return cells * cells * DETECTOR_ANCHORS_PER_CELL


# Scores are probabilities; boxes and keypoints are distances from the anchor centre in
# units of the stride (multiply by the stride to get detector-input pixels), as upstream.
DETECTOR_OUTPUTS = tuple(
    TensorSpec(f"{kind}_{stride}", "FP32", (_anchor_count(stride), width))
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10))
    for stride in DETECTOR_STRIDES
)

# Recognizer (ArcFace): uint8 BGR aligned 112x112 crops in, raw 512-d embedding out
# (not L2-normalised; normalise it for cosine similarity).
RECOGNIZER_INPUT_SIZE_PX = ports.RECOGNIZER_INPUT_SIZE_PX
RECOGNIZER_INPUT = TensorSpec(
    "faces", "UINT8", (RECOGNIZER_INPUT_SIZE_PX, RECOGNIZER_INPUT_SIZE_PX, 3)
)
RECOGNIZER_OUTPUT = TensorSpec("embedding", "FP32", (ports.EMBEDDING_SIZE,))
RECOGNIZER_MAX_BATCH = ports.RECOGNIZER_MAX_BATCH

# Swapper (inswapper_128): uint8 BGR aligned 128x128 target crop and the source face's
# L2-normalised ArcFace embedding in (emap projection folded into the graph), uint8 BGR
# 128x128 swapped crop out. The upstream graph fixes batch 1.
SWAPPER_INPUT_SIZE_PX = ports.SWAPPER_INPUT_SIZE_PX
SWAPPER_TARGET = TensorSpec("target", "UINT8", (1, SWAPPER_INPUT_SIZE_PX, SWAPPER_INPUT_SIZE_PX, 3))
SWAPPER_SOURCE = TensorSpec("source", "FP32", (1, ports.EMBEDDING_SIZE))
SWAPPER_OUTPUT = TensorSpec(
    "swapped", "UINT8", (1, SWAPPER_INPUT_SIZE_PX, SWAPPER_INPUT_SIZE_PX, 3)
)
