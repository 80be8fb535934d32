"""Tensor names in an ONNX graph: collect them all, rename some, make new ones that never clash.

The prepare step writes the served names (gateway.triton.spec) and its own helper tensors
into an upstream graph whose names it does not control: a re-export may already call its
outputs `score_8` or its input `images`. Upstream tensors that hold a name the served
graph needs are renamed first, everywhere they appear (nested subgraphs included).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import onnx


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def tensor_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name used in `graph` and its subgraphs (inputs, outputs, nodes, constants)."""
    names = {v.name for v in (*graph.input, *graph.output, *graph.value_info)}
    names.update(t.name for t in graph.initializer)
    names.update(t.values.name for t in graph.sparse_initializer)
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
        for sub in _subgraphs(node):
            names |= tensor_names(sub)
    names.discard("")
    return names


def unique_name(hint: str, taken: set[str]) -> str:
    """`hint`, or `hint_2`, `hint_3`, ... : the first not in `taken`, which then holds it."""
    name, count = hint, 1
    while name in taken:
        count += 1
        name = f"{hint}_{count}"
    taken.add(name)
    return name


def rename_tensors(graph: onnx.GraphProto, renames: Mapping[str, str]) -> None:
    """Apply `renames` (old -> new) to every occurrence in `graph` and its subgraphs."""
    for value in (*graph.input, *graph.output, *graph.value_info):
        value.name = renames.get(value.name, value.name)
    for tensor in graph.initializer:
        tensor.name = renames.get(tensor.name, tensor.name)
    for sparse in graph.sparse_initializer:
        sparse.values.name = renames.get(sparse.values.name, sparse.values.name)
    for node in graph.node:
        for index, name in enumerate(node.input):
            node.input[index] = renames.get(name, name)
        for index, name in enumerate(node.output):
            node.output[index] = renames.get(name, name)
        for sub in _subgraphs(node):
            rename_tensors(sub, renames)


def free_names(model: onnx.ModelProto, needed: Iterable[str]) -> set[str]:
    """Rename upstream tensors that hold any of `needed`; return every name now taken.

    The returned set includes `needed`, so names made from it with unique_name clash with
    neither the upstream graph nor the served names.
    """
    taken = tensor_names(model.graph)
    wanted = set(needed)
    clashes = sorted(taken & wanted)
    taken |= wanted
    renames = {old: unique_name(f"upstream_{old}", taken) for old in clashes}
    if renames:
        rename_tensors(model.graph, renames)
    return taken
