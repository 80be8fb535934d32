"""The install's choice of onnxruntime execution provider per model: CPU or OpenVINO (FP32).

OpenVINO's onnxruntime (PyPI onnxruntime-openvino) is another build of the same `onnxruntime`
module as PyPI onnxruntime: installed side by side in one environment, the two wheels write
the same files and whichever came last wins, and insightface (the tests' oracle) requires
the `onnxruntime` distribution by name, so pip would bring it back. scripts/bootstrap.sh
therefore installs OpenVINO's build into a folder of its own, OPENVINO_FOLDER under the
venv, outside site-packages; only processes that ask for it put it first on sys.path: a
Triton stub whose config says execution_provider "openvino", the probe below, and the
bench's insightface-with-OpenVINO side.

For each model the install runs the prepared model.onnx on both providers, each in a probe
process of its own (runner.py's probe: the same session options as the served stub), on
the same random inputs of the served contract. OpenVINO is chosen when its outputs equal
the CPU provider's within the self-check's tolerances and its median time is below
OPENVINO_MARGIN of the CPU provider's. Anything else (OpenVINO missing, a load or run
error, different outputs, slower) keeps the CPU provider and says why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnx

from gateway.ops.repository import runner
from gateway.ops.repository.prepare import graph_inputs
from gateway.ops.repository.selfcheck import FLOAT_TOLERANCE, PIXEL_TOLERANCE
from gateway.triton import spec

ProviderMode = Literal["auto", "cpu", "openvino"]
PROVIDER_MODES: tuple[ProviderMode, ...] = ("auto", "cpu", "openvino")
# Where scripts/bootstrap.sh puts OpenVINO's onnxruntime: beside the venv's site-packages.
OPENVINO_FOLDER = Path(sys.prefix) / "lib" / "facegate-openvino"
# OpenVINO must beat the CPU provider by 5%: closer than that, the choice would follow the
# noise of a few timed runs (and the CPU provider is the one everything else is tested on).
OPENVINO_MARGIN = 0.95
PROBE_RUNS = 7
# Frame sides a variable-size input (the detector's) is checked at; timed at the last one.
FRAME_SIZES_PX = (128, spec.DETECTOR_INPUT_SIZE_PX)
# A batched model is also timed on a full batch (its max_batch_size, at most this): batches
# are what it serves under load, and a provider can win there and tie at batch 1 (the
# recognizer: OpenVINO 1.01x at 1 face, 0.93x at 32 on this 2-core Xeon).
PROBE_MAX_BATCH = 32
PROBE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class BatchTimes:
    """Median ms of a full batch of `batch` on each provider."""

    batch: int
    cpu_ms: float
    openvino_ms: float


@dataclass(frozen=True)
class ProviderChoice:
    """The provider one model's embedded runner (and the NGC CPU config) uses, and why.

    cpu_ms/openvino_ms: median ms of one call on the served contract's largest check input
    at batch 1 (None where not measured); batched: the same on a full batch of a batched
    model (None where not timed); max_abs_diff: OpenVINO's outputs
    against the CPU provider's (scaled like the self-check; None where not compared).
    """

    provider: Literal["cpu", "openvino"]
    reason: str
    cpu_ms: float | None = None
    openvino_ms: float | None = None
    max_abs_diff: float | None = None
    tolerance: float | None = None
    batched: BatchTimes | None = None

    def describe(self) -> str:
        """One line for the install report."""
        timing = ""
        if self.cpu_ms is not None and self.openvino_ms is not None:
            timing = (
                f"; CPU {self.cpu_ms:.3g} ms, OpenVINO {self.openvino_ms:.3g} ms "
                f"({self.openvino_ms / self.cpu_ms:.2f}x)"
            )
        if self.batched is not None:
            b = self.batched
            timing += (
                f"; batch of {b.batch}: CPU {b.cpu_ms:.3g} ms, OpenVINO "
                f"{b.openvino_ms:.3g} ms ({b.openvino_ms / b.cpu_ms:.2f}x)"
            )
        equal = ""
        if self.max_abs_diff is not None:
            equal = f"; outputs differ by {self.max_abs_diff:.3g} (tolerance {self.tolerance:g})"
        return f"execution provider: {self.provider} ({self.reason}{timing}{equal})"

    def record(self) -> dict[str, object]:
        """The MODELS.json fields."""
        return {
            "execution_provider": self.provider,
            "execution_provider_reason": self.reason,
            "execution_provider_cpu_ms": self.cpu_ms,
            "execution_provider_openvino_ms": self.openvino_ms,
            "execution_provider_max_abs_diff": self.max_abs_diff,
            "execution_provider_batch": self.batched.batch if self.batched else None,
            "execution_provider_cpu_batch_ms": self.batched.cpu_ms if self.batched else None,
            "execution_provider_openvino_batch_ms": (
                self.batched.openvino_ms if self.batched else None
            ),
        }


def pick_provider(
    cpu_ms: float,
    openvino_ms: float,
    diff: float,
    tolerance: float,
    mode: ProviderMode,
    batched: BatchTimes | None = None,
) -> ProviderChoice:
    """The choice once both sides ran: equal answers first, then speed (unless forced).

    OpenVINO is kept when it is faster by the margin at batch 1, or on a full batch (what a
    batched model serves under load) while no slower than the margin allows at batch 1.
    """
    measured: dict[str, Any] = {"cpu_ms": cpu_ms, "openvino_ms": openvino_ms, "batched": batched}
    compared: dict[str, Any] = {"max_abs_diff": diff, "tolerance": tolerance}
    if not np.isfinite(diff) or diff > tolerance:
        return ProviderChoice("cpu", "OpenVINO's outputs differ", **measured, **compared)
    if mode == "openvino":
        return ProviderChoice("openvino", "asked for; outputs equal", **measured, **compared)
    if openvino_ms < OPENVINO_MARGIN * cpu_ms:
        return ProviderChoice("openvino", "faster here, outputs equal", **measured, **compared)
    if (
        batched is not None
        and batched.openvino_ms < OPENVINO_MARGIN * batched.cpu_ms
        and openvino_ms * OPENVINO_MARGIN <= cpu_ms
    ):
        return ProviderChoice(
            "openvino",
            f"faster here on a batch of {batched.batch}, as fast on one; outputs equal",
            **measured,
            **compared,
        )
    return ProviderChoice(
        "cpu", f"OpenVINO not {1 - OPENVINO_MARGIN:.0%} faster here", **measured, **compared
    )


def probe_feeds(
    model: onnx.ModelProto, seed: int = 0, batch: int = 1
) -> list[dict[str, npt.NDArray[Any]]]:
    """Random inputs of the prepared model's contract: one set per frame size.

    uint8 inputs get pixels; float inputs (the swapper's source embedding) a unit vector.
    A symbolic batch axis gets `batch`; symbolic frame sides each size of FRAME_SIZES_PX.
    """
    rng = np.random.default_rng(seed)
    inputs = graph_inputs(model)
    dims = {
        i.name: [
            d.dim_value if d.HasField("dim_value") else -1 for d in i.type.tensor_type.shape.dim
        ]
        for i in inputs
    }
    variable = any(-1 in shape[1:] for shape in dims.values())
    feed_sets = []
    for size in FRAME_SIZES_PX if variable else (0,):
        feeds: dict[str, npt.NDArray[Any]] = {}
        for tensor in inputs:
            shape = [
                batch if k == 0 and d == -1 else size if d == -1 else d
                for k, d in enumerate(dims[tensor.name])
            ]
            if tensor.type.tensor_type.elem_type == onnx.TensorProto.UINT8:
                feeds[tensor.name] = rng.integers(0, 256, shape, dtype=np.uint8)
            else:
                vector = rng.standard_normal(shape).astype(np.float32)
                feeds[tensor.name] = vector / np.linalg.norm(vector, axis=-1, keepdims=True)
        feed_sets.append(feeds)
    return feed_sets


def output_difference(
    cpu: Mapping[str, npt.NDArray[Any]], openvino: Mapping[str, npt.NDArray[Any]]
) -> tuple[float, float]:
    """Max difference over all outputs, scaled as the self-check does, and its tolerance.

    Pixels (uint8) compare in levels against PIXEL_TOLERANCE; floats against FLOAT_TOLERANCE
    relative to max(1, the largest magnitude), as the recognizer's self-check does.
    """
    if set(cpu) != set(openvino):
        return float("inf"), FLOAT_TOLERANCE
    worst = 0.0
    tolerance = FLOAT_TOLERANCE
    for key, expected in cpu.items():
        actual = openvino[key]
        if actual.shape != expected.shape:
            return float("inf"), tolerance
        if expected.dtype == np.uint8:
            tolerance = PIXEL_TOLERANCE
            diff = float(
                np.max(np.abs(actual.astype(np.int16) - expected.astype(np.int16)), initial=0)
            )
        else:
            scale = max(1.0, float(np.max(np.abs(expected), initial=0)))
            diff = float(np.max(np.abs(actual - expected), initial=0)) / scale
        worst = max(worst, diff)
    return worst, tolerance


@dataclass(frozen=True)
class ProbeResult:
    """What runner.py's probe saw on one provider."""

    providers: tuple[str, ...]
    # Per feed set, in order.
    medians_ms: tuple[float, ...]
    outputs: dict[str, npt.NDArray[Any]]
    failure: str


def run_probe(
    model_path: Path,
    params: Mapping[str, str],
    feed_sets: list[dict[str, npt.NDArray[Any]]],
    openvino_folder: Path,
) -> ProbeResult:
    """runner.py's probe in a process of its own on `model_path` with these config parameters."""
    with tempfile.TemporaryDirectory(prefix="facegate-probe-") as scratch:
        folder = Path(scratch)
        os.symlink(model_path.resolve(), folder / runner.MODEL_FILE)
        (folder / "params.json").write_text(
            json.dumps({**params, "openvino_path": str(openvino_folder)})
        )
        np.savez(
            folder / "feeds.npz",
            **{
                f"{index}/{name}": array
                for index, feeds in enumerate(feed_sets)
                for name, array in feeds.items()
            },
        )
        command = [sys.executable, str(Path(runner.__file__)), "probe", scratch, str(PROBE_RUNS)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            return ProbeResult((), (), {}, f"no answer in {PROBE_TIMEOUT_S:.0f} s")
        report_path = folder / "probe.json"
        if not report_path.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [
                f"exit {done.returncode}"
            ]
            return ProbeResult((), (), {}, f"the probe died: {tail[0][-300:]}")
        report = json.loads(report_path.read_text())
        failure = report.get("refusal") or report.get("error") or ""
        if failure:
            return ProbeResult(tuple(report.get("providers", ())), (), {}, failure)
        with np.load(folder / "outputs.npz") as archive:
            outputs = {key: archive[key] for key in archive.files}
        medians = tuple(float(m) for m in report["median_ms"])
        return ProbeResult(tuple(report["providers"]), medians, outputs, "")


def choose_provider(
    name: str,
    model_path: Path,
    model: onnx.ModelProto,
    params: Mapping[str, str],
    mode: ProviderMode,
    openvino_folder: Path = OPENVINO_FOLDER,
    max_batch: int = 0,
) -> ProviderChoice:
    """Run the A/B for one installed model.onnx (params: its embedded session's parameters).

    Timed at batch 1 on each check input, and on a full batch (max_batch, capped at
    PROBE_MAX_BATCH) of the largest one when the model is batched.
    """
    del name  # the same rule for every model; the name is the caller's for its log
    if mode == "cpu":
        return ProviderChoice("cpu", "asked for")
    if not (openvino_folder / "onnxruntime" / "__init__.py").is_file():
        return ProviderChoice(
            "cpu",
            f"OpenVINO's onnxruntime is not installed in {openvino_folder} (scripts/bootstrap.sh)",
        )
    feed_sets = probe_feeds(model)
    singles = len(feed_sets)
    batch = min(max_batch, PROBE_MAX_BATCH)
    if batch > 1:
        feed_sets.append(probe_feeds(model, batch=batch)[-1])
    cpu = run_probe(model_path, {**params, "execution_provider": "cpu"}, feed_sets, openvino_folder)
    if cpu.failure:
        return ProviderChoice("cpu", f"the CPU provider's probe failed: {cpu.failure}")
    openvino = run_probe(
        model_path, {**params, "execution_provider": "openvino"}, feed_sets, openvino_folder
    )
    if openvino.failure:
        return ProviderChoice(
            "cpu", f"OpenVINO failed: {openvino.failure}", cpu_ms=cpu.medians_ms[singles - 1]
        )
    if not openvino.providers or openvino.providers[0] != runner.OPENVINO:
        return ProviderChoice(
            "cpu",
            f"OpenVINO's session ran on {openvino.providers}",
            cpu_ms=cpu.medians_ms[singles - 1],
        )
    diff, tolerance = output_difference(cpu.outputs, openvino.outputs)
    batched = (
        BatchTimes(batch, cpu.medians_ms[singles], openvino.medians_ms[singles])
        if batch > 1
        else None
    )
    return pick_provider(
        cpu.medians_ms[singles - 1],
        openvino.medians_ms[singles - 1],
        diff,
        tolerance,
        mode,
        batched,
    )
