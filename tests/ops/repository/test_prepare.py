"""The prepare step: stable names, folded normalisation, proven batching, versions, self-check."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from gateway.ops.repository.graph import opset_of
from gateway.ops.repository.prepare import (
    MAX_IR_VERSION,
    MAX_OPSET,
    prepare_detector,
    prepare_recognizer,
    prepare_swapper,
)
from gateway.ops.repository.selfcheck import SelfCheckFailed, self_check
from gateway.ops.repository.synthetic import SyntheticModels
from gateway.triton import spec


def _io(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    return [i.name for i in model.graph.input], [o.name for o in model.graph.output]


def test_detector_gets_stable_names_and_a_proven_batch(tiny_models: SyntheticModels) -> None:
    prepared = prepare_detector(tiny_models.detector)
    assert _io(prepared.model) == (["images"], [t.name for t in spec.DETECTOR_OUTPUTS])
    assert prepared.max_batch_size == 8
    assert any("batch check passed" in note for note in prepared.notes)
    assert self_check(tiny_models.detector, prepared).max_abs_diff <= 1e-3


def _batch_mixing_detector(upstream: onnx.ModelProto) -> onnx.ModelProto:
    """The tiny detector plus a hidden hard-coded batch-1 Reshape (as insightface #2879 met).

    The whole input is flattened to (1, -1) and its mean added to the stride-8 scores: with
    batch 1 nothing changes in shape, with a batch the mean mixes images.
    """
    model = onnx.ModelProto()
    model.CopyFrom(upstream)
    score_8 = model.graph.output[0].name
    producer = next(n for n in model.graph.node if score_8 in n.output)
    reshape_in = producer.input[0]
    model.graph.initializer.extend(
        [numpy_helper.from_array(np.array([1, -1], np.int64), "flat_shape")]
    )
    model.graph.node.extend(
        [
            helper.make_node("Reshape", ["input.1", "flat_shape"], ["flat"], name="flat"),
            helper.make_node("ReduceMean", ["flat"], ["global_mean"], name="gmean", keepdims=0),
            helper.make_node("Add", [reshape_in, "global_mean"], ["mixed"], name="mix"),
        ]
    )
    producer.input[0] = "mixed"
    sorted_nodes = [n for n in model.graph.node if n.name in ("flat", "gmean", "mix")]
    others = [n for n in model.graph.node if n.name not in ("flat", "gmean", "mix")]
    index = others.index(producer)
    del model.graph.node[:]
    model.graph.node.extend(others[:index] + sorted_nodes + others[index:])
    onnx.checker.check_model(model)
    return model


def test_detector_falls_back_to_unbatched_when_the_batch_check_fails(
    tiny_models: SyntheticModels,
) -> None:
    upstream = _batch_mixing_detector(tiny_models.detector)
    prepared = prepare_detector(upstream)
    assert prepared.max_batch_size == 0
    assert any("batch check failed" in note for note in prepared.notes)
    first = prepared.model.graph.input[0].type.tensor_type.shape.dim[0]
    assert first.dim_value == 1
    # Unbatched outputs still carry the leading axis, so clients see (1, anchors, width).
    assert self_check(upstream, prepared).max_abs_diff <= 1e-3


def test_recognizer_contract(tiny_models: SyntheticModels) -> None:
    prepared = prepare_recognizer(tiny_models.recognizer)
    assert _io(prepared.model) == (["faces"], ["embedding"])
    assert prepared.max_batch_size >= 32
    assert self_check(tiny_models.recognizer, prepared).max_abs_diff <= 1e-3


def test_swapper_folds_emap_and_speaks_uint8(tiny_models: SyntheticModels) -> None:
    prepared = prepare_swapper(tiny_models.swapper)
    assert _io(prepared.model) == (["target", "source"], ["swapped"])
    elem = prepared.model.graph.output[0].type.tensor_type.elem_type
    assert elem == onnx.TensorProto.UINT8
    assert self_check(tiny_models.swapper, prepared).max_abs_diff <= 1


@pytest.mark.parametrize("role", ["detector", "recognizer", "swapper"])
def test_versions_accepted_by_ngc_onnxruntime(tiny_models: SyntheticModels, role: str) -> None:
    preparer = {
        "detector": prepare_detector,
        "recognizer": prepare_recognizer,
        "swapper": prepare_swapper,
    }[role]
    upstream = onnx.ModelProto()
    upstream.CopyFrom(getattr(tiny_models, role))
    upstream.ir_version = 10  # as a current onnx would write it
    prepared = preparer(upstream)
    assert prepared.model.ir_version <= MAX_IR_VERSION
    assert opset_of(prepared.model) <= MAX_OPSET


def test_self_check_catches_a_wrong_model(tiny_models: SyntheticModels) -> None:
    prepared = prepare_recognizer(tiny_models.recognizer)
    # Feed the wrong upstream: the self-check must notice.
    other = onnx.ModelProto()
    other.CopyFrom(tiny_models.recognizer)
    fc = next(t for t in other.graph.initializer if t.name.endswith("fc_2") or "fc" in t.name)
    fc.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(fc) * 1.5, fc.name))
    with pytest.raises(SelfCheckFailed):
        self_check(other, prepared)
