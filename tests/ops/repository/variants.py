"""Valid upstream files of many shapes, built from the tiny synthetic models.

Each function takes an upstream-form model and returns a changed copy that still has the
upstream I/O contract, so that insightface's SCRFD, ArcFaceONNX and INSwapper load and run
it: the kinds of differences a re-export, another exporter version or a conversion tool
produces (names, reshape forms, tail nodes, opsets and IR versions, fixed or symbolic
dims, fp16 weights, external data). `broken_*` functions break the contract on purpose.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from gateway.ops.repository.naming import rename_tensors, tensor_names, unique_name

Transform = Callable[[onnx.ModelProto], onnx.ModelProto]
# Upstream output order of SCRFD: scores for strides 8/16/32, then boxes, then landmarks.
WIDTHS = (1, 1, 1, 4, 4, 4, 10, 10, 10)
ANCHORS = (12800, 3200, 800) * 3


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def _producer(model: onnx.ModelProto, tensor: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if tensor in n.output)


def _insert_before(
    model: onnx.ModelProto, anchor: onnx.NodeProto, nodes: list[onnx.NodeProto]
) -> None:
    """Insert `nodes` right before `anchor`, keeping the node list topologically sorted."""
    all_nodes = list(model.graph.node)
    index = next(i for i, n in enumerate(all_nodes) if n == anchor)
    del model.graph.node[:]
    model.graph.node.extend([*all_nodes[:index], *nodes, *all_nodes[index:]])


def _set_dims(value: onnx.ValueInfoProto, dims: list[int | str]) -> None:
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, int):
            dim.dim_value = d
        else:
            dim.dim_param = d


def _const(model: onnx.ModelProto, value: np.ndarray, hint: str) -> str:
    name = unique_name(hint, tensor_names(model.graph))
    model.graph.initializer.append(numpy_helper.from_array(value, name))
    return name


# --- names ------------------------------------------------------------------------------


def rename_outputs(names: list[str]) -> Transform:
    """Graph outputs renamed, in upstream order (names may equal the served ones)."""

    def apply(model: onnx.ModelProto) -> onnx.ModelProto:
        out = _copy(model)
        old = [o.name for o in out.graph.output]
        rename_tensors(out.graph, dict(zip(old, names, strict=True)))
        return out

    return apply


def rename_inputs(names: list[str]) -> Transform:
    def apply(model: onnx.ModelProto) -> onnx.ModelProto:
        out = _copy(model)
        old = [i.name for i in out.graph.input][: len(names)]
        rename_tensors(out.graph, dict(zip(old, names, strict=True)))
        return out

    return apply


def rename_internal(names: list[str]) -> Transform:
    """The first node outputs renamed to `names` (names the prepare step likes to write)."""

    def apply(model: onnx.ModelProto) -> onnx.ModelProto:
        out = _copy(model)
        outputs = {o.name for o in out.graph.output}
        internal = [t for n in out.graph.node for t in n.output if t not in outputs]
        rename_tensors(out.graph, dict(zip(internal, names, strict=False)))
        return out

    return apply


# --- detector heads ---------------------------------------------------------------------


def _head_reshapes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [_producer(model, o.name) for o in model.graph.output]


def reshape_rank3(model: onnx.ModelProto) -> onnx.ModelProto:
    """Heads end in Reshape(x, (1, -1, C)) and declare [1, K, C] (insightface: batched)."""
    out = _copy(model)
    for node, output, width, anchors in zip(
        _head_reshapes(out), out.graph.output, WIDTHS, ANCHORS, strict=True
    ):
        node.input[1] = _const(out, np.array([1, -1, width], np.int64), "shape3")
        _set_dims(output, [1, anchors, width])
    return out


def reshape_constant_node(model: onnx.ModelProto) -> onnx.ModelProto:
    """Head shapes (-1, C) come from Constant nodes instead of initializers."""
    out = _copy(model)
    for output, width in zip(list(out.graph.output), WIDTHS, strict=True):
        node = _producer(out, output.name)  # afresh: each insertion copies the nodes
        name = unique_name("shape_const", tensor_names(out.graph))
        value = numpy_helper.from_array(np.array([-1, width], np.int64))
        node.input[1] = name  # before the insertion, which copies the nodes
        _insert_before(out, node, [helper.make_node("Constant", [], [name], value=value)])
    return out


def reshape_computed(keep_batch: bool, gather: bool = False) -> Transform:
    """Head shapes computed in the graph: (Shape(x)[0], -1, C) keeps the batch, taken with
    Slice or, as torch exports `x.reshape(x.shape[0], -1, C)` at opset 11, with
    Gather + Unsqueeze; (-1, C) from a Concat of two Constant nodes folds it (a form the
    rewrite does not read)."""

    def apply(model: onnx.ModelProto) -> onnx.ModelProto:
        out = _copy(model)
        for output, width, anchors in zip(out.graph.output, WIDTHS, ANCHORS, strict=True):
            node = _producer(out, output.name)  # afresh: each insertion copies the nodes
            taken = tensor_names(out.graph)
            names = [unique_name(h, taken) for h in ("shp", "n", "minus1", "width", "target")]
            one = lambda v: numpy_helper.from_array(np.array(v, np.int64))  # noqa: E731
            nodes = [
                helper.make_node("Constant", [], [names[2]], value=one([-1])),
                helper.make_node("Constant", [], [names[3]], value=one([width])),
            ]
            parts = [names[2], names[3]]
            if keep_batch:
                starts, ends = (
                    _const(out, np.array([v], np.int64), h) for v, h in ((0, "s"), (1, "e"))
                )
                take = [helper.make_node("Slice", [names[0], starts, ends], [names[1]])]
                if gather:  # Unsqueeze's axes attribute: opset 11 and 12 only
                    index = _const(out, np.array(0, np.int64), "index")
                    scalar = unique_name("n_scalar", taken)
                    take = [
                        helper.make_node("Gather", [names[0], index], [scalar], axis=0),
                        helper.make_node("Unsqueeze", [scalar], [names[1]], axes=[0]),
                    ]
                nodes = [helper.make_node("Shape", [node.input[0]], [names[0]]), *take, *nodes]
                parts = [names[1], *parts]
                _set_dims(output, ["batch", anchors, width])
            nodes.append(helper.make_node("Concat", parts, [names[4]], axis=0))
            node.input[1] = names[4]  # before the insertion, which copies the nodes
            _insert_before(out, node, nodes)
        return out

    return apply


def tail_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Every output passes through an Identity and a Cast to float before it leaves."""
    out = _copy(model)
    for output in out.graph.output:
        taken = tensor_names(out.graph)
        raw, mid = unique_name(f"{output.name}_raw", taken), unique_name(f"{output.name}_id", taken)
        _producer(out, output.name).output[0] = raw
        out.graph.node.extend(
            [
                helper.make_node("Identity", [raw], [mid]),
                helper.make_node("Cast", [mid], [output.name], to=onnx.TensorProto.FLOAT),
            ]
        )
    return out


def residual_branch(readable: bool) -> Transform:
    """A small cost branch added to each score output after its Reshape, as re-exports with
    an auxiliary head have it: Add(Reshape(x, (-1,1)), Reshape(0.01*x, shape)). Rewriting
    only the first Reshape breaks the Add ("800 by 3200"); `readable` says whether the
    branch's own shape is a constant the rewrite can read too."""

    def apply(model: onnx.ModelProto) -> onnx.ModelProto:
        out = _copy(model)
        for output in list(out.graph.output)[:3]:
            head = _producer(out, output.name)
            taken = tensor_names(out.graph)
            raw, scaled, branch = (unique_name(h, taken) for h in ("head", "cost", "cost_flat"))
            head.output[0] = raw
            factor = _const(out, np.array(0.01, np.float32), "cost_scale")
            nodes = [helper.make_node("Mul", [head.input[0], factor], [scaled])]
            if readable:
                shape = _const(out, np.array([-1, 1], np.int64), "cost_shape")
            else:
                shape = unique_name("cost_shape", taken)
                ones = numpy_helper.from_array(np.array([-1, 1], np.int64))
                shape_src = unique_name("cost_shape_src", taken)
                nodes += [
                    helper.make_node("Constant", [], [shape_src], value=ones),
                    helper.make_node("Identity", [shape_src], [shape]),
                ]
            nodes += [
                helper.make_node("Reshape", [scaled, shape], [branch]),
                helper.make_node("Add", [raw, branch], [output.name]),
            ]
            out.graph.node.extend(nodes)
        return out

    return apply


def drop_landmarks(model: onnx.ModelProto) -> onnx.ModelProto:
    """Broken on purpose: an SCRFD without its 3 landmark outputs (6 outputs)."""
    out = _copy(model)
    keep = list(out.graph.output)[:6]
    del out.graph.output[:]
    out.graph.output.extend(keep)
    return out


# --- inputs, versions, weights ----------------------------------------------------------


def input_dims(dims: list[int | str]) -> Transform:
    def apply(model: onnx.ModelProto) -> onnx.ModelProto:
        out = _copy(model)
        _set_dims(out.graph.input[0], dims)
        return out

    return apply


def versions(opset: int, ir_version: int) -> Transform:
    """The same graph declared at another opset and IR version (its ops mean the same there)."""

    def apply(model: onnx.ModelProto) -> onnx.ModelProto:
        out = _copy(model)
        for entry in out.opset_import:
            if entry.domain in ("", "ai.onnx"):
                entry.version = opset
        out.ir_version = ir_version
        return out

    return apply


def fp16_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """Float weights stored as fp16, each cast back to float by a Cast node at the top."""
    out = _copy(model)
    casts = []
    for init in out.graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        value = numpy_helper.to_array(init)
        half_name = f"{init.name}_fp16"
        casts.append(helper.make_node("Cast", [half_name], [init.name], to=onnx.TensorProto.FLOAT))
        init.CopyFrom(numpy_helper.from_array(value.astype(np.float16), half_name))
    nodes = list(out.graph.node)
    del out.graph.node[:]
    out.graph.node.extend([*casts, *nodes])
    return out


def batch_one_recognizer(model: onnx.ModelProto) -> onnx.ModelProto:
    """An ArcFace whose Flatten is a Reshape to (1, -1): it runs at batch 1 only (valid for
    insightface, which embeds one face per call)."""
    out = _copy(model)
    flatten = next(n for n in out.graph.node if n.op_type == "Flatten")
    shape = _const(out, np.array([1, -1], np.int64), "flat_shape")
    flatten.op_type = "Reshape"
    del flatten.attribute[:]
    flatten.input.append(shape)
    _set_dims(out.graph.input[0], [1, 3, 112, 112])
    _set_dims(out.graph.output[0], [1, 512])
    return out


def normalising_recognizer(model: onnx.ModelProto) -> onnx.ModelProto:
    """An mxnet-style ArcFace that normalises in the graph with nodes named Sub/Mul, so
    insightface feeds it raw pixels (its ArcFaceONNX reads the node names)."""
    out = _copy(model)
    old = out.graph.input[0].name
    taken = tensor_names(out.graph)
    raw, centred, scaled = (unique_name(h, taken) for h in ("data", "centred", "scaled"))
    rename_tensors(out.graph, {old: scaled})
    out.graph.input[0].name = raw
    mean = _const(out, np.array(127.5, np.float32), "mean")
    scale = _const(out, np.array(1 / 127.5, np.float32), "scale")
    nodes = list(out.graph.node)
    del out.graph.node[:]
    out.graph.node.extend(
        [
            helper.make_node("Sub", [raw, mean], [centred], name="Sub_0"),
            helper.make_node("Mul", [centred, scale], [scaled], name="Mul_1"),
            *nodes,
        ]
    )
    return out


def emap_not_last(model: onnx.ModelProto) -> onnx.ModelProto:
    """Broken on purpose: another initializer after inswapper's emap."""
    out = _copy(model)
    out.graph.initializer.append(numpy_helper.from_array(np.zeros(3, np.float32), "late"))
    return out


def chain(*transforms: Transform) -> Transform:
    def apply(model: onnx.ModelProto) -> onnx.ModelProto:
        for transform in transforms:
            model = transform(model)
        onnx.checker.check_model(model)
        return model

    return apply


@dataclass(frozen=True)
class Variant:
    """A named upstream variant of one role."""

    id: str
    role: str
    transform: Transform
    # Whether the prepare step should prove a batch for it (the swapper is never batched).
    batched: bool = True


SERVED_DETECTOR_NAMES = [f"{k}_{s}" for k in ("score", "bbox", "kps") for s in (8, 16, 32)]
PREPARE_STEP_NAMES = [
    "facegate_pre_cast_1", "facegate_pre_gather_3", "facegate_out_shape_1",
    "facegate_batch_shape", "upstream_score_8", "images",
]  # fmt: skip

DETECTOR_VARIANTS = [
    Variant("numeric-names", "detector", chain()),
    Variant("served-names", "detector", chain(rename_outputs(SERVED_DETECTOR_NAMES))),
    Variant(
        "shuffled-served-names",
        "detector",
        chain(rename_outputs(SERVED_DETECTOR_NAMES[::-1]), rename_inputs(["images"])),
    ),
    Variant(
        "stable-looking-names",
        "detector",
        chain(
            rename_outputs([f"stride{s}_{k}" for k in ("cls", "reg", "kps") for s in (8, 16, 32)])
        ),
    ),
    Variant(
        "prepare-step-names",
        "detector",
        chain(rename_internal(PREPARE_STEP_NAMES), rename_outputs(SERVED_DETECTOR_NAMES)),
    ),
    Variant("reshape-1-minus1-c", "detector", chain(reshape_rank3)),
    Variant("reshape-constant-nodes", "detector", chain(reshape_constant_node)),
    Variant("reshape-computed-batch", "detector", chain(reshape_computed(keep_batch=True))),
    Variant(
        "reshape-shape-gather-concat",
        "detector",
        chain(reshape_computed(keep_batch=True, gather=True)),
    ),
    Variant(
        "reshape-computed-folded",
        "detector",
        chain(reshape_computed(keep_batch=False)),
        batched=False,
    ),
    Variant("identity-cast-tails", "detector", chain(tail_nodes)),
    Variant("residual-branch", "detector", chain(residual_branch(readable=True))),
    Variant(
        "residual-branch-computed",
        "detector",
        chain(residual_branch(readable=False)),
        batched=False,
    ),
    Variant("input-data", "detector", chain(rename_inputs(["data"]))),
    Variant("fixed-640", "detector", chain(input_dims([1, 3, 640, 640]))),
    Variant("symbolic-batch", "detector", chain(input_dims(["batch", 3, "height", "width"]))),
    Variant("fp16-weights", "detector", chain(fp16_weights)),
    *(
        Variant(f"opset{opset}-ir{ir}", "detector", chain(versions(opset, ir)))
        for opset, ir in ((11, 6), (12, 7), (13, 7), (14, 8), (15, 8), (16, 8), (17, 8), (17, 9))
    ),
    Variant(
        "everything",
        "detector",
        chain(
            rename_outputs(SERVED_DETECTOR_NAMES),
            reshape_rank3,
            residual_branch(readable=True),
            tail_nodes,
            fp16_weights,
            rename_inputs(["images"]),
            versions(17, 8),
        ),
    ),
]
RECOGNIZER_VARIANTS = [
    Variant("numeric-names", "recognizer", chain()),
    Variant(
        "served-names", "recognizer", chain(rename_inputs(["faces"]), rename_outputs(["embedding"]))
    ),
    Variant("named-io", "recognizer", chain(rename_inputs(["data"]), rename_outputs(["fc1"]))),
    Variant("fixed-batch-1-input", "recognizer", chain(input_dims([1, 3, 112, 112]))),
    Variant("runs-at-batch-1-only", "recognizer", chain(batch_one_recognizer), batched=False),
    Variant("normalises-in-graph", "recognizer", chain(normalising_recognizer)),
    Variant("identity-cast-tail", "recognizer", chain(tail_nodes)),
    Variant("fp16-weights", "recognizer", chain(fp16_weights)),
    *(
        Variant(f"opset{opset}-ir{ir}", "recognizer", chain(versions(opset, ir)))
        for opset, ir in ((11, 6), (13, 7), (15, 8), (17, 9))
    ),
]
SWAPPER_VARIANTS = [
    Variant("upstream-names", "swapper", chain()),
    Variant(
        "other-names",
        "swapper",
        chain(rename_inputs(["input.1", "onnx::Gemm_1"]), rename_outputs(["swapped"])),
    ),
    Variant("swapped-names", "swapper", chain(rename_inputs(["source", "target"]))),
    Variant("identity-cast-tail", "swapper", chain(tail_nodes)),
    *(
        Variant(f"opset{opset}-ir{ir}", "swapper", chain(versions(opset, ir)))
        for opset, ir in ((11, 6), (14, 8), (17, 9))
    ),
]
ALL_VARIANTS = [*DETECTOR_VARIANTS, *RECOGNIZER_VARIANTS, *SWAPPER_VARIANTS]
