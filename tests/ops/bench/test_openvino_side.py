"""The bench's InsightFace-with-OpenVINO worker: a worker that dies or hangs at start is a
clear BenchError with its own last words, never a hang or an AttributeError."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gateway.ops.bench import openvino_side
from gateway.ops.bench.models import BenchModels
from gateway.ops.bench.options import BenchError
from gateway.ops.repository.providers import OPENVINO_FOLDER

needs_openvino = pytest.mark.skipif(
    not (OPENVINO_FOLDER / "onnxruntime" / "__init__.py").is_file(),
    reason=f"no onnxruntime-openvino in {OPENVINO_FOLDER}: run scripts/bootstrap.sh",
)


def _fake_python(tmp_path: Path, body: str) -> str:
    script = tmp_path / "python"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def _models(tmp_path: Path) -> BenchModels:
    return BenchModels(tmp_path, tmp_path / "d.onnx", tmp_path / "r.onnx", "synthetic")


@needs_openvino
def test_a_worker_that_dies_at_start_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _fake_python(tmp_path, 'echo "ImportError: no module named cv2" >&2; exit 1')
    monkeypatch.setattr(sys, "executable", fake)
    with pytest.raises(BenchError, match="no module named cv2") as raised:
        openvino_side.InsightFaceOpenVino(_models(tmp_path), 1, b"")
    assert "--no-openvino" in str(raised.value)


@needs_openvino
def test_a_worker_silent_past_the_deadline_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", _fake_python(tmp_path, "exec sleep 60"))
    monkeypatch.setattr(openvino_side, "START_TIMEOUT_S", 0.5)
    with pytest.raises(BenchError, match="nothing in 0 s"):
        openvino_side.InsightFaceOpenVino(_models(tmp_path), 1, b"")
