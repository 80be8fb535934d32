"""NVIDIA perf_analyzer against the detector, the recognizer or the in-server faces model.

perf_analyzer ships in the tritonclient wheel (venv's bin/perf_analyzer; the `perf-analyzer`
name on PyPI is a placeholder). It needs Debian's libb64-0d and libcudart.so.12, which the
PyPI wheel nvidia-cuda-runtime-cu12 provides: perf_environment() puts its folder on
LD_LIBRARY_PATH. count_windows measurement keeps runs short and comparable on a noisy host.

    facegate perf detector --url localhost:8001 -b 8 --concurrency 1:4
    facegate perf recognizer -b 32 --shared-memory system
    facegate perf faces --image photo.jpg --det-sizes 640 --concurrency 1:16:3

(the command line is gateway/ops/commands/perf.py).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.triton import spec

ModelKind = Literal["detector", "recognizer", "faces"]
_INPUTS: dict[ModelKind, spec.TensorSpec] = {
    "detector": spec.DETECTOR_INPUT,
    "recognizer": spec.RECOGNIZER_INPUT,
    "faces": spec.FACES_INPUT,
}
_SUMMARY = re.compile(
    r"Concurrency: (\d+), throughput: ([\d.]+) infer/sec, latency (\d+) usec", re.MULTILINE
)


class PerfAnalyzerMissing(Exception):
    """perf_analyzer or one of its libraries is missing; the message says what to install."""


@dataclass(frozen=True)
class PerfRun:
    """One perf_analyzer sweep over a concurrency range.

    `concurrency` is perf_analyzer's start:end[:step]; `unbatched` is for a detector served
    with max_batch_size 0 (input [1, 640, 640, 3], batch size must be 1); `model_name`
    defaults to the kind's Triton name.
    """

    kind: ModelKind
    url: str = "localhost:8001"
    batch_size: int = 1
    concurrency: str = "1:4"
    shared_memory: Literal["none", "system"] = "none"
    measurement_request_count: int = 50
    max_trials: int = 10
    stability_percentage: float = 10.0
    unbatched: bool = False
    model_name: str = ""
    # faces only: perf_analyzer's --input-data JSON holding the encoded image (faces_input_data)
    # and the det_sizes request parameter ('' leaves the model's default).
    input_data: str = ""
    det_sizes: str = ""


@dataclass(frozen=True)
class PerfPoint:
    """One line of perf_analyzer's summary: inferences (images or faces) per second."""

    concurrency: int
    infer_per_s: float
    latency_us: int


def find_perf_analyzer() -> Path:
    """The perf_analyzer binary: next to this interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "perf_analyzer"
    found = beside if beside.exists() else shutil.which("perf_analyzer")
    if not found:
        raise PerfAnalyzerMissing(
            "no perf_analyzer: pip install -c constraints.txt 'tritonclient[grpc]==2.51.0' "
            "(the wheel ships bin/perf_analyzer)"
        )
    return Path(found)


def cuda_runtime_lib_dir() -> Path:
    """The lib folder of the nvidia-cuda-runtime-cu12 wheel (libcudart.so.12)."""
    found = importlib.util.find_spec("nvidia.cuda_runtime")
    locations = list(found.submodule_search_locations or []) if found else []
    for location in locations:
        if (Path(location) / "lib" / "libcudart.so.12").exists():
            return Path(location) / "lib"
    raise PerfAnalyzerMissing(
        "perf_analyzer needs libcudart.so.12: pip install -c constraints.txt nvidia-cuda-runtime-cu12"
    )


def perf_environment() -> dict[str, str]:
    """This environment with libcudart.so.12's folder first on LD_LIBRARY_PATH."""
    env = os.environ.copy()
    dirs = [str(cuda_runtime_lib_dir()), env.get("LD_LIBRARY_PATH", "")]
    env["LD_LIBRARY_PATH"] = ":".join(d for d in dirs if d)
    return env


def check_libraries(binary: Path, env: dict[str, str]) -> None:
    """Raise PerfAnalyzerMissing naming the packages for any library ldd cannot find."""
    ldd = subprocess.run(["ldd", str(binary)], env=env, capture_output=True, text=True)
    missing = [line.split()[0] for line in ldd.stdout.splitlines() if "not found" in line]
    if missing:
        hints = {
            "libb64.so.0d": "apt-get install libb64-0d",
            "libcudart.so.12": "pip install nvidia-cuda-runtime-cu12",
        }
        advice = "; ".join(hints.get(lib, lib) for lib in missing)
        raise PerfAnalyzerMissing(f"perf_analyzer lacks {', '.join(missing)}: {advice}")


def perf_command(run: PerfRun, binary: Path | None = None) -> list[str]:
    """perf_analyzer's arguments for a run (gRPC, count_windows)."""
    tensor = _INPUTS[run.kind]
    shape = (1, *tensor.shape) if run.unbatched else tensor.shape
    if run.unbatched and run.batch_size != 1:
        raise ValueError("an unbatched model takes batch size 1")
    command = [
        str(binary or find_perf_analyzer()),
        "-m",
        run.model_name or run.kind,
        "-u",
        run.url,
        "-i",
        "grpc",
        "--shape",
        f"{tensor.name}:{','.join(str(d) for d in shape)}",
        "-b",
        str(run.batch_size),
        "--concurrency-range",
        run.concurrency,
        "--measurement-mode",
        "count_windows",
        "--measurement-request-count",
        str(run.measurement_request_count),
        "--max-trials",
        str(run.max_trials),
        "--stability-percentage",
        str(run.stability_percentage),
    ]
    if run.kind == "faces":
        if not run.input_data:
            raise ValueError("the faces model needs an image: input_data (faces_input_data)")
        command += ["--input-data", run.input_data]
        if run.det_sizes:
            command += ["--request-parameter", f"det_sizes:{run.det_sizes}:string"]
    if run.shared_memory != "none":
        command += ["--shared-memory", run.shared_memory]
        if run.kind == "detector":
            # The detector's output dims are variable (any frame size): perf_analyzer then
            # needs the region size of the largest output at the frame size it sends.
            largest = max(4 * t.shape[0] * t.shape[1] for t in spec.DETECTOR_OUTPUTS)
            command += ["--output-shared-memory-size", str(largest * run.batch_size)]
    return command


def faces_input_data(image: bytes, folder: Path) -> Path:
    """perf_analyzer's --input-data JSON for the faces model: `image` as the one IMAGE element."""
    path = folder / "faces-input.json"
    # b64 holds the tensor as it travels: a BYTES element is its uint32 LE length, then itself.
    encoded = base64.b64encode(len(image).to_bytes(4, "little") + image).decode("ascii")
    data = {"data": [{spec.FACES_INPUT.name: {"b64": encoded}}]}
    path.write_text(json.dumps(data))
    return path


def parse_summary(output: str) -> list[PerfPoint]:
    """The 'Concurrency: N, throughput: X infer/sec, latency Y usec' lines of a run."""
    return [PerfPoint(int(c), float(t), int(latency)) for c, t, latency in _SUMMARY.findall(output)]


def run_perf(run: PerfRun, timeout_s: float = 600.0) -> tuple[int, str]:
    """Run perf_analyzer; its exit code and its output (stdout and stderr)."""
    binary = find_perf_analyzer()
    env = perf_environment()
    check_libraries(binary, env)
    done = subprocess.run(
        perf_command(run, binary),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout_s,
    )
    return done.returncode, done.stdout
