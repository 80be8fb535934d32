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


def test_startup_models_load_the_optimised_file(triton: EmbeddedTriton) -> None:
    """No refusal in Triton's log: the install's stamp fits this host and these files."""
    log = triton.logs()
    # The log is captured from the start (the runner's refusal would be among these lines).
    assert f"successfully loaded '{spec.RECOGNIZER}'" in log
    assert REFUSAL not in log


def test_a_stamp_from_another_host_falls_back_to_the_same_answers(
    triton: EmbeddedTriton, tiny_repository: Path, tmp_path: Path
) -> None:
    repository = tmp_path / "repository"
    shutil.copytree(tiny_repository, repository)
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
    assert f"{spec.RECOGNIZER}: {REFUSAL}stamp differs in host)" in log
    assert f"{spec.DETECTOR}: {REFUSAL}" not in log
    np.testing.assert_allclose(fallback, _embed(triton, crops), atol=EMBEDDING_TOLERANCE, rtol=0)
