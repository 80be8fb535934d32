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
GENDERAGE = "genderage"
LIVENESS = "liveness"
# insightface's Landmark task names (buffalo_l's 2d106det.onnx and 1k3d68.onnx).
LANDMARK_2D106 = "landmark_2d_106"
LANDMARK_3D68 = "landmark_3d_68"
ALL_MODELS = (DETECTOR, RECOGNIZER, SWAPPER, GENDERAGE, LIVENESS, LANDMARK_2D106, LANDMARK_3D68)
# Loaded when Triton starts; the swapper is loaded on demand. Optional models are loaded at
# start when the repository holds them; an install without them serves everything else.
STARTUP_MODELS = (DETECTOR, RECOGNIZER)
OPTIONAL_STARTUP_MODELS = (GENDERAGE, LIVENESS, LANDMARK_2D106, LANDMARK_3D68)

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


# Detector (SCRFD): uint8 BGR letterboxed square frames in, raw head outputs out. The served
# graph takes any frame side that is a multiple of 32 (Triton config dims -1): 640 is the
# model packs' size, 128 the small pass of insightface 2.1's two-scale default. One request
# carries frames of one size; Triton's dynamic batcher batches equal shapes only.
# Strides, anchors and sizes are SCRFD's (processing/scrfd.py) and the ports' contract.
DETECTOR_INPUT_SIZE_PX = ports.DETECTOR_INPUT_SIZE_PX
DETECTOR_STRIDES = SCRFD_STRIDES
DETECTOR_ANCHORS_PER_CELL = SCRFD_ANCHORS_PER_CELL
DETECTOR_OUTPUT_WIDTHS = (("score", 1), ("bbox", 4), ("kps", 10))


def detector_input(size_px: int = DETECTOR_INPUT_SIZE_PX) -> TensorSpec:
    """The detector's input at one frame size (-1: any size, as the config declares it)."""
    return TensorSpec("images", "UINT8", (size_px, size_px, 3))


def _anchor_count(stride: int, size_px: int) -> int:
    if size_px < 0:
        return -1
    cells = size_px // stride
    return cells * cells * DETECTOR_ANCHORS_PER_CELL


def detector_outputs(size_px: int = DETECTOR_INPUT_SIZE_PX) -> tuple[TensorSpec, ...]:
    """The detector's 9 outputs at one frame size (-1: any size, as the config declares it).

    Scores are probabilities; boxes and keypoints are distances from the anchor centre in
    units of the stride (multiply by the stride to get detector-input pixels), as upstream.
    """
    return tuple(
        TensorSpec(f"{kind}_{stride}", "FP32", (_anchor_count(stride, size_px), width))
        for kind, width in DETECTOR_OUTPUT_WIDTHS
        for stride in DETECTOR_STRIDES
    )


DETECTOR_INPUT = detector_input()
DETECTOR_OUTPUTS = detector_outputs()
# What the Triton configs declare: the frame side and anchor counts vary with the size.
DETECTOR_ANY_SIZE = -1

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

# Gender and age (insightface's Attribute on buffalo_l's genderage.onnx): uint8 BGR 96x96
# crops in (a box-centred square of 1.5x the box's longer side, no rotation), raw
# predictions out: [female score, male score, age / 100]. Normalisation is in the graph.
GENDERAGE_INPUT_SIZE_PX = ports.GENDERAGE_INPUT_SIZE_PX
GENDERAGE_INPUT = TensorSpec(
    "faces", "UINT8", (GENDERAGE_INPUT_SIZE_PX, GENDERAGE_INPUT_SIZE_PX, 3)
)
GENDERAGE_OUTPUT = TensorSpec("genderage", "FP32", (3,))
GENDERAGE_MAX_BATCH = 32

# Liveness (insightface 2.1's liveness addon): uint8 BGR 80x80 crops aligned to the addon's
# own 5-point template in, the live probability out (no softmax after it).
LIVENESS_INPUT_SIZE_PX = ports.LIVENESS_INPUT_SIZE_PX
LIVENESS_INPUT = TensorSpec("faces", "UINT8", (LIVENESS_INPUT_SIZE_PX, LIVENESS_INPUT_SIZE_PX, 3))
LIVENESS_OUTPUT = TensorSpec("live_score", "FP32", (1,))
LIVENESS_MAX_BATCH = 32

# The in-server pipeline (gateway/inserver/faces.py, a Python-backend model calling the
# detector and the recognizer through BLS): one encoded image per request, faces out.
FACES = "faces"
# Loaded at start after the detector and recognizer it calls; not in ALL_MODELS (the ONNX roles).
PIPELINE_MODELS = (FACES,)
FACES_INPUT = TensorSpec("IMAGE", "BYTES", (1,))
FACES_BOXES = TensorSpec("BOXES", "FP32", (-1, 4))
FACES_SCORES = TensorSpec("SCORES", "FP32", (-1,))
FACES_LANDMARKS = TensorSpec("LANDMARKS", "FP32", (-1, 5, 2))
FACES_EMBEDDINGS = TensorSpec("EMBEDDINGS", "FP32", (-1, ports.EMBEDDING_SIZE))
FACES_EMBEDDING_NORMS = TensorSpec("EMBEDDING_NORMS", "FP32", (-1,))
FACES_IMAGE_SIZE = TensorSpec("IMAGE_SIZE", "INT32", (2,))
# With the request parameter attributes=true (genderage on the same Triton): 0 = female, 1 = male.
FACES_GENDERS = TensorSpec("GENDERS", "INT32", (-1,))
FACES_AGES = TensorSpec("AGES", "INT32", (-1,))
FACES_OUTPUTS = (
    FACES_BOXES,
    FACES_SCORES,
    FACES_LANDMARKS,
    FACES_EMBEDDINGS,
    FACES_EMBEDDING_NORMS,
    FACES_IMAGE_SIZE,
    FACES_GENDERS,
    FACES_AGES,
)
# Requests the dynamic batcher hands one execute() at most.
FACES_MAX_BATCH = 8

# Dense landmarks (insightface's Landmark on buffalo_l's 2d106det.onnx and 1k3d68.onnx): uint8
# BGR 192x192 crops in (the genderage crop: a box-centred square of 1.5x the box's longer side,
# no rotation), raw predictions out, normalisation in the graph. 2d106det answers 106 (x, y)
# pairs, 1k3d68 1103 (x, y, z) triples of which insightface keeps the last 68; both in crop
# units of [-1, 1] (processing/landmarks.py decodes them).
LANDMARK_INPUT_SIZE_PX = ports.LANDMARK_INPUT_SIZE_PX
LANDMARK_INPUT = TensorSpec("faces", "UINT8", (LANDMARK_INPUT_SIZE_PX, LANDMARK_INPUT_SIZE_PX, 3))
LANDMARK_2D106_OUTPUT = TensorSpec("landmarks", "FP32", (ports.LANDMARK_2D106_VALUES,))
LANDMARK_3D68_OUTPUT = TensorSpec("landmarks", "FP32", (ports.LANDMARK_3D68_VALUES,))
LANDMARK_MAX_BATCH = 32
