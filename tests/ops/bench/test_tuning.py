"""The tuned in-process settings: session options, thread candidates, the search."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from gateway.ops.bench.tuning import (
    ORT_DEFAULTS,
    SPIN_OFF_ENTRIES,
    OrtSettings,
    search_threads,
    thread_candidates,
)


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 8, 64])
def test_thread_candidates_span_one_to_every_physical_core(cores: int) -> None:
    candidates = thread_candidates(cores)
    assert candidates == tuple(sorted(set(candidates)))
    assert candidates[0] == 1 and candidates[-1] == cores
    assert all(1 <= n <= cores for n in candidates)


def test_defaults_leave_onnxruntime_alone() -> None:
    options = ORT_DEFAULTS.session_options()
    assert options.intra_op_num_threads == ort.SessionOptions().intra_op_num_threads
    for key, _ in SPIN_OFF_ENTRIES:
        with pytest.raises(Exception):  # noqa: B017 (onnxruntime raises a bare Fail)
            options.get_session_config_entry(key)


def test_tuned_options_turn_spinning_off_and_run_a_model() -> None:
    options = OrtSettings(intra_op_threads=1, spinning=False).session_options()
    assert options.intra_op_num_threads == 1
    for key, value in SPIN_OFF_ENTRIES:
        assert options.get_session_config_entry(key) == value
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    (out,) = session.run(None, {"x": np.array([-1.0, 2.0], np.float32)})
    assert out.tolist() == [0.0, 2.0]


class FakeClock:
    """A clock that only moves when a fake call says how long it took."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _calls(
    clock: FakeClock, cost_s: dict[int, float], made: list[int]
) -> Callable[[int], Callable[[], object]]:
    def make(threads: int) -> Callable[[], object]:
        made.append(threads)

        def call() -> None:
            clock.now += cost_s[threads]

        return call

    return make


def test_search_keeps_the_fastest_candidate_and_builds_each_once() -> None:
    clock, made = FakeClock(), list[int]()
    cost = {1: 0.30, 2: 0.20, 4: 0.25}
    found = search_threads("call", _calls(clock, cost, made), (1, 2, 4), 2, 3, clock)
    assert found.best == 2 and sorted(made) == [1, 2, 4]
    assert found.median_ms == pytest.approx({1: 300.0, 2: 200.0, 4: 250.0})
    assert "2 (median per call" in found.describe()


def test_search_breaks_ties_toward_fewer_threads() -> None:
    clock, made = FakeClock(), list[int]()
    found = search_threads("call", _calls(clock, {1: 0.1, 2: 0.1}, made), (2, 1), 1, 1, clock)
    assert found.best == 1
