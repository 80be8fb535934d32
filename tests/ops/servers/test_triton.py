"""The real embedded Triton serving the tiny models: shapes, values, restricted load/unload, failures."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from gateway.ops.servers.triton import EmbeddedTriton, EmbeddedTritonError, TritonOptions
from gateway.triton import spec

from ...conftest import REPOSITORY_KEY, STARTUP_READY, free_ports

pytestmark = pytest.mark.integration
KEY_HEADERS = {spec.REPOSITORY_KEY_GRPC_HEADER: REPOSITORY_KEY}


@pytest.fixture(scope="module")
def client(triton: EmbeddedTriton) -> grpcclient.InferenceServerClient:
    return grpcclient.InferenceServerClient(triton.grpc_url)


def _infer(
    client: grpcclient.InferenceServerClient,
    model: str,
    feeds: dict[str, np.ndarray],
    outputs: list[str],
) -> list[np.ndarray]:
    inputs = []
    for name, array in feeds.items():
        tensor = grpcclient.InferInput(
            name, list(array.shape), "UINT8" if array.dtype == np.uint8 else "FP32"
        )
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    result = client.infer(model, inputs)
    return [result.as_numpy(name) for name in outputs]


def _direct(repository: Path, model: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(
        str(repository / model / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    return list(session.run(None, feeds))


def test_startup_loads_detector_and_recognizer_not_swapper(
    client: grpcclient.InferenceServerClient,
) -> None:
    # genderage, liveness and the landmark models are optional and installed in the test
    # repository, so they load at start too.
    assert STARTUP_READY == {
        spec.DETECTOR: True,
        spec.RECOGNIZER: True,
        spec.SWAPPER: False,
        spec.GENDERAGE: True,
        spec.LIVENESS: True,
        spec.LANDMARK_2D106: True,
        spec.LANDMARK_3D68: True,
    }
    assert client.is_model_ready(spec.DETECTOR) and client.is_model_ready(spec.RECOGNIZER)


def test_detector_batch_over_grpc_has_documented_shapes_and_values(
    client: grpcclient.InferenceServerClient, tiny_repository: Path
) -> None:
    frames = np.zeros((3, 640, 640, 3), np.uint8)
    frames[1, 96:160, 208:272] = 255  # a 64 px square centred on the stride-16 grid
    names = [t.name for t in spec.DETECTOR_OUTPUTS]
    outputs = _infer(client, spec.DETECTOR, {"images": frames}, names)
    expected = _direct(tiny_repository, spec.DETECTOR, {"images": frames})
    for tensor, got, want in zip(spec.DETECTOR_OUTPUTS, outputs, expected, strict=True):
        # An empty tensor here is the numpy-2 failure mode of Triton 2.51's Python backend.
        assert got.shape == (3, *tensor.shape) and got.dtype == np.float32 and got.size > 0
        np.testing.assert_allclose(got, want, atol=1e-5)
    score_16 = outputs[names.index("score_16")]
    assert score_16[1].max() > 0.9 and score_16[0].max() < 0.5


def test_recognizer_over_grpc(
    client: grpcclient.InferenceServerClient, tiny_repository: Path
) -> None:
    crops = np.random.default_rng(3).integers(0, 256, (5, 112, 112, 3), dtype=np.uint8)
    (embedding,) = _infer(client, spec.RECOGNIZER, {"faces": crops}, ["embedding"])
    assert embedding.shape == (5, 512) and embedding.dtype == np.float32
    np.testing.assert_allclose(
        embedding,
        _direct(tiny_repository, spec.RECOGNIZER, {"faces": crops})[0],
        rtol=1e-5,
        atol=1e-5,
    )


def _wait_state(
    client: grpcclient.InferenceServerClient, model: str, ready: bool, timeout_s: float = 30
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.is_model_ready(model) == ready:
            return True
        time.sleep(0.1)
    return False


def test_swapper_loads_and_unloads_with_the_key_only(
    client: grpcclient.InferenceServerClient,
) -> None:
    if client.is_model_ready(spec.SWAPPER):  # an earlier test of the session loaded it
        client.unload_model(spec.SWAPPER, headers=KEY_HEADERS)
        assert _wait_state(client, spec.SWAPPER, ready=False)
    with pytest.raises(InferenceServerException, match="restricted"):
        client.load_model(spec.SWAPPER)
    assert not client.is_model_ready(spec.SWAPPER)
    client.load_model(spec.SWAPPER, headers=KEY_HEADERS)
    assert client.is_model_ready(spec.SWAPPER)
    crop = np.full((1, 128, 128, 3), 90, np.uint8)
    source = np.ones((1, 512), np.float32) / np.sqrt(512)
    (swapped,) = _infer(client, spec.SWAPPER, {"target": crop, "source": source}, ["swapped"])
    assert swapped.shape == (1, 128, 128, 3) and swapped.dtype == np.uint8 and swapped.std() > 0
    with pytest.raises(InferenceServerException, match="restricted"):
        client.unload_model(spec.SWAPPER)
    client.unload_model(spec.SWAPPER, headers=KEY_HEADERS)
    # Triton's unload is asynchronous: poll readiness.
    assert _wait_state(client, spec.SWAPPER, ready=False)


def test_a_broken_startup_model_fails_with_tritons_reason(
    tiny_repository: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "repo"
    shutil.copytree(tiny_repository, broken)
    (broken / spec.DETECTOR / "1" / "model.onnx").write_bytes(b"not an onnx file")
    server = EmbeddedTriton(
        TritonOptions(repository=broken, ports=free_ports(), startup_timeout_s=60),
        runtime_dir=tmp_path / "rt",
    )
    with pytest.raises(EmbeddedTritonError) as caught:
        server.start()
    server.stop()
    assert "detector" in str(caught.value)


def test_missing_models_say_how_to_get_them(tmp_path: Path) -> None:
    server = EmbeddedTriton(
        TritonOptions(repository=tmp_path, ports=free_ports()), runtime_dir=tmp_path / "rt"
    )
    with pytest.raises(EmbeddedTritonError, match="facegate models"):
        server.start()
