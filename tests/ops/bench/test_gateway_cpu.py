"""`facegate bench --gateway-cpu`: the real app in front of a null backend finds the planted faces."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ops.bench.gateway_cpu import format_gateway_cpu, gateway_images, measure_gateway_cpu
from gateway.ops.bench.images import FACE_LAYOUT, sample_photo
from gateway.triton import spec

# The session's tiny repository is installed with OpenVINO probes: tens of seconds under load.
pytestmark = pytest.mark.slow


def test_the_null_backend_serves_the_recorded_detections_through_the_app(
    tiny_repository: Path,
) -> None:
    images = gateway_images(sample_photo())
    assert [(i.width, i.height) for i in images] == [(640, 480), (1920, 1080)]
    detector = tiny_repository / spec.DETECTOR / "1" / "model.onnx"
    results = measure_gateway_cpu(detector, images, calls=2, warmup=1)
    for result in results:
        # The recorded detector outputs go through the gateway's own decode, NMS and alignment.
        assert result.faces == len(FACE_LAYOUT)
        assert {"decode", "postprocess", "align"} <= set(result.stages_ms)
        assert result.cpu_ms > 0 and result.wall_ms > 0
    header, rows = format_gateway_cpu(results)
    assert header[4] == "CPU ms per image" and [r[0] for r in rows] == ["640x480", "1920x1080"]
