"""Turn upstream InsightFace ONNX graphs into the served models.

What changes (see docs/MODELS.md for the resulting contracts):
- stable tensor names from gateway.triton.spec instead of upstream names like "input.1"/"683"
  (upstream tensors that already hold one of those names are renamed first);
- uint8 NHWC BGR pixels on the wire; InsightFace's normalisation and BGR->RGB are a small
  graph prepended to the upstream one (SCRFD (x-127.5)/128, ArcFace (x-127.5)/127.5 or none
  where insightface finds it in the graph, inswapper target x/255);
- the detector and the recognizer get a batch dimension where a check proves a batch equals
  single runs (batching.py); otherwise they are served with batch 1, the upstream graph
  untouched between the prepended and the appended nodes. Detector outputs are always
  [N, anchors, width], and the frame side is any multiple of 32 (anchors follow it);
- inswapper's emap projection and the latent's L2 normalisation are prepended too, so its
  "source" input takes the recognizer's L2-normalised embedding; output comes back uint8 BGR.

Every refusal is a PrepareError with one paragraph: which step, what was found, what was
expected, what to do. The self-check (selfcheck.py) then proves the result equal to the
upstream model fed InsightFace's way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper

from gateway.ops.failures import ModelRefused
from gateway.ops.repository.batching import (
    BATCH_CHECK_SIZE,
    BatchCheck,
    check_batch,
    unfold_output_batch,
)
from gateway.ops.repository.graph import FLOAT, UINT8, GraphBuilder, clip, opset_of, value_info
from gateway.ops.repository.naming import free_names
from gateway.triton import spec

# Both the embedded onnxruntime and the ONNX Runtime 1.19 of NGC Triton 24.10 (Triton 2.51)
# accept these; a current onnx writes IR 10+, which older runtimes reject.
MAX_IR_VERSION = 9
MAX_OPSET = 17
DETECTOR_MAX_BATCH = 8
BGR_TO_RGB = np.array([2, 1, 0], np.int64)
SERVED_NAMES = (
    spec.DETECTOR_INPUT.name,
    *(t.name for t in spec.DETECTOR_OUTPUTS),
    spec.RECOGNIZER_INPUT.name,
    spec.RECOGNIZER_OUTPUT.name,
    spec.SWAPPER_TARGET.name,
    spec.SWAPPER_SOURCE.name,
    spec.SWAPPER_OUTPUT.name,
)


class PrepareError(ModelRefused):
    """An upstream file does not have the structure the prepare step needs."""


@dataclass(frozen=True)
class PreparedModel:
    """A served model and what the prepare step found out about it."""

    name: str
    model: onnx.ModelProto
    max_batch_size: int
    notes: tuple[str, ...] = ()
    batch_reason: str = ""


def refuse(step: str, found: str, expected: str, action: str) -> PrepareError:
    """One paragraph: the step, what was found, what was expected, what to do."""
    return PrepareError(f"{step}: found {found}; expected {expected}. {action}")


REEXPORT = (
    "Use the file from the official pack (facegate models fetch), or re-export the model "
    "with the upstream contract (docs/MODELS.md)."
)


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    initializer_names = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializer_names]


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    """Declared dims: ints where fixed, the symbol (or "?") where not."""
    return [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in value.type.tensor_type.shape.dim
    ]


def _copy_for_serving(upstream: onnx.ModelProto) -> tuple[onnx.ModelProto, set[str]]:
    """A copy at served versions whose tensors leave the served names free."""
    opset = opset_of(upstream)
    if opset > MAX_OPSET:
        raise refuse(
            "checking versions",
            f"opset {opset}",
            f"opset {MAX_OPSET} or older (what NGC Triton 24.10's ONNX Runtime 1.19 runs)",
            "Re-export the model with opset 11 to 17 (the official files use 11).",
        )
    model = onnx.ModelProto()
    model.CopyFrom(upstream)
    # Lowering the IR version changes no operator: an opset's semantics do not depend on it.
    model.ir_version = min(model.ir_version, MAX_IR_VERSION)
    return model, free_names(model, SERVED_NAMES)


def _feed_input(
    model: onnx.ModelProto, old: str, new_inputs: list[onnx.ValueInfoProto], pre: GraphBuilder
) -> None:
    """Replace graph input `old` by `new_inputs`; `pre`'s nodes end in the tensor `old`.

    The upstream nodes keep reading `old`, which is now produced inside the graph.
    """
    kept = [i for i in model.graph.input if i.name != old]
    del model.graph.input[:]
    model.graph.input.extend([*new_inputs, *kept])
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend([*pre.nodes, *nodes])
    model.graph.initializer.extend(pre.initializers)


def _pixels_to_nchw(pre: GraphBuilder, pixels: str, mean: float, scale: float) -> str:
    """uint8 NHWC BGR -> float NCHW RGB, (x - mean) * scale as cv2.dnn.blobFromImage computes it."""
    x = pre.op("Cast", [pixels], to=FLOAT)
    x = pre.op("Gather", [x, pre.const(BGR_TO_RGB, "bgr2rgb", np.int64)], axis=3)
    x = pre.op("Transpose", [x], perm=[0, 3, 1, 2])
    if mean:
        x = pre.op("Sub", [x, pre.const(mean, "mean")])
    return pre.op("Mul", [x, pre.const(scale, "scale")])


def _set_outputs(
    model: onnx.ModelProto, post: GraphBuilder, outputs: list[onnx.ValueInfoProto]
) -> None:
    model.graph.node.extend(post.nodes)
    model.graph.initializer.extend(post.initializers)
    del model.graph.output[:]
    model.graph.output.extend(outputs)


def open_session(
    model: onnx.ModelProto,
) -> Callable[[dict[str, npt.NDArray[Any]]], list[npt.NDArray[Any]]]:
    """An onnxruntime CPU session on `model`, as a function feeds -> all outputs."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )

    def run(feeds: dict[str, npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
        return [np.asarray(x) for x in session.run(None, feeds)]

    return run


def run_model(model: onnx.ModelProto, feeds: dict[str, npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
    """All outputs of `model` on `feeds`, with onnxruntime on the CPU."""
    return open_session(model)(feeds)


# --- detector ---------------------------------------------------------------------------


def _check_detector_contract(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    step = "checking the detector's contract (SCRFD, as det_10g.onnx)"
    count = len(model.graph.output)
    if count != len(spec.DETECTOR_OUTPUTS):
        kind = {6: "an SCRFD without landmarks", 10: "a 5-stride SCRFD", 15: "a 5-stride SCRFD"}
        raise refuse(
            step,
            f"{count} outputs ({kind.get(count, 'not an SCRFD export')})",
            "9 outputs: scores, boxes and 5 landmarks for strides 8, 16, 32 (det_10g, det_500m)",
            "facegate needs the landmarks to align faces: " + REEXPORT,
        )
    inputs = graph_inputs(model)
    dims = _dims(inputs[0]) if len(inputs) == 1 else []
    size = spec.DETECTOR_INPUT_SIZE_PX
    fits = len(dims) == 4 and dims[1] == 3 and (dims[0] == 1 or isinstance(dims[0], str))
    if not fits or any(isinstance(d, int) and d != size for d in dims[2:]):
        raise refuse(
            step,
            f"{len(inputs)} input(s) of shape {dims}",
            f"one float input [1, 3, H, W] with H and W symbolic or {size}",
            "The gateway feeds 640x640 frames: " + REEXPORT,
        )
    return inputs[0]


def _wrap_detector(
    model: onnx.ModelProto, taken: set[str], old_input: str, outputs: list[str], batched: bool
) -> onnx.ModelProto:
    pre = GraphBuilder("facegate_pre_", taken=taken)
    batch: int | str = "N" if batched else 1
    x = _pixels_to_nchw(pre, spec.DETECTOR_INPUT.name, 127.5, 1.0 / 128.0)
    pre.op_into("Identity", [x], old_input)
    # Frame height and width stay symbolic: SCRFD is fully convolutional, so one served model
    # answers every size (insightface 2.1 runs it at 128 and 640 by default).
    new_input = value_info(spec.DETECTOR_INPUT.name, UINT8, [batch, "height", "width", 3])
    _feed_input(model, old_input, [new_input], pre)
    post = GraphBuilder("facegate_out_", taken=taken)
    served = []
    for name, tensor in zip(outputs, spec.DETECTOR_OUTPUTS, strict=True):
        if batched:
            post.op_into("Identity", [name], tensor.name)
        else:
            # (K, C) or (1, K, C) -> (1, K, C); K follows the frame size.
            shape = post.const(np.array([1, -1, tensor.shape[-1]], np.int64), "shape", np.int64)
            post.op_into("Reshape", [name, shape], tensor.name)
        anchors = f"anchors_{tensor.name.rsplit('_', 1)[1]}"
        served.append(value_info(tensor.name, FLOAT, [batch, anchors, tensor.shape[-1]]))
    _set_outputs(model, post, served)
    onnx.checker.check_model(model)
    return model


def prepare_detector(
    upstream: onnx.ModelProto, rng: np.random.Generator | None = None
) -> PreparedModel:
    """SCRFD with 9 outputs (scores, boxes, kps for strides 8/16/32) -> spec.DETECTOR_* contract."""
    base, taken = _copy_for_serving(upstream)
    old_input = _check_detector_contract(base).name
    outputs = [o.name for o in base.graph.output]

    def candidate() -> onnx.ModelProto:
        model = onnx.ModelProto()
        model.CopyFrom(base)
        names = set(taken)
        # Declared intermediate shapes say batch 1; the runtime infers them again.
        del model.graph.value_info[:]
        unfold_output_batch(model, outputs, names)
        return _wrap_detector(model, names, old_input, outputs, batched=True)

    rng = rng or np.random.default_rng(0)
    frames = rng.integers(0, 256, (BATCH_CHECK_SIZE, *spec.DETECTOR_INPUT.shape), dtype=np.uint8)
    shapes = [t.shape for t in spec.DETECTOR_OUTPUTS]
    batched, check = check_batch(candidate, spec.DETECTOR_INPUT.name, frames, shapes, open_session)
    if batched is not None:
        return _batched_result(spec.DETECTOR, batched, DETECTOR_MAX_BATCH, check)
    model = _build_untouched(
        "detector", lambda: _wrap_detector(base, taken, old_input, outputs, batched=False)
    )
    return _unbatched_result(spec.DETECTOR, model, check)


def _build_untouched(role: str, build: Callable[[], onnx.ModelProto]) -> onnx.ModelProto:
    try:
        return build()
    except PrepareError:
        raise
    except Exception as exc:  # onnx's checker and shape errors: the file's structure
        raise refuse(
            f"building the served {role} around the untouched upstream graph",
            f"an error from onnx ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})",
            "a graph that onnx accepts once the pixel-conversion nodes are prepended",
            REEXPORT,
        ) from exc


def _batched_result(
    name: str, model: onnx.ModelProto, max_batch: int, check: BatchCheck
) -> PreparedModel:
    note = f"batched (max_batch_size {max_batch}): batch check passed, {check.reason}"
    return PreparedModel(name, model, max_batch, (note,), check.reason)


def _unbatched_result(name: str, model: onnx.ModelProto, check: BatchCheck) -> PreparedModel:
    note = (
        f"served unbatched (max_batch_size 0, batch 1; the upstream graph untouched): "
        f"batch check failed, {check.reason}"
    )
    return PreparedModel(name, model, 0, (note,), check.reason)


# --- recognizer -------------------------------------------------------------------------


def arcface_normalisation(model: onnx.ModelProto) -> tuple[float, float]:
    """(mean, std) insightface's ArcFaceONNX feeds this graph with.

    insightface 0.7.3 decides by node names: a Sub and a Mul among the first 8 nodes mean
    the graph normalises itself (mxnet exports) and gets raw pixels; else (x-127.5)/127.5.
    """
    names = [node.name for node in model.graph.node[:8]]
    has_sub = any(n.startswith(("Sub", "_minus")) for n in names)
    has_mul = any(n.startswith(("Mul", "_mul")) for n in names)
    return (0.0, 1.0) if has_sub and has_mul else (127.5, 127.5)


def _check_recognizer_contract(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    step = "checking the recognizer's contract (ArcFace, as w600k_r50.onnx)"
    inputs = graph_inputs(model)
    dims = _dims(inputs[0]) if len(inputs) == 1 else []
    size = spec.RECOGNIZER_INPUT_SIZE_PX
    if len(model.graph.output) != 1 or len(dims) != 4 or dims[1:] != [3, size, size]:
        raise refuse(
            step,
            f"{len(inputs)} input(s) of shape {dims} and {len(model.graph.output)} output(s)",
            f"one input [N, 3, {size}, {size}] (H and W fixed, as insightface reads them) "
            "and one output [N, 512]",
            REEXPORT,
        )
    return inputs[0]


def _wrap_recognizer(
    model: onnx.ModelProto, taken: set[str], old_input: str, batched: bool
) -> onnx.ModelProto:
    mean, std = arcface_normalisation(model)
    batch: int | str = "N" if batched else 1
    pre = GraphBuilder("facegate_pre_", taken=taken)
    x = _pixels_to_nchw(pre, spec.RECOGNIZER_INPUT.name, mean, 1.0 / std)
    pre.op_into("Identity", [x], old_input)
    new_input = value_info(spec.RECOGNIZER_INPUT.name, UINT8, [batch, *spec.RECOGNIZER_INPUT.shape])
    _feed_input(model, old_input, [new_input], pre)
    post = GraphBuilder("facegate_out_", taken=taken)
    post.op_into("Identity", [model.graph.output[0].name], spec.RECOGNIZER_OUTPUT.name)
    output = value_info(spec.RECOGNIZER_OUTPUT.name, FLOAT, [batch, *spec.RECOGNIZER_OUTPUT.shape])
    _set_outputs(model, post, [output])
    onnx.checker.check_model(model)
    return model


def prepare_recognizer(
    upstream: onnx.ModelProto, rng: np.random.Generator | None = None
) -> PreparedModel:
    """ArcFace [N,3,112,112] float -> spec.RECOGNIZER_* contract (uint8 BGR in, raw embedding out)."""
    base, taken = _copy_for_serving(upstream)
    old_input = _check_recognizer_contract(base).name

    def candidate() -> onnx.ModelProto:
        model = onnx.ModelProto()
        model.CopyFrom(base)
        del model.graph.value_info[:]
        return _wrap_recognizer(model, set(taken), old_input, batched=True)

    rng = rng or np.random.default_rng(0)
    crops = rng.integers(0, 256, (BATCH_CHECK_SIZE, *spec.RECOGNIZER_INPUT.shape), dtype=np.uint8)
    shapes = [spec.RECOGNIZER_OUTPUT.shape]
    batched, check = check_batch(candidate, spec.RECOGNIZER_INPUT.name, crops, shapes, open_session)
    if batched is not None:
        return _batched_result(spec.RECOGNIZER, batched, spec.RECOGNIZER_MAX_BATCH, check)
    model = _build_untouched(
        "recognizer", lambda: _wrap_recognizer(base, taken, old_input, batched=False)
    )
    return _unbatched_result(spec.RECOGNIZER, model, check)


# --- swapper ----------------------------------------------------------------------------


def swapper_emap(upstream: onnx.ModelProto) -> npt.NDArray[np.float32]:
    """inswapper's 512x512 emap: the graph's last initializer, as InsightFace reads it."""
    last = upstream.graph.initializer[-1] if upstream.graph.initializer else None
    emap = numpy_helper.to_array(last) if last is not None else np.zeros(0)
    if emap.shape != (512, 512) or emap.dtype != np.float32:
        raise refuse(
            "reading the swapper's emap (inswapper_128.onnx)",
            f"a last initializer of shape {emap.shape} and dtype {emap.dtype}",
            "inswapper's 512x512 float32 emap as the graph's last initializer (insightface "
            "reads it from there)",
            REEXPORT,
        )
    return np.asarray(emap, np.float32)


def _check_swapper_contract(model: onnx.ModelProto) -> tuple[str, str, str]:
    inputs = graph_inputs(model)
    dims = [_dims(i) for i in inputs]
    size = spec.SWAPPER_INPUT_SIZE_PX
    ok = (
        len(inputs) == 2
        and len(model.graph.output) == 1
        and dims[0][1:] == [3, size, size]
        and dims[1][-1:] == [512]
    )
    if not ok:
        raise refuse(
            "checking the swapper's contract (inswapper_128.onnx)",
            f"inputs of shapes {dims} and {len(model.graph.output)} output(s)",
            f"inputs target [1, 3, {size}, {size}] and source [1, 512], one output "
            f"[1, 3, {size}, {size}]",
            REEXPORT,
        )
    return inputs[0].name, inputs[1].name, model.graph.output[0].name


def _wrap_swapper(
    model: onnx.ModelProto, taken: set[str], emap: npt.NDArray[np.float32]
) -> onnx.ModelProto:
    target_old, source_old, output_old = _check_swapper_contract(model)
    opset = opset_of(model)
    pre = GraphBuilder("facegate_pre_", taken=taken)
    target = _pixels_to_nchw(pre, spec.SWAPPER_TARGET.name, 0.0, 1.0 / 255.0)
    pre.op_into("Identity", [target], target_old)
    # latent = embedding @ emap, L2-normalised: INSwapper.get's two lines, in the graph.
    latent = pre.op("MatMul", [spec.SWAPPER_SOURCE.name, pre.const(emap, "emap")])
    squares = pre.op("Mul", [latent, latent])
    ones = pre.const(np.ones((512, 1), np.float32), "ones")
    norm = pre.op("Sqrt", [pre.op("MatMul", [squares, ones])])
    pre.op_into("Div", [latent, norm], source_old)
    _feed_input(
        model,
        target_old,
        [
            value_info(spec.SWAPPER_TARGET.name, UINT8, list(spec.SWAPPER_TARGET.shape)),
            value_info(spec.SWAPPER_SOURCE.name, FLOAT, list(spec.SWAPPER_SOURCE.shape)),
        ],
        pre,
    )
    kept = [i for i in model.graph.input if i.name != source_old]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    post = GraphBuilder("facegate_post_", taken=taken)
    y = post.op("Mul", [output_old, post.const(255.0, "scale")])
    # Clip then truncate, as numpy's astype(uint8) after np.clip in INSwapper.get.
    y = post.op("Cast", [clip(post, y, 0.0, 255.0, opset)], to=UINT8)
    y = post.op("Transpose", [y], perm=[0, 2, 3, 1])
    rgb2bgr = post.const(BGR_TO_RGB, "rgb2bgr", np.int64)
    post.op_into("Gather", [y, rgb2bgr], spec.SWAPPER_OUTPUT.name, axis=3)
    output = value_info(spec.SWAPPER_OUTPUT.name, UINT8, list(spec.SWAPPER_OUTPUT.shape))
    _set_outputs(model, post, [output])
    onnx.checker.check_model(model)
    return model


def prepare_swapper(upstream: onnx.ModelProto) -> PreparedModel:
    """inswapper_128 -> spec.SWAPPER_* contract (uint8 BGR crops, normalised embedding as source)."""
    emap = swapper_emap(upstream)
    model, taken = _copy_for_serving(upstream)
    # The emap now lives in the prepended nodes; the upstream copy is unused by any node.
    last = model.graph.initializer[-1]
    if last.name not in {i for n in model.graph.node for i in n.input}:
        model.graph.initializer.remove(last)
        listed = [i for i in model.graph.input if i.name == last.name]
        for value in listed:  # IR < 4 files list initializers as inputs too
            model.graph.input.remove(value)
    wrapped = _build_untouched("swapper", lambda: _wrap_swapper(model, taken, emap))
    note = "batch 1 (inswapper_128's graph fixes it)"
    return PreparedModel(spec.SWAPPER, wrapped, 0, (note,), note)


def attribute_normalisation(model: onnx.ModelProto) -> tuple[float, float]:
    """(input_mean, input_std) as insightface's Attribute picks them for this graph.

    A graph that normalises its own input (a node named Sub*/_minus* and one named
    Mul*/_mul* among its first 8, or a leading 'bn_data' batch norm) takes raw pixels:
    mean 0, std 1. Otherwise insightface feeds (x - 127.5) / 128.
    """
    find_sub = find_mul = False
    for index, node in enumerate(model.graph.node[:8]):
        if node.name.startswith(("Sub", "_minus")):
            find_sub = True
        if node.name.startswith(("Mul", "_mul")):
            find_mul = True
        if index < 3 and node.name == "bn_data":
            find_sub = find_mul = True
    return (0.0, 1.0) if find_sub and find_mul else (127.5, 128.0)


def _wrap_pixel_model(
    model: onnx.ModelProto,
    taken: set[str],
    tensors: tuple[spec.TensorSpec, spec.TensorSpec],
    batch: int | str,
    normalisation: tuple[float, float],
) -> onnx.ModelProto:
    """One-input image model -> uint8 NHWC BGR in (x - mean) * scale folded in, one output
    renamed and reshaped to [batch, *output shape]."""
    source, target = tensors
    mean, scale = normalisation
    old_input = graph_inputs(model)[0].name
    pre = GraphBuilder("facegate_pre_", taken=taken)
    x = _pixels_to_nchw(pre, source.name, mean, scale)
    pre.op_into("Identity", [x], old_input)
    new_input = value_info(source.name, UINT8, [batch, *source.shape])
    _feed_input(model, old_input, [new_input], pre)
    post = GraphBuilder("facegate_out_", taken=taken)
    shape = post.const(np.array([-1, *target.shape], np.int64), "shape", np.int64)
    post.op_into("Reshape", [model.graph.output[0].name, shape], target.name)
    _set_outputs(model, post, [value_info(target.name, FLOAT, [batch, *target.shape])])
    onnx.checker.check_model(model)
    return model


def _prepare_pixel_model(
    upstream: onnx.ModelProto,
    name: str,
    tensors: tuple[spec.TensorSpec, spec.TensorSpec],
    max_batch: int,
    normalisation: tuple[float, float],
    rng: np.random.Generator | None,
) -> PreparedModel:
    """Batched where a batch check proves a batch equals single runs, else batch 1."""
    if len(graph_inputs(upstream)) != 1 or len(upstream.graph.output) != 1:
        raise refuse(
            f"preparing the {name} model",
            f"{len(graph_inputs(upstream))} inputs and {len(upstream.graph.output)} outputs",
            "one image input and one output",
            REEXPORT,
        )
    base, taken = _copy_for_serving(upstream)

    def candidate() -> onnx.ModelProto:
        model = onnx.ModelProto()
        model.CopyFrom(base)
        del model.graph.value_info[:]
        return _wrap_pixel_model(model, set(taken), tensors, "N", normalisation)

    rng = rng or np.random.default_rng(0)
    source, target = tensors
    samples = rng.integers(0, 256, (BATCH_CHECK_SIZE, *source.shape), dtype=np.uint8)
    batched, check = check_batch(candidate, source.name, samples, [target.shape], open_session)
    if batched is not None:
        return _batched_result(name, batched, max_batch, check)
    model = _build_untouched(
        name, lambda: _wrap_pixel_model(base, taken, tensors, 1, normalisation)
    )
    return _unbatched_result(name, model, check)


def prepare_genderage(
    upstream: onnx.ModelProto, rng: np.random.Generator | None = None
) -> PreparedModel:
    """genderage.onnx [N,3,96,96] float -> spec.GENDERAGE_* contract (uint8 BGR in, raw out).

    The upstream file declares its output [1, 3]; the batch check decides whether it is
    served batched (max batch GENDERAGE_MAX_BATCH) or one crop per request. The input
    normalisation is the one insightface's Attribute picks for the graph.
    """
    mean, std = attribute_normalisation(upstream)
    tensors = (spec.GENDERAGE_INPUT, spec.GENDERAGE_OUTPUT)
    return _prepare_pixel_model(
        upstream, spec.GENDERAGE, tensors, spec.GENDERAGE_MAX_BATCH, (mean, 1.0 / std), rng
    )


def prepare_liveness(
    upstream: onnx.ModelProto, rng: np.random.Generator | None = None
) -> PreparedModel:
    """Liveness addon [N,3,80,80] RGB/255 -> spec.LIVENESS_* (uint8 BGR in, [N, 1] score out)."""
    tensors = (spec.LIVENESS_INPUT, spec.LIVENESS_OUTPUT)
    # The addon feeds RGB / 255 (no mean), after its own alignment.
    return _prepare_pixel_model(
        upstream, spec.LIVENESS, tensors, spec.LIVENESS_MAX_BATCH, (0.0, 1.0 / 255.0), rng
    )


def _prepare_landmark(
    upstream: onnx.ModelProto, name: str, output: spec.TensorSpec, rng: np.random.Generator | None
) -> PreparedModel:
    """A Landmark model [N,3,192,192] float -> uint8 BGR crops in, raw points out.

    insightface's Landmark picks its input normalisation as Attribute does; the batch check
    decides batched (max LANDMARK_MAX_BATCH) or one crop per request.
    """
    mean, std = attribute_normalisation(upstream)
    tensors = (spec.LANDMARK_INPUT, output)
    return _prepare_pixel_model(
        upstream, name, tensors, spec.LANDMARK_MAX_BATCH, (mean, 1.0 / std), rng
    )


def prepare_landmark_2d106(
    upstream: onnx.ModelProto, rng: np.random.Generator | None = None
) -> PreparedModel:
    """2d106det.onnx -> spec.LANDMARK_INPUT in, spec.LANDMARK_2D106_OUTPUT (N, 212) out."""
    return _prepare_landmark(upstream, spec.LANDMARK_2D106, spec.LANDMARK_2D106_OUTPUT, rng)


def prepare_landmark_3d68(
    upstream: onnx.ModelProto, rng: np.random.Generator | None = None
) -> PreparedModel:
    """1k3d68.onnx -> spec.LANDMARK_INPUT in, spec.LANDMARK_3D68_OUTPUT (N, 3309) out."""
    return _prepare_landmark(upstream, spec.LANDMARK_3D68, spec.LANDMARK_3D68_OUTPUT, rng)


PREPARERS: dict[str, Callable[[onnx.ModelProto], PreparedModel]] = {
    spec.DETECTOR: prepare_detector,
    spec.RECOGNIZER: prepare_recognizer,
    spec.SWAPPER: prepare_swapper,
    spec.GENDERAGE: prepare_genderage,
    spec.LIVENESS: prepare_liveness,
    spec.LANDMARK_2D106: prepare_landmark_2d106,
    spec.LANDMARK_3D68: prepare_landmark_3d68,
}


def make_model_metadata(model: onnx.ModelProto, props: dict[str, str]) -> None:
    """Record provenance (source, sha256, synthetic label) in the ONNX metadata."""
    existing = {p.key: p.value for p in model.metadata_props}
    existing.update(props)
    del model.metadata_props[:]
    helper.set_model_props(model, existing)
