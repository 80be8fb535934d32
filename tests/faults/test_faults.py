"""Faults with real processes: Triton stopped and restarted, a slow model, a missing swapper."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.ops.servers.triton import EmbeddedTriton, TritonOptions, TritonPorts
from gateway.triton import spec

from ..api.conftest import ServerThread, api_client, gateway_settings
from ..conftest import REPOSITORY_KEY, free_ports
from ..images import encode, square_image

pytestmark = pytest.mark.integration
FACE = encode(square_image(640, 640, [(240, 128, 64)]))
SLOW_RUNNER = """
import time
from runner_impl import TritonPythonModel as _Base

class TritonPythonModel(_Base):
    def execute(self, requests):
        time.sleep(3.0)
        return super().execute(requests)
"""


def _triton(repository: Path, ports: TritonPorts, runtime: Path) -> EmbeddedTriton:
    options = TritonOptions(repository=repository, ports=ports, repository_key=REPOSITORY_KEY)
    server = EmbeddedTriton(options, runtime_dir=runtime)
    server.start()
    return server


class LoadRun:
    """Two client threads sending /v1/detect back to back, recording status and duration."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list[tuple[float, int, float]] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]

    def _run(self) -> None:
        with api_client(self.url, timeout_s=30) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    code = http.post("/v1/detect", files={"image": FACE}).status_code
                except httpx.HTTPError:
                    code = -1
                self.results.append((started, code, time.monotonic() - started))

    def __enter__(self) -> LoadRun:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def since(self, moment: float) -> list[tuple[float, int, float]]:
        return [r for r in self.results if r[0] >= moment]


def _wait_ready(http: httpx.Client, ready: bool, timeout_s: float = 40) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if (http.get("/health/ready").status_code == 200) == ready:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"/health/ready did not become {ready} in {timeout_s} s")


@pytest.fixture
def own_repository(tiny_repository: Path, tmp_path: Path) -> Iterator[Path]:
    repository = tmp_path / "repo"
    shutil.copytree(tiny_repository, repository)
    yield repository


def test_triton_stopped_during_load_then_back(own_repository: Path, tmp_path: Path) -> None:
    ports = free_ports()
    triton = _triton(own_repository, ports, tmp_path / "rt")
    timeout_s = 3.0
    settings = gateway_settings(triton, triton_timeout_s=timeout_s)
    try:
        with (
            ServerThread(settings) as server,
            api_client(server.url) as http,
            LoadRun(server.url) as load,
        ):
            time.sleep(2)
            assert any(code == 200 for _, code, _ in load.results)
            stopped_at = time.monotonic()
            triton.stop()
            _wait_ready(http, ready=False)
            time.sleep(2)
            outage = load.since(stopped_at + 1)
            assert outage and all(code in (503, 504) for _, code, _ in outage), outage
            assert max(duration for _, _, duration in outage) < timeout_s * 3 + 5
            triton = _triton(own_repository, ports, tmp_path / "rt")
            recovered_after_s = _wait_ready(http, ready=True)
            back = time.monotonic()
            time.sleep(2)
            assert any(code == 200 for _, code, _ in load.since(back))
            print(f"recovered {recovered_after_s:.1f} s after Triton was back")
        assert all(code in (200, 503, 504) for _, code, _ in load.results)
    finally:
        triton.stop()


def test_slow_triton_gives_504_within_the_deadline(own_repository: Path, tmp_path: Path) -> None:
    version_dir = own_repository / spec.DETECTOR / "1"
    (version_dir / "model.py").rename(version_dir / "runner_impl.py")
    (version_dir / "model.py").write_text(SLOW_RUNNER)
    triton = _triton(own_repository, free_ports(), tmp_path / "rt")
    try:
        settings = gateway_settings(triton, triton_timeout_s=1.0, triton_unavailable_retries=0)
        with ServerThread(settings) as server, api_client(server.url) as http:
            started = time.monotonic()
            response = http.post("/v1/detect", files={"image": FACE})
            elapsed = time.monotonic() - started
            assert response.status_code == 504
            assert response.json()["error"]["code"] == "upstream_timeout"
            assert elapsed < 2.5, elapsed
    finally:
        triton.stop()


def test_missing_swapper_file_is_503_while_detect_works(
    own_repository: Path, tmp_path: Path
) -> None:
    (own_repository / spec.SWAPPER / "1" / "model.onnx").unlink()
    triton = _triton(own_repository, free_ports(), tmp_path / "rt")
    try:
        with ServerThread(gateway_settings(triton)) as server, api_client(server.url) as http:
            swap = http.post("/v1/swap", files=[("source", FACE), ("target", FACE)])
            assert swap.status_code == 503 and swap.headers["retry-after"]
            assert "swapper" in swap.json()["error"]["message"]
            assert http.post("/v1/detect", files={"image": FACE}).status_code == 200
            assert (
                http.post("/v1/verify", files={"image_a": FACE, "image_b": FACE}).status_code == 200
            )
    finally:
        triton.stop()
