"""Small helpers for building ONNX graphs with onnx.helper (shared by synthetic and prepare)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclass
class GraphBuilder:
    """Accumulates nodes and initializers under unique names with a common prefix.

    `taken` holds names already used in the graph being extended (see naming.free_names):
    new names skip them and are added to it, so builders sharing one set never clash.
    """

    prefix: str
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)
    _count: int = 0

    def name(self, hint: str) -> str:
        while True:
            self._count += 1
            candidate = f"{self.prefix}{hint}_{self._count}"
            if candidate not in self.taken:
                self.taken.add(candidate)
                return candidate

    def const(
        self, value: npt.ArrayLike, hint: str = "const", dtype: npt.DTypeLike = np.float32
    ) -> str:
        array: npt.NDArray[Any] = np.asarray(value, dtype=dtype)
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def op_into(self, op_type: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.nodes.append(
            helper.make_node(op_type, inputs, [output], name=self.name(op_type.lower()), **attrs)
        )
        return output


def opset_of(model: onnx.ModelProto) -> int:
    """The default-domain opset version a model was written for."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ValueError("model has no default-domain opset import")


def clip(builder: GraphBuilder, x: str, low: float, high: float, opset: int) -> str:
    """Clip whose bounds moved from attributes to inputs in opset 11."""
    if opset >= 11:
        return builder.op(
            "Clip", [x, builder.const(low, "clip_lo"), builder.const(high, "clip_hi")]
        )
    return builder.op("Clip", [x], min=low, max=high)


def value_info(name: str, elem_type: int, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, shape)


FLOAT = TensorProto.FLOAT
UINT8 = TensorProto.UINT8
INT64 = TensorProto.INT64
