"""NVIDIA perf_analyzer against the embedded Triton: the documented recipe (docs/CLIENT.md) runs.

perf_analyzer comes with the tritonclient wheel and needs libb64-0d (apt) and
nvidia-cuda-runtime-cu12 (pip). Without them this test skips, unless
FACEGATE_REQUIRE_PERF_ANALYZER=1 (CI) makes the missing pieces a failure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from gateway.ops.perf import (
    ModelKind,
    PerfRun,
    faces_input_data,
    parse_summary,
    perf_command,
    run_perf,
)
from gateway.ops.servers.triton import EmbeddedTriton

from ..images import encode, square_image

pytestmark = pytest.mark.integration
BINARY = Path("/opt/perf_analyzer")


def test_command_follows_the_recipe() -> None:
    run = PerfRun("detector", url="triton:8001", batch_size=8, shared_memory="system")
    command = perf_command(run, binary=BINARY)
    assert command[command.index("--shape") + 1] == "images:640,640,3"
    assert command[command.index("-b") + 1] == "8"
    assert command[command.index("--shared-memory") + 1] == "system"
    assert command[command.index("--measurement-mode") + 1] == "count_windows"
    assert {"-i", "grpc", "-u", "triton:8001"} <= set(command)
    unbatched = perf_command(PerfRun("detector", unbatched=True), binary=BINARY)
    assert unbatched[unbatched.index("--shape") + 1] == "images:1,640,640,3"
    faces = perf_command(PerfRun("recognizer", batch_size=32), binary=BINARY)
    assert faces[faces.index("--shape") + 1] == "faces:112,112,3"
    assert "--shared-memory" not in faces


@pytest.mark.parametrize(
    ("kind", "batch_size", "shared_memory", "concurrency"),
    [
        ("detector", 1, "none", [1]),
        ("detector", 2, "system", [1]),
        ("recognizer", 8, "system", [1, 2]),
    ],
    ids=["detector-wire", "detector-shm", "recognizer-shm"],
)
def test_perf_analyzer_measures_the_embedded_triton(
    perf_analyzer_ready: None,
    triton: EmbeddedTriton,
    kind: ModelKind,
    batch_size: int,
    shared_memory: Literal["none", "system"],
    concurrency: list[int],
) -> None:
    run = PerfRun(
        kind,
        url=triton.grpc_url,
        batch_size=batch_size,
        concurrency=f"{concurrency[0]}:{concurrency[-1]}",
        shared_memory=shared_memory,
        measurement_request_count=3,
        max_trials=3,  # stability is judged over the last 3 windows
        # A short run on a shared CI machine is never "stable"; any measurement will do.
        stability_percentage=1000,
    )
    code, output = run_perf(run, timeout_s=120)
    assert code == 0, output
    points = parse_summary(output)
    assert [p.concurrency for p in points] == concurrency, output
    assert all(p.infer_per_s > 0 and p.latency_us > 0 for p in points)


def test_perf_analyzer_measures_the_faces_model(
    perf_analyzer_ready: None, triton: EmbeddedTriton, tmp_path: Path
) -> None:
    image = encode(square_image(640, 480, [(240, 128, 64)]), ".jpg")
    run = PerfRun(
        "faces",
        url=triton.grpc_url,
        concurrency="1:2",
        measurement_request_count=3,
        max_trials=3,
        stability_percentage=1000,
        input_data=str(faces_input_data(image, tmp_path)),
        det_sizes="640",
    )
    code, output = run_perf(run, timeout_s=120)
    assert code == 0, output
    points = parse_summary(output)
    assert [p.concurrency for p in points] == [1, 2], output
    assert all(p.infer_per_s > 0 and p.latency_us > 0 for p in points)


def test_perf_analyzer_counts_a_refused_image_as_an_error(
    perf_analyzer_ready: None, triton: EmbeddedTriton, tmp_path: Path
) -> None:
    run = PerfRun(
        "faces",
        url=triton.grpc_url,
        concurrency="1",
        measurement_request_count=3,
        max_trials=3,
        stability_percentage=1000,
        input_data=str(faces_input_data(b"not an image", tmp_path)),
    )
    code, output = run_perf(run, timeout_s=120)
    assert code != 0 and "not a recognised image" in output, output


def test_faces_command_needs_an_image() -> None:
    with pytest.raises(ValueError, match="needs an image"):
        perf_command(PerfRun("faces"), Path("perf_analyzer"))
    command = perf_command(
        PerfRun("faces", input_data="in.json", det_sizes="128,640"), Path("perf_analyzer")
    )
    assert command[command.index("--shape") + 1] == "IMAGE:1"
    assert command[command.index("--input-data") + 1] == "in.json"
    assert command[command.index("--request-parameter") + 1] == "det_sizes:128,640:string"
