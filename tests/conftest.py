"""Session fixtures: tiny synthetic models in a temporary repository, and the real embedded Triton."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest

from gateway.ops.repository.install import install_models
from gateway.ops.repository.synthetic import (
    NOT_A_FACE_MODEL,
    SyntheticModels,
    build_synthetic_models,
)
from gateway.ops.servers import ports
from gateway.ops.servers.triton import EmbeddedTriton, TritonOptions, TritonPorts
from gateway.triton import spec

REPOSITORY_KEY = "test-repository-key"
# Which models were ready right after the session's Triton started (later tests load more).
STARTUP_READY: dict[str, bool] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the session's Triton is an integration test, marked or not.

    So `pytest -m "not integration"` is the unit suite: no Triton, seconds.
    """
    for item in items:
        if "triton" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


def _ready_states(server: EmbeddedTriton) -> dict[str, bool]:
    import tritonclient.grpc as grpcclient

    from gateway.triton import spec

    client = grpcclient.InferenceServerClient(server.grpc_url)
    return {name: bool(client.is_model_ready(name)) for name in spec.ALL_MODELS}


def free_port() -> int:
    return ports.free_port()


def free_ports() -> TritonPorts:
    grpc, http, metrics = ports.free_ports(3)
    return TritonPorts(grpc=grpc, http=http, metrics=metrics)


# Every synthetic model, by its role (the Triton model name).
SYNTHETIC_ROLES = spec.ALL_MODELS


@pytest.fixture(scope="session")
def tiny_models() -> SyntheticModels:
    """Upstream-form tiny synthetic models (what insightface's classes load)."""
    return build_synthetic_models("tiny")


@pytest.fixture(scope="session")
def tiny_upstream_dir(
    tiny_models: SyntheticModels, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny models saved as upstream .onnx files, for insightface oracles."""
    folder = tmp_path_factory.mktemp("upstream")
    for name in SYNTHETIC_ROLES:
        onnx.save(getattr(tiny_models, name), str(folder / f"{name}.onnx"))
    return folder


@pytest.fixture(scope="session")
def tiny_repository(tiny_models: SyntheticModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository holding the prepared tiny models and their configs.

    OpenVINO serves every model whose outputs it reproduces (execution_provider "openvino"),
    so the integration and fidelity tests run on the OpenVINO path where the install can take
    it; the rest (and everything, where scripts/bootstrap.sh's onnxruntime-openvino is
    missing) stays on the CPU provider. MODELS.json says which is which.
    """
    repository = tmp_path_factory.mktemp("model_repository")
    upstream = {name: getattr(tiny_models, name) for name in SYNTHETIC_ROLES}
    label = {"source": "synthetic-tiny", "synthetic": NOT_A_FACE_MODEL}
    install_models(
        repository, upstream, dict.fromkeys(upstream, label), execution_provider="openvino"
    )
    return repository


@pytest.fixture(scope="session")
def triton(
    tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedTriton]:
    """The real embedded Triton serving the tiny models, started once per session."""
    options = TritonOptions(
        repository=tiny_repository, ports=free_ports(), repository_key=REPOSITORY_KEY
    )
    server = EmbeddedTriton(options, runtime_dir=tmp_path_factory.mktemp("triton-runtime"))
    server.start()
    STARTUP_READY.update(_ready_states(server))
    yield server
    server.stop()
