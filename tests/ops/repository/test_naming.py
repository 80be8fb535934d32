"""Renaming is collision-proof: served names are freed everywhere, new names never clash."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from gateway.ops.repository.graph import FLOAT, GraphBuilder, value_info
from gateway.ops.repository.naming import free_names, tensor_names, unique_name


def _model_with_subgraph() -> onnx.ModelProto:
    """x -> If(cond){ then: Identity(images) ; else: Neg(images) } -> score_8, where `images`
    is an outer tensor read inside both branches."""
    then = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["t"])], "then", [], [value_info("t", FLOAT, [2])]
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["images"], ["e"])], "else", [], [value_info("e", FLOAT, [2])]
    )
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["images"]),
            helper.make_node("If", ["cond"], ["score_8"], then_branch=then, else_branch=other),
        ],
        "g",
        [value_info("x", FLOAT, [2])],
        [value_info("score_8", FLOAT, [2])],
        [numpy_helper.from_array(np.array(True), "cond")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_free_names_renames_every_use_including_subgraphs() -> None:
    model = _model_with_subgraph()
    taken = free_names(model, ["images", "score_8"])
    names = tensor_names(model.graph)
    assert "images" not in names and "score_8" not in names
    assert {"upstream_images", "upstream_score_8"} <= names
    assert {"images", "score_8"} <= taken  # reserved for the served graph
    onnx.checker.check_model(model)
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": np.array([-1.0, 2.0], np.float32)})
    assert out.tolist() == [0.0, 2.0]  # Relu then Identity: the renamed graph still computes


def test_renamed_names_skip_names_already_taken() -> None:
    model = _model_with_subgraph()
    model.graph.node[0].output[0] = "upstream_images"  # the natural new name is taken
    for node in model.graph.node[1].attribute:
        node.g.node[0].input[0] = "upstream_images"
    model.graph.output[0].name = "images"
    model.graph.node[1].output[0] = "images"
    taken = free_names(model, ["images"])
    assert "upstream_images_2" in tensor_names(model.graph)
    assert unique_name("upstream_images", taken) == "upstream_images_3"


def test_builder_names_skip_taken_names() -> None:
    taken = {"facegate_pre_cast_1", "facegate_pre_cast_2"}
    builder = GraphBuilder("facegate_pre_", taken=taken)
    name = builder.op("Cast", ["x"], to=FLOAT)
    assert name == "facegate_pre_cast_3" and name in taken
