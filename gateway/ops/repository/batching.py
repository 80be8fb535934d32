"""A batch dimension for graphs exported with batch 1, and the check that proves it.

Published SCRFD exports fold the batch into the first output dimension: each head ends in
`Reshape(x, (-1, C))` (or `(1, -1, C)`), so a batch of N gives (N*K, C) and images mix.
The rewrite gives each such Reshape its own shape `(0, -1, C)` (0 copies the batch).
Reshapes whose shape is computed in the graph are left alone: they may already carry the
batch. The rewrite is only a candidate: `check_batch` runs it and it is served only when a
batch equals single runs, shape for shape. Anything else (a rewrite that does not build, a
graph that does not run, a shape or a value that differs) is a reason to serve batch 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

from gateway.ops.repository.naming import unique_name

BATCH_CHECK_SIZE = 4
# Same graph, same arithmetic per image: only summation order may differ between batch
# sizes (onnxruntime picks kernels by shape).
BATCH_TOLERANCE = 1e-4
# Nodes a head's output may pass through after its Reshape without changing which
# elements belong to which image (element-wise, or along the last axis).
_ELEMENTWISE = {
    "Identity", "Cast", "Sigmoid", "Relu", "Exp", "Softmax", "Add", "Sub", "Mul", "Div",
    "Clip", "Tanh", "Sqrt", "Neg", "Abs", "LeakyRelu", "HardSigmoid",
}  # fmt: skip
_MAX_DEPTH = 12

# Opens one runtime session on a model and returns its run(feeds) -> outputs.
SessionOpener = Callable[
    [onnx.ModelProto], Callable[[dict[str, npt.NDArray[Any]]], list[npt.NDArray[Any]]]
]


def _constant_value(model: onnx.ModelProto, name: str) -> npt.NDArray[Any] | None:
    for init in model.graph.initializer:
        if init.name == name:
            value: npt.NDArray[Any] = numpy_helper.to_array(init)
            return value
    for node in model.graph.node:
        if name in node.output and node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    found: npt.NDArray[Any] = numpy_helper.to_array(attr.t)
                    return found
    return None


def _batch_shape(shape: npt.NDArray[Any]) -> npt.NDArray[np.int64] | None:
    """(-1, C), (1, -1, C) or (1, K, C) -> (0, -1, C); None for other shapes."""
    dims = [int(d) for d in shape.reshape(-1)]
    if len(dims) == 2 and dims[0] == -1 and dims[1] > 0:
        return np.array([0, -1, dims[1]], np.int64)
    if len(dims) == 3 and dims[0] == 1 and dims[2] > 0:
        return np.array([0, -1, dims[2]], np.int64)
    return None


def unfold_output_batch(model: onnx.ModelProto, outputs: Sequence[str], taken: set[str]) -> int:
    """Rewrite the batch-folding Reshapes that feed `outputs` in place; return how many.

    Walks back from each output through element-wise nodes, along every input that is not
    a constant (a residual branch added to a head has its own Reshape to rewrite).
    """
    producers = {out: node for node in model.graph.node for out in node.output}
    seen: set[str] = set()
    rewritten = 0
    stack = [(name, 0) for name in outputs]
    while stack:
        tensor, depth = stack.pop()
        node = producers.get(tensor)
        if node is None or depth > _MAX_DEPTH or node.name + tensor in seen:
            continue
        seen.add(node.name + tensor)
        if node.op_type == "Reshape":
            value = _constant_value(model, node.input[1])
            new_shape = None if value is None else _batch_shape(value)
            if new_shape is not None:
                name = unique_name("facegate_batch_shape", taken)
                model.graph.initializer.append(numpy_helper.from_array(new_shape, name))
                node.input[1] = name
                rewritten += 1
            continue
        if node.op_type in _ELEMENTWISE:
            stack.extend(
                (name, depth + 1)
                for name in node.input
                if name and _constant_value(model, name) is None
            )
    return rewritten


@dataclass(frozen=True)
class BatchCheck:
    """Whether a batched candidate equals single runs; `reason` says why or why not."""

    passed: bool
    reason: str


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:240]}"


def check_batch(
    candidate: Callable[[], onnx.ModelProto],
    input_name: str,
    sample: npt.NDArray[Any],
    expected_shapes: Sequence[tuple[int, ...]],
    open_session: SessionOpener,
) -> tuple[onnx.ModelProto | None, BatchCheck]:
    """Build the candidate, run a batch and each of its images alone, compare.

    `sample` is a batch of BATCH_CHECK_SIZE inputs; `expected_shapes` the per-image output
    shapes (without the batch axis). Never raises: any failure is the reason it failed.
    """
    size = len(sample)
    try:
        model = candidate()
        run = open_session(model)  # one session for all runs: the real files are 100+ MB
        together = run({input_name: sample})
        singles = [run({input_name: sample[i : i + 1]}) for i in range(size)]
    except Exception as exc:  # any failure of the candidate only means: serve batch 1
        return None, BatchCheck(False, f"the batched form does not run ({_brief(exc)})")
    for outputs, batch in [(together, size), *((s, 1) for s in singles)]:
        shapes = [tuple(o.shape) for o in outputs]
        wanted = [(batch, *shape) for shape in expected_shapes]
        if shapes != wanted:
            return None, BatchCheck(
                False, f"a batch of {batch} gives output shapes {shapes}, expected {wanted}"
            )
    diff = max(
        float(np.max(np.abs(np.asarray(t[i], np.float64) - np.asarray(s[0], np.float64))))
        for i, single in enumerate(singles)
        for t, s in zip(together, single, strict=True)
    )
    if not diff <= BATCH_TOLERANCE:
        return None, BatchCheck(
            False,
            f"a batch of {size} differs from {size} single runs by {diff:.3g} "
            f"(tolerance {BATCH_TOLERANCE:g}): the graph mixes images",
        )
    return model, BatchCheck(
        True, f"a batch of {size} equals {size} single runs (max abs diff {diff:.2e})"
    )
