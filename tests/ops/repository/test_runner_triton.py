"""The runner in the real embedded Triton: the optimised model when its stamp fits, else the original."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from gateway.ops.repository import runner
from gateway.ops.servers.triton import EmbeddedTriton, TritonOptions
from gateway.triton import spec

from ...conftest import REPOSITORY_KEY, free_ports

pytestmark = pytest.mark.integration
REFUSAL = f"loading {runner.MODEL_FILE} ("
EMBEDDING_TOLERANCE = 1e-5


def _embed(server: EmbeddedTriton, crops: np.ndarray) -> np.ndarray:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    tensor = grpcclient.InferInput(spec.RECOGNIZER_INPUT.name, list(crops.shape), "UINT8")
    tensor.set_data_from_numpy(crops)
    result = client.infer(spec.RECOGNIZER, [tensor])
    embeddings = result.as_numpy(spec.RECOGNIZER_OUTPUT.name)
    assert embeddings is not None
    return embeddings


def _on_the_cpu_provider(text: str) -> str:
    """An embedded config without the OpenVINO choice the session's install may have made."""
    return "".join(
        line
        for line in text.splitlines(keepends=True)
        if '"execution_provider"' not in line and '"openvino_path"' not in line
    )


def _use_optimized(repository: Path, name: str) -> str:
    """Save `name`'s optimised model and switch its embedded config to it on the CPU
    provider (the saved graph is the CPU provider's); returns the sha."""
    config_path = repository / name / "configs" / "embedded.pbtxt"
    text = _on_the_cpu_provider(config_path.read_text())
    off = 'key: "use_optimized_model" value: { string_value: "0" }'
    assert off in text
    config_path.write_text(text.replace(off, off.replace('"0"', '"1"')))
    sha = text.split(f'key: "{spec.MODEL_SHA256_PARAMETER}" value: {{ string_value: "')[1][:64]
    runner.save_optimized_model(str(repository / name / "1"), sha)
    return sha


def test_the_runner_loads_a_fitting_optimised_model_and_refuses_a_foreign_one(
    triton: EmbeddedTriton, tiny_repository: Path, tmp_path: Path
) -> None:
    """Detector: a fitting stamp, loaded silently. Recognizer: another host's stamp, refused
    by name in Triton's log, model.onnx served instead with the same embeddings (the session's
    Triton serves the recognizer on OpenVINO where the install could: both providers agree)."""
    repository = tmp_path / "repository"
    shutil.copytree(tiny_repository, repository)
    _use_optimized(repository, spec.DETECTOR)
    _use_optimized(repository, spec.RECOGNIZER)
    stamp_path = repository / spec.RECOGNIZER / "1" / runner.OPTIMIZED_STAMP_FILE
    stamp = json.loads(stamp_path.read_text())
    stamp_path.write_text(json.dumps({**stamp, "host": "another-cpu"}))
    crops = np.random.default_rng(8).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    options = TritonOptions(
        repository=repository, ports=free_ports(), repository_key=REPOSITORY_KEY
    )
    other = EmbeddedTriton(options, runtime_dir=tmp_path / "runtime")
    other.start()
    try:
        fallback = _embed(other, crops)
        log = other.logs()
    finally:
        other.stop()
    assert f"successfully loaded '{spec.DETECTOR}'" in log
    assert f"{spec.DETECTOR}: {REFUSAL}" not in log
    assert f"{spec.RECOGNIZER}: {REFUSAL}stamp differs in host)" in log
    np.testing.assert_allclose(fallback, _embed(triton, crops), atol=EMBEDDING_TOLERANCE, rtol=0)
