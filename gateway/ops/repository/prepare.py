"""Turn upstream InsightFace ONNX graphs into the served models.

What changes (see docs/MODELS.md for the resulting contracts):
- stable tensor names from gateway.triton.spec instead of upstream names like "input.1"/"683";
- uint8 NHWC BGR pixels on the wire; InsightFace's normalisation and BGR->RGB are folded
  into the graph (SCRFD (x-127.5)/128, ArcFace (x-127.5)/127.5, inswapper target x/255);
- the detector gets a batch dimension where a check proves a batch equals single runs,
  and a fixed 640x640 input; its outputs are always [N, anchors, width];
- inswapper's emap projection and the latent's L2 normalisation are folded in, so its
  "source" input takes the recognizer's L2-normalised embedding; output comes back uint8 BGR.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper, numpy_helper

from gateway.ops.repository.graph import FLOAT, UINT8, GraphBuilder, clip, opset_of, value_info
from gateway.triton import spec

# Both the embedded onnxruntime and the ONNX Runtime 1.19 of NGC Triton 24.10 (Triton 2.51)
# accept these; a current onnx writes IR 10+, which older runtimes reject.
MAX_IR_VERSION = 9
MAX_OPSET = 17
BATCH_CHECK_SIZE = 4
BGR_TO_RGB = np.array([2, 1, 0], np.int64)


class PrepareError(Exception):
    """An upstream file does not have the structure the prepare step needs."""


@dataclass(frozen=True)
class PreparedModel:
    """A served model and what the prepare step found out about it."""

    name: str
    model: onnx.ModelProto
    max_batch_size: int
    notes: tuple[str, ...] = ()


def _graph_input(model: onnx.ModelProto, index: int = 0) -> onnx.ValueInfoProto:
    initializer_names = {t.name for t in model.graph.initializer}
    real_inputs = [i for i in model.graph.input if i.name not in initializer_names]
    found: onnx.ValueInfoProto = real_inputs[index]
    return found


def _check_versions(model: onnx.ModelProto) -> None:
    opset = opset_of(model)
    if opset > MAX_OPSET:
        raise PrepareError(
            f"upstream opset {opset} is newer than {MAX_OPSET}, which NGC Triton 24.10's ONNX Runtime accepts"
        )
    model.ir_version = min(model.ir_version, MAX_IR_VERSION)


def _replace_input(
    model: onnx.ModelProto,
    old: str,
    new_input: onnx.ValueInfoProto,
    pre: GraphBuilder,
    produced: str,
) -> None:
    """Feed the old graph input from `produced` (the output of `pre`'s nodes) instead.

    The old input is renamed inside the graph first: upstream names may equal ours
    (inswapper's inputs are already called "target" and "source").
    """
    internal = _rename_consumers(model, old)
    pre.op_into("Identity", [produced], internal)
    kept = [i for i in model.graph.input if i.name != old]
    del model.graph.input[:]
    model.graph.input.extend([new_input, *kept])
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend([*pre.nodes, *nodes])
    model.graph.initializer.extend(pre.initializers)


def _rename_consumers(model: onnx.ModelProto, old: str) -> str:
    internal = f"facegate_upstream_{old}"
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            if name == old:
                node.input[index] = internal
    return internal


def _pixels_to_nchw(pre: GraphBuilder, pixels: str, mean: float, scale: float) -> str:
    """uint8 NHWC BGR -> float NCHW RGB, (x - mean) * scale as cv2.dnn.blobFromImage computes it."""
    x = pre.op("Cast", [pixels], to=FLOAT)
    x = pre.op("Gather", [x, pre.const(BGR_TO_RGB, "bgr2rgb", np.int64)], axis=3)
    x = pre.op("Transpose", [x], perm=[0, 3, 1, 2])
    if mean:
        x = pre.op("Sub", [x, pre.const(mean, "mean")])
    return pre.op("Mul", [x, pre.const(scale, "scale")])


def _rename_outputs(
    model: onnx.ModelProto, renames: list[tuple[str, str]], shapes: list[list[int | str]]
) -> None:
    post = GraphBuilder("facegate_out_")
    outputs = []
    for (old, new), shape in zip(renames, shapes, strict=True):
        post.op_into("Identity", [old], new)
        outputs.append(value_info(new, FLOAT, shape))
    model.graph.node.extend(post.nodes)
    del model.graph.output[:]
    model.graph.output.extend(outputs)


def _producer(model: onnx.ModelProto, tensor: str) -> onnx.NodeProto | None:
    node: onnx.NodeProto
    for node in model.graph.node:
        if tensor in node.output:
            return node
    return None


def _constant_array(
    model: onnx.ModelProto, name: str
) -> tuple[npt.NDArray[Any], Callable[[npt.NDArray[Any]], None]] | None:
    """A constant's value and a setter that replaces it, for initializers and Constant nodes."""
    for index, init in enumerate(model.graph.initializer):
        if init.name == name:

            def set_init(value: npt.NDArray[Any], index: int = index) -> None:
                model.graph.initializer[index].CopyFrom(numpy_helper.from_array(value, name))

            return numpy_helper.to_array(init), set_init
    node = _producer(model, name)
    if node is not None and node.op_type == "Constant":
        attr = next(a for a in node.attribute if a.name == "value")

        def set_node(value: npt.NDArray[Any]) -> None:
            attr.t.CopyFrom(numpy_helper.from_array(value, name))

        return numpy_helper.to_array(attr.t), set_node
    return None


_PASS_THROUGH = {"Sigmoid", "Identity", "Mul", "Add", "Relu", "Exp", "Softmax"}


def _unfold_output_batch(model: onnx.ModelProto, output: str) -> bool:
    """Rewrite the Reshape to (-1, C) that folds the batch into dim 0 into (0, -1, C).

    Walks back from the output through element-wise nodes. Returns False when the graph does
    not have that shape (the caller then keeps batch 1).
    """
    tensor = output
    for _ in range(8):
        node = _producer(model, tensor)
        if node is None:
            return False
        if node.op_type == "Reshape":
            found = _constant_array(model, node.input[1])
            if found is None:
                return False
            value, set_value = found
            if value.ndim != 1 or value.size != 2 or int(value[0]) != -1:
                return False
            set_value(np.array([0, -1, int(value[1])], np.int64))
            return True
        if node.op_type not in _PASS_THROUGH:
            return False
        tensor = node.input[0]
    return False


def _add_leading_axis(model: onnx.ModelProto, outputs: list[str]) -> list[str]:
    """Give unbatched (K, C) outputs a leading axis of 1 so the wire shape is always (N, K, C)."""
    post = GraphBuilder("facegate_unsq_")
    renamed = []
    for name, tensor in zip(outputs, spec.DETECTOR_OUTPUTS, strict=True):
        shape = post.const(np.array([1, -1, tensor.shape[-1]], np.int64), "shape", np.int64)
        renamed.append(post.op("Reshape", [name, shape]))
    model.graph.node.extend(post.nodes)
    model.graph.initializer.extend(post.initializers)
    return renamed


def _run(model: onnx.ModelProto, feeds: dict[str, npt.NDArray[Any]]) -> list[npt.NDArray[Any]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return [np.asarray(x) for x in session.run(None, feeds)]


def _clear_intermediate_shapes(model: onnx.ModelProto) -> None:
    del model.graph.value_info[:]


def prepare_detector(
    upstream: onnx.ModelProto, rng: np.random.Generator | None = None
) -> PreparedModel:
    """SCRFD with 9 outputs (scores, boxes, kps for strides 8/16/32) -> spec.DETECTOR_* contract."""
    model = onnx.ModelProto()
    model.CopyFrom(upstream)
    _check_versions(model)
    _clear_intermediate_shapes(model)
    upstream_outputs = [o.name for o in model.graph.output]
    if len(upstream_outputs) != len(spec.DETECTOR_OUTPUTS):
        raise PrepareError(
            f"expected an SCRFD graph with 9 outputs (with keypoints), got {len(upstream_outputs)}"
        )
    old_input = _graph_input(model).name
    batched = all(_unfold_output_batch(model, name) for name in upstream_outputs)
    notes: list[str] = []
    candidate = _wrap_detector(model, old_input, upstream_outputs, batched)
    if batched:
        rng = rng or np.random.default_rng(0)
        frames = rng.integers(
            0, 256, (BATCH_CHECK_SIZE, *spec.DETECTOR_INPUT.shape), dtype=np.uint8
        )
        together = _run(candidate, {spec.DETECTOR_INPUT.name: frames})
        singles = [
            _run(candidate, {spec.DETECTOR_INPUT.name: frames[i : i + 1]})
            for i in range(BATCH_CHECK_SIZE)
        ]
        diff = max(
            float(np.max(np.abs(together[k][i] - singles[i][k][0])))
            if together[k].shape[0] == BATCH_CHECK_SIZE
            else np.inf
            for k in range(len(together))
            for i in range(BATCH_CHECK_SIZE)
        )
        if diff <= 1e-4:
            notes.append(
                f"batch check passed: a batch of {BATCH_CHECK_SIZE} equals {BATCH_CHECK_SIZE} single runs (max abs diff {diff:.2e})"
            )
        else:
            batched = False
            notes.append(
                f"batch check FAILED (max abs diff {diff:.2e}): detector served unbatched (max_batch_size 0, batch 1)"
            )
    else:
        notes.append(
            "output reshapes are not the (-1, C) constants the rewrite handles: detector served unbatched"
        )
    if not batched:
        model = onnx.ModelProto()
        model.CopyFrom(upstream)
        _check_versions(model)
        _clear_intermediate_shapes(model)
        candidate = _wrap_detector(model, old_input, upstream_outputs, batched=False)
    return PreparedModel(spec.DETECTOR, candidate, 8 if batched else 0, tuple(notes))


def _wrap_detector(
    model: onnx.ModelProto, old_input: str, upstream_outputs: list[str], batched: bool
) -> onnx.ModelProto:
    wrapped = onnx.ModelProto()
    wrapped.CopyFrom(model)
    pre = GraphBuilder("facegate_pre_")
    batch: int | str = "N" if batched else 1
    new_input = value_info(spec.DETECTOR_INPUT.name, UINT8, [batch, *spec.DETECTOR_INPUT.shape])
    x = _pixels_to_nchw(pre, spec.DETECTOR_INPUT.name, 127.5, 1.0 / 128.0)
    _replace_input(wrapped, old_input, new_input, pre, x)
    sources = upstream_outputs if batched else _add_leading_axis(wrapped, upstream_outputs)
    names = [t.name for t in spec.DETECTOR_OUTPUTS]
    shapes: list[list[int | str]] = [[batch, *t.shape] for t in spec.DETECTOR_OUTPUTS]
    _rename_outputs(wrapped, list(zip(sources, names, strict=True)), shapes)
    onnx.checker.check_model(wrapped)
    return wrapped


def prepare_recognizer(upstream: onnx.ModelProto) -> PreparedModel:
    """ArcFace [N,3,112,112] float -> spec.RECOGNIZER_* contract (uint8 BGR in, raw embedding out)."""
    model = onnx.ModelProto()
    model.CopyFrom(upstream)
    _check_versions(model)
    _clear_intermediate_shapes(model)
    old_input = _graph_input(model).name
    if len(model.graph.output) != 1:
        raise PrepareError("expected an ArcFace graph with one output")
    pre = GraphBuilder("facegate_pre_")
    new_input = value_info(spec.RECOGNIZER_INPUT.name, UINT8, ["N", *spec.RECOGNIZER_INPUT.shape])
    x = _pixels_to_nchw(pre, spec.RECOGNIZER_INPUT.name, 127.5, 1.0 / 127.5)
    _replace_input(model, old_input, new_input, pre, x)
    _rename_outputs(
        model, [(model.graph.output[0].name, spec.RECOGNIZER_OUTPUT.name)], [["N", 512]]
    )
    onnx.checker.check_model(model)
    return PreparedModel(spec.RECOGNIZER, model, spec.RECOGNIZER_MAX_BATCH)


def swapper_emap(upstream: onnx.ModelProto) -> npt.NDArray[Any]:
    """inswapper's 512x512 emap: the graph's last initializer, as InsightFace reads it."""
    emap = numpy_helper.to_array(upstream.graph.initializer[-1])
    if emap.shape != (512, 512):
        raise PrepareError(
            f"expected inswapper's emap (512x512) as the last initializer, found shape {emap.shape}"
        )
    return emap.astype(np.float32)


def prepare_swapper(upstream: onnx.ModelProto) -> PreparedModel:
    """inswapper_128 -> spec.SWAPPER_* contract (uint8 BGR crops, normalised embedding as source)."""
    model = onnx.ModelProto()
    model.CopyFrom(upstream)
    emap = swapper_emap(model)
    _check_versions(model)
    _clear_intermediate_shapes(model)
    opset = opset_of(model)
    target_old = _graph_input(model, 0).name
    source_old = _graph_input(model, 1).name
    source_internal = _rename_consumers(model, source_old)
    pre = GraphBuilder("facegate_pre_")
    target = _pixels_to_nchw(pre, spec.SWAPPER_TARGET.name, 0.0, 1.0 / 255.0)
    latent = pre.op("MatMul", [spec.SWAPPER_SOURCE.name, pre.const(emap, "emap")])
    norm = pre.op(
        "Sqrt",
        [
            pre.op(
                "MatMul",
                [pre.op("Mul", [latent, latent]), pre.const(np.ones((512, 1), np.float32), "ones")],
            )
        ],
    )
    latent = pre.op("Div", [latent, norm])
    _replace_input(
        model,
        target_old,
        value_info(spec.SWAPPER_TARGET.name, UINT8, list(spec.SWAPPER_TARGET.shape)),
        pre,
        target,
    )
    pre_source = GraphBuilder("facegate_src_")
    pre_source.op_into("Identity", [latent], source_internal)
    kept = [i for i in model.graph.input if i.name != source_old]
    del model.graph.input[:]
    model.graph.input.extend(
        [*kept, value_info(spec.SWAPPER_SOURCE.name, FLOAT, list(spec.SWAPPER_SOURCE.shape))]
    )
    model.graph.node.insert(len(pre.nodes), pre_source.nodes[0])
    post = GraphBuilder("facegate_post_")
    y = post.op("Mul", [model.graph.output[0].name, post.const(255.0, "scale")])
    y = post.op("Cast", [clip(post, y, 0.0, 255.0, opset)], to=UINT8)
    y = post.op("Transpose", [y], perm=[0, 2, 3, 1])
    post.op_into(
        "Gather", [y, post.const(BGR_TO_RGB, "rgb2bgr", np.int64)], spec.SWAPPER_OUTPUT.name, axis=3
    )
    model.graph.node.extend(post.nodes)
    model.graph.initializer.extend(post.initializers)
    del model.graph.output[:]
    model.graph.output.extend(
        [value_info(spec.SWAPPER_OUTPUT.name, UINT8, list(spec.SWAPPER_OUTPUT.shape))]
    )
    # The emap now lives in the graph as a used constant; drop the unused upstream copy.
    unused = model.graph.initializer[len(upstream.graph.initializer) - 1]
    if unused.name not in {i for n in model.graph.node for i in n.input}:
        model.graph.initializer.remove(unused)
    onnx.checker.check_model(model)
    return PreparedModel(spec.SWAPPER, model, 0)


PREPARERS: dict[str, Callable[[onnx.ModelProto], PreparedModel]] = {
    spec.DETECTOR: prepare_detector,
    spec.RECOGNIZER: prepare_recognizer,
    spec.SWAPPER: prepare_swapper,
}


def make_model_metadata(model: onnx.ModelProto, props: dict[str, str]) -> None:
    """Record provenance (source, sha256, synthetic label) in the ONNX metadata."""
    existing = {p.key: p.value for p in model.metadata_props}
    existing.update(props)
    del model.metadata_props[:]
    helper.set_model_props(model, existing)
