"""Triton model configurations, generated from gateway.triton.spec.

Each model directory holds several configurations of the same model names and tensors,
chosen with Triton's --model-config-name:
- config.pbtxt          NGC Triton image, native ONNX Runtime backend on the GPU (default)
- configs/tensorrt.pbtxt the same with ONNX Runtime's TensorRT FP16 execution accelerator
- configs/cpu.pbtxt      NGC Triton image on CPU-only nodes
- configs/embedded.pbtxt the pip-installed embedded Triton: Python backend running
                         onnxruntime (model.py next to model.onnx)
The committed files under model_repository/ are exactly what this module writes for the
batched detector; a test keeps them in sync.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.triton import spec
from gateway.triton.spec import TensorSpec

Variant = Literal["gpu", "tensorrt", "cpu", "embedded"]
VARIANTS: tuple[Variant, ...] = ("gpu", "tensorrt", "cpu", "embedded")
# Dynamic batching: wait at most this long to fill a preferred batch.
DETECTOR_QUEUE_DELAY_US = 2000
RECOGNIZER_QUEUE_DELAY_US = 1000
# Frame sides a TensorRT config warms a variable-size detector up with (the default det_sizes).
WARMUP_FRAME_SIZES_PX = (128, spec.DETECTOR_INPUT_SIZE_PX)


@dataclass(frozen=True)
class EmbeddedSession:
    """onnxruntime settings of one model's Python-backend runner (embedded variant only).

    intra_op_threads/inter_op_threads: 0 = onnxruntime's default (one per physical core);
    allow_spinning: the pools' spin-wait between runs; use_optimized_model: load the
    optimised model the install saved on this host (runner.py checks its stamp);
    instances: Triton instances (stubs) of the model; queue_delay_us: the dynamic batcher's
    wait; execution_provider: "openvino" where the install's A/B chose onnxruntime's OpenVINO
    provider (ops/repository/providers.py), with openvino_path the folder of OpenVINO's
    onnxruntime. The native ONNX Runtime backend of the other variants keeps its own defaults:
    the parameters mean nothing to it, and the instances and delay apply to the embedded
    variant only; the CPU variant follows execution_provider with its OpenVINO accelerator.
    """

    intra_op_threads: int = 0
    inter_op_threads: int = 0
    allow_spinning: bool = False
    use_optimized_model: bool = False
    instances: int = 1
    # Dynamic batching's max queue delay on this server; None: the layout's (the NGC figure).
    queue_delay_us: int | None = None
    execution_provider: Literal["cpu", "openvino"] = "cpu"
    openvino_path: str = ""

    def parameters(self) -> dict[str, str]:
        """The config parameters runner.py reads (string values, as Triton passes them)."""
        parameters = {
            "intra_op_num_threads": str(self.intra_op_threads),
            "inter_op_num_threads": str(self.inter_op_threads),
            "allow_spinning": "1" if self.allow_spinning else "0",
            "use_optimized_model": "1" if self.use_optimized_model else "0",
            "execution_provider": self.execution_provider,
            "openvino_path": self.openvino_path if self.execution_provider == "openvino" else "",
        }
        return parameters


@dataclass(frozen=True)
class ModelLayout:
    """What a config needs to know about one served model."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int
    preferred_batch_sizes: tuple[int, ...] = ()
    queue_delay_us: int = 0


def _unbatched(tensors: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
    """max_batch_size 0: the batch axis of 1 becomes part of the declared dims."""
    return tuple(TensorSpec(t.name, t.dtype, (1, *t.shape)) for t in tensors)


def layouts(
    detector_max_batch: int = 8,
    recognizer_max_batch: int = spec.RECOGNIZER_MAX_BATCH,
    swapper_max_batch: int = 0,
    genderage_max_batch: int = spec.GENDERAGE_MAX_BATCH,
    liveness_max_batch: int = spec.LIVENESS_MAX_BATCH,
    landmark_2d_106_max_batch: int = spec.LANDMARK_MAX_BATCH,
    landmark_3d_68_max_batch: int = spec.LANDMARK_MAX_BATCH,
) -> dict[str, ModelLayout]:
    """The served models; a max batch of 0 where the prepare step's batch check failed.

    The swapper is always unbatched (its tensors already declare batch 1);
    swapper_max_batch exists so callers can pass every model's figure by name.
    """
    del swapper_max_batch
    detector_inputs: tuple[TensorSpec, ...] = (spec.detector_input(spec.DETECTOR_ANY_SIZE),)
    detector_outputs = spec.detector_outputs(spec.DETECTOR_ANY_SIZE)
    if detector_max_batch == 0:
        detector_inputs, detector_outputs = (
            _unbatched(detector_inputs),
            _unbatched(detector_outputs),
        )
    recognizer_inputs: tuple[TensorSpec, ...] = (spec.RECOGNIZER_INPUT,)
    recognizer_outputs: tuple[TensorSpec, ...] = (spec.RECOGNIZER_OUTPUT,)
    if recognizer_max_batch == 0:
        recognizer_inputs, recognizer_outputs = (
            _unbatched(recognizer_inputs),
            _unbatched(recognizer_outputs),
        )
    return {
        spec.DETECTOR: ModelLayout(
            spec.DETECTOR,
            detector_inputs,
            detector_outputs,
            detector_max_batch,
            (4, 8) if detector_max_batch else (),
            DETECTOR_QUEUE_DELAY_US if detector_max_batch else 0,
        ),
        spec.RECOGNIZER: ModelLayout(
            spec.RECOGNIZER,
            recognizer_inputs,
            recognizer_outputs,
            recognizer_max_batch,
            (8, 16, 32) if recognizer_max_batch else (),
            RECOGNIZER_QUEUE_DELAY_US if recognizer_max_batch else 0,
        ),
        spec.SWAPPER: ModelLayout(
            spec.SWAPPER,
            (spec.SWAPPER_TARGET, spec.SWAPPER_SOURCE),
            (spec.SWAPPER_OUTPUT,),
            0,
        ),
        spec.GENDERAGE: _pixel_model_layout(
            spec.GENDERAGE, (spec.GENDERAGE_INPUT, spec.GENDERAGE_OUTPUT), genderage_max_batch
        ),
        spec.LIVENESS: _pixel_model_layout(
            spec.LIVENESS, (spec.LIVENESS_INPUT, spec.LIVENESS_OUTPUT), liveness_max_batch
        ),
        spec.LANDMARK_2D106: _pixel_model_layout(
            spec.LANDMARK_2D106,
            (spec.LANDMARK_INPUT, spec.LANDMARK_2D106_OUTPUT),
            landmark_2d_106_max_batch,
        ),
        spec.LANDMARK_3D68: _pixel_model_layout(
            spec.LANDMARK_3D68,
            (spec.LANDMARK_INPUT, spec.LANDMARK_3D68_OUTPUT),
            landmark_3d_68_max_batch,
        ),
    }


def _pixel_model_layout(
    name: str, tensors: tuple[TensorSpec, TensorSpec], max_batch: int
) -> ModelLayout:
    """genderage, liveness, landmarks: one crop input, one output, batched like the recognizer."""
    inputs: tuple[TensorSpec, ...] = (tensors[0],)
    outputs: tuple[TensorSpec, ...] = (tensors[1],)
    if max_batch == 0:
        inputs, outputs = _unbatched(inputs), _unbatched(outputs)
    return ModelLayout(
        name,
        inputs,
        outputs,
        max_batch,
        (8, 16, 32) if max_batch else (),
        RECOGNIZER_QUEUE_DELAY_US if max_batch else 0,
    )


def _tensor_block(kind: str, tensors: tuple[TensorSpec, ...]) -> list[str]:
    lines = [f"{kind} ["]
    for index, tensor in enumerate(tensors):
        dims = ", ".join(str(d) for d in tensor.shape)
        comma = "," if index < len(tensors) - 1 else ""
        lines.append(
            f'  {{ name: "{tensor.name}" data_type: TYPE_{tensor.dtype} dims: [ {dims} ] }}{comma}'
        )
    lines.append("]")
    return lines


def render_config(
    layout: ModelLayout,
    variant: Variant,
    model_sha256: str = "",
    session: EmbeddedSession | None = None,
) -> str:
    """One config.pbtxt text for a model and a deployment variant.

    `model_sha256` (of the prepared model.onnx) is recorded as a config parameter when given.
    `session` sets the embedded variant's runner (default EmbeddedSession()); other variants
    ignore it.
    """
    session = session or EmbeddedSession()
    header = {
        "gpu": "NGC Triton image, native ONNX Runtime backend on GPU.",
        "tensorrt": "NGC Triton image, ONNX Runtime with the TensorRT FP16 accelerator (engine and timing caches relative to Triton's working directory).",
        "cpu": "NGC Triton image, native ONNX Runtime backend on CPU-only nodes.",
        "embedded": "Embedded Triton (pip nvidia-pytriton): Python backend running onnxruntime (model.py).",
    }[variant]
    lines = [
        "# Generated by facegate (gateway/ops/repository/configs.py); do not edit by hand.",
        f"# {header}",
        f'name: "{layout.name}"',
    ]
    lines.append('backend: "python"' if variant == "embedded" else 'platform: "onnxruntime_onnx"')
    lines.append(f"max_batch_size: {layout.max_batch_size}")
    lines += _tensor_block("input", layout.inputs)
    lines += _tensor_block("output", layout.outputs)
    kind = "KIND_GPU" if variant in ("gpu", "tensorrt") else "KIND_CPU"
    count = session.instances if variant == "embedded" else 1
    lines.append(f"instance_group [ {{ kind: {kind} count: {count} }} ]")
    if layout.max_batch_size:
        sizes = ", ".join(str(s) for s in layout.preferred_batch_sizes)
        lines.append("dynamic_batching {")
        lines.append(f"  preferred_batch_size: [ {sizes} ]")
        delay = layout.queue_delay_us
        if variant == "embedded" and session.queue_delay_us is not None:
            delay = session.queue_delay_us
        lines.append(f"  max_queue_delay_microseconds: {delay}")
        lines.append("}")
    if variant == "tensorrt":
        lines += [
            "optimization { execution_accelerators { gpu_execution_accelerator: [ {",
            '  name: "tensorrt"',
            '  parameters { key: "precision_mode" value: "FP16" }',
            '  parameters { key: "max_workspace_size_bytes" value: "2147483648" }',
            '  parameters { key: "trt_engine_cache_enable" value: "1" }',
            f'  parameters {{ key: "trt_engine_cache_path" value: "{layout.name}" }}',
            '  parameters { key: "trt_timing_cache_enable" value: "1" }',
            f'  parameters {{ key: "trt_timing_cache_path" value: "{layout.name}" }}',
            "} ] } }",
        ]
        lines += render_warmup(layout)
    if variant == "cpu" and session.execution_provider == "openvino":
        # The install's A/B chose onnxruntime's OpenVINO provider for this model on its host
        # (PyPI's build, FP32). Triton's ONNX Runtime backend carries an OpenVINO build of its
        # own: its precision and speed are that build's, not proven by the A/B.
        lines.append(
            'optimization { execution_accelerators { cpu_execution_accelerator: [ { name: "openvino" } ] } }'
        )
    if variant != "embedded" and layout.name == spec.SWAPPER:
        # Give the swapper's arena memory back after each run (unload frees the session):
        # shrinkage needs the arena on, and may only name arenas that exist (no gpu:0 on CPU).
        arenas = "cpu:0" if variant == "cpu" else "cpu:0;gpu:0"
        lines.append(
            f'parameters {{ key: "memory.enable_memory_arena_shrinkage" value: {{ string_value: "{arenas}" }} }}'
        )
    if variant == "embedded":
        # onnxruntime's session inside the Python-backend process (runner.py reads these).
        lines += [
            f'parameters {{ key: "{key}" value: {{ string_value: "{value}" }} }}'
            for key, value in session.parameters().items()
        ]
    if model_sha256:
        lines.append(
            f'parameters {{ key: "{spec.MODEL_SHA256_PARAMETER}" value: {{ string_value: "{model_sha256}" }} }}'
        )
    return "\n".join(lines) + "\n"


def warmup_batch_sizes(layout: ModelLayout) -> tuple[int, ...]:
    """Batch sizes a TensorRT config warms up with: 1 and the largest (1 when unbatched)."""
    return (1, layout.max_batch_size) if layout.max_batch_size > 1 else (1,)


def warmup_shapes(tensor: TensorSpec) -> list[tuple[int, ...]]:
    """Concrete shapes to warm a tensor up with: its dims, or, where a side is variable (the
    detector's frame), one shape per size of insightface 2.1's default pair (128 and 640)."""
    if all(d >= 0 for d in tensor.shape):
        return [tensor.shape]
    return [tuple(size if d < 0 else d for d in tensor.shape) for size in WARMUP_FRAME_SIZES_PX]


def render_warmup(layout: ModelLayout) -> list[str]:
    """model_warmup lines: zero inputs at each warmup_batch_sizes() size (and frame size).

    ONNX Runtime's TensorRT provider builds an engine when it first meets a shape outside the
    range it has built for, widening the range each time. Triton runs warm-up requests while it
    loads the model, so the batch-1 and largest-batch requests build the engine for the whole
    range then (covered by the startup probe, or by the swapper's load timeout) instead of on
    the first client requests, which would meet the gateway's Triton deadline. A variable
    frame side is warmed at 128 and 640, the sizes the gateway sends by default.
    """
    entries = []
    # One warm-up input set per combination; only the detector has variable dims, one input.
    variants = list(zip(*(warmup_shapes(t) for t in layout.inputs), strict=True))
    for batch in warmup_batch_sizes(layout):
        for shapes in variants:
            suffix = "" if len(variants) == 1 else f"_{shapes[0][0]}px"
            entry = [f'  {{ name: "batch_{batch}{suffix}" batch_size: {batch}']
            for tensor, shape in zip(layout.inputs, shapes, strict=True):
                dims = ", ".join(str(d) for d in shape)
                entry.append(
                    f'    inputs {{ key: "{tensor.name}" value: {{ data_type: TYPE_{tensor.dtype} '
                    f"dims: [ {dims} ] zero_data: true }} }}"
                )
            entries.append(entry)
    lines = ["model_warmup ["]
    for index, entry in enumerate(entries):
        lines += entry
        lines.append("  }," if index < len(entries) - 1 else "  }")
    lines.append("]")
    return lines


def config_path(variant: Variant) -> str:
    """Path of a variant's config file relative to the model directory."""
    return "config.pbtxt" if variant == "gpu" else f"configs/{variant}.pbtxt"
