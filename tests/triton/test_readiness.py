"""The chart's Triton readiness check on the real Triton core (the embedded server): it stays
ready while a swapper loads slowly and after one fails to load, where Triton's strict
/v2/health/ready drops. Also: the TensorRT configs' warm-up blocks load on Triton."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm  # a test dependency: missing is an error, never a skip
import pytest
import tritonclient.grpc as grpcclient
import yaml
from tritonclient.utils import InferenceServerException

from gateway.ops.repository import configs
from gateway.ops.repository.install import read_manifest
from gateway.ops.servers.triton import EmbeddedTriton, TritonOptions
from gateway.triton import spec

from ..api.conftest import ServerThread, api_client, gateway_settings
from ..conftest import REPOSITORY_KEY, free_ports
from ..images import encode, square_image

pytestmark = pytest.mark.integration

CHART_DIR = Path(__file__).resolve().parents[2] / "helm" / "facegate"
SLOW = "swapper_slow"
BROKEN = "swapper_broken"
BAD_WARMUP = "recognizer_bad_warmup"
SLOW_LOAD_S = 20
SLOW_PATCH = f"""

import time as _time

_initialize = TritonPythonModel.initialize


def _slow_initialize(self, args):
    _time.sleep({SLOW_LOAD_S})
    _initialize(self, args)


TritonPythonModel.initialize = _slow_initialize
"""


def _copy_model(repository: Path, source: str, name: str) -> Path:
    folder = repository / name
    shutil.copytree(repository / source, folder)
    config = folder / configs.config_path("embedded")
    config.write_text(config.read_text().replace(f'name: "{source}"', f'name: "{name}"'))
    return folder


def _add_warmup(repository: Path, name: str, layout: configs.ModelLayout) -> None:
    config = repository / name / configs.config_path("embedded")
    config.write_text(config.read_text() + "\n".join(configs.render_warmup(layout)) + "\n")


@pytest.fixture(scope="module")
def odd_repository(tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny repository with the TensorRT warm-up in every embedded config, plus a
    swapper that loads slowly, one that cannot load, and a recognizer whose warm-up has the
    wrong shape."""
    repository = tmp_path_factory.mktemp("odd-repository")
    shutil.copytree(tiny_repository, repository, dirs_exist_ok=True)
    detector_batch = int(str(read_manifest(repository)[spec.DETECTOR]["max_batch_size"]))
    layouts = configs.layouts(detector_batch)
    for name, layout in layouts.items():
        _add_warmup(repository, name, layout)
    slow = _copy_model(repository, spec.SWAPPER, SLOW)
    (slow / "1" / "model.py").write_text((slow / "1" / "model.py").read_text() + SLOW_PATCH)
    broken = _copy_model(repository, spec.SWAPPER, BROKEN)
    (broken / "1" / "model.onnx").write_bytes(b"not an onnx model")
    bad = layouts[spec.RECOGNIZER]
    wrong = configs.ModelLayout(
        BAD_WARMUP,
        tuple(configs.TensorSpec(t.name, t.dtype, (7, 7, 3)) for t in bad.inputs),
        bad.outputs,
        bad.max_batch_size,
    )
    folder = repository / BAD_WARMUP
    shutil.copytree(repository / spec.RECOGNIZER, folder)
    (folder / configs.config_path("embedded")).write_text(
        configs.render_config(configs.layouts()[spec.RECOGNIZER], "embedded").replace(
            f'name: "{spec.RECOGNIZER}"', f'name: "{BAD_WARMUP}"'
        )
        + "\n".join(configs.render_warmup(wrong))
        + "\n"
    )
    return repository


@pytest.fixture(scope="module")
def odd_triton(
    odd_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedTriton]:
    """Strict readiness, as the embedded launcher and the old chart start Triton."""
    options = TritonOptions(
        repository=odd_repository, ports=free_ports(), repository_key=REPOSITORY_KEY
    )
    server = EmbeddedTriton(options, runtime_dir=tmp_path_factory.mktemp("odd-triton"))
    server.start()
    yield server
    server.stop()


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _chart_probe(server: EmbeddedTriton) -> list[str]:
    """The readiness command the chart renders, for this server's HTTP port."""
    values = {"triton": {"service": {"httpPort": server.options.ports.http}}}
    with helm.Chart.load(CHART_DIR) as chart:
        rendered = chart.render(values, name="facegate", namespace="faces", is_install=True)
    text = next(t for path, t in rendered.items() if path.endswith("triton-deployment.yaml"))
    deployment: dict[str, Any] = yaml.safe_load(text)
    (container,) = [
        c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "triton"
    ]
    command: list[str] = container["readinessProbe"]["exec"]["command"]
    return command


def _compose_probe(server: EmbeddedTriton) -> list[str]:
    """docker-compose.yml's Triton healthcheck, as Docker runs it, for this server's port."""
    compose = yaml.safe_load((CHART_DIR.parents[1] / "docker-compose.yml").read_text())
    test: list[str] = compose["services"]["triton"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    # Compose turns $$ into $; the container's HTTP port is 8000.
    script = (
        test[-1]
        .replace("$$", "$")
        .replace("/127.0.0.1/8000", f"/127.0.0.1/{server.options.ports.http}")
    )
    return [*test[1:-1], script]


def _probe_passes(command: list[str]) -> bool:
    return subprocess.run(command, capture_output=True, timeout=10).returncode == 0


def _state(server: EmbeddedTriton, model: str) -> str:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    index = client.get_model_repository_index(
        headers={spec.REPOSITORY_KEY_GRPC_HEADER: REPOSITORY_KEY}, as_json=True
    )
    return next((m.get("state", "") for m in index["models"] if m["name"] == model), "")


def _load(server: EmbeddedTriton, model: str) -> None:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    client.load_model(model, headers={spec.REPOSITORY_KEY_GRPC_HEADER: REPOSITORY_KEY})


def _wait_for_state(server: EmbeddedTriton, model: str, state: str) -> None:
    deadline = time.monotonic() + 120
    while _state(server, model) != state:
        assert time.monotonic() < deadline, f"{model} never became {state}"
        time.sleep(0.1)


def test_startup_models_load_with_the_tensorrt_warmup(odd_triton: EmbeddedTriton) -> None:
    """Triton ran every warm-up sample while loading: the blocks parse and their shapes fit."""
    for name in spec.STARTUP_MODELS:
        assert _state(odd_triton, name) == "READY"
    _load(odd_triton, spec.SWAPPER)
    assert _state(odd_triton, spec.SWAPPER) == "READY"
    # A warm-up whose shape does not fit the model fails the load: the check above can fail.
    with pytest.raises(InferenceServerException, match=r"(?i)warm"):
        _load(odd_triton, BAD_WARMUP)


def test_readiness_survives_a_slow_and_a_failed_swapper(odd_triton: EmbeddedTriton) -> None:
    probe = _chart_probe(odd_triton)
    compose_probe = _compose_probe(odd_triton)
    health = f"{odd_triton.http_url}/v2/health/ready"
    assert _probe_passes(probe) and _probe_passes(compose_probe)
    with (
        ServerThread(gateway_settings(odd_triton)) as gateway,
        api_client(gateway.url) as http,
    ):

        def gateway_ready() -> bool:
            return http.get("/health/ready").status_code == 200

        assert gateway_ready()
        loader = threading.Thread(target=_load, args=(odd_triton, SLOW), daemon=True)
        loader.start()
        _wait_for_state(odd_triton, SLOW, "LOADING")
        # Strict readiness (the old probe) drops while any model loads; the chart's does not.
        assert _status(health) != 200
        assert _probe_passes(probe) and _probe_passes(compose_probe)
        assert gateway_ready()
        loader.join(timeout=SLOW_LOAD_S * 6)
        assert _state(odd_triton, SLOW) == "READY"

        with pytest.raises(InferenceServerException):
            _load(odd_triton, BROKEN)
        assert _state(odd_triton, BROKEN) == "UNAVAILABLE"
        # A failed load keeps strict readiness down for good; detection is still served.
        assert _status(health) != 200
        assert _probe_passes(probe) and _probe_passes(compose_probe)
        assert gateway_ready()
        assert http.post("/v1/detect", files={"image": _blank_png()}).status_code == 200


def test_probe_fails_when_a_startup_model_is_gone(odd_triton: EmbeddedTriton) -> None:
    """The probe can fail: without the recognizer the pod must leave the Service."""
    probe = _chart_probe(odd_triton)
    client = grpcclient.InferenceServerClient(odd_triton.grpc_url)
    headers = {spec.REPOSITORY_KEY_GRPC_HEADER: REPOSITORY_KEY}
    client.unload_model(spec.RECOGNIZER, headers=headers)
    try:
        _wait_for_state(odd_triton, spec.RECOGNIZER, "UNAVAILABLE")
        assert not _probe_passes(probe)
        assert not _probe_passes(_compose_probe(odd_triton))
    finally:
        client.load_model(spec.RECOGNIZER, headers=headers)
    assert _probe_passes(probe)


def _blank_png() -> bytes:
    return encode(square_image(64, 64, []))
