"""POST /v1/swap with the swapper loaded on demand, against the real embedded Triton."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from gateway.ops.servers.triton import EmbeddedTriton, TritonOptions
from gateway.triton import spec

from ..conftest import REPOSITORY_KEY, free_ports
from ..images import encode, square_image
from .conftest import ServerThread, api_client, gateway_settings

pytestmark = pytest.mark.integration
SOURCE = encode(square_image(640, 640, [(240, 128, 64)], value=230))
TARGET = encode(square_image(640, 640, [(320, 320, 128), (96, 400, 32)]))


def swapper_loads_seen(triton: EmbeddedTriton) -> int:
    """Loads that reached Triton, counted from Triton's own log."""
    return triton.logs().count("successfully loaded 'swapper'")


def unload_in_triton(triton: EmbeddedTriton) -> None:
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    headers = {spec.REPOSITORY_KEY_GRPC_HEADER: REPOSITORY_KEY}
    if client.is_model_ready(spec.SWAPPER):
        client.unload_model(spec.SWAPPER, headers=headers)
    deadline = time.monotonic() + 30
    while client.is_model_ready(spec.SWAPPER) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not client.is_model_ready(spec.SWAPPER)


@pytest.fixture
def fresh_gateway(triton: EmbeddedTriton) -> Iterator[httpx.Client]:
    """A new gateway (new swapper manager) with the swapper unloaded in Triton."""
    unload_in_triton(triton)
    with (
        # Six swaps of one key at once: no per-key share of the slots here.
        ServerThread(gateway_settings(triton, max_in_flight_per_key=0)) as server,
        api_client(server.url) as http,
    ):
        yield http


def _swap(http: httpx.Client, **params: object) -> httpx.Response:
    return http.post("/v1/swap", files=[("source", SOURCE), ("target", TARGET)], params=params)


def _swapper_status(http: httpx.Client) -> dict[str, object]:
    status: dict[str, object] = http.get("/v1/models").json()["swapper"]
    return status


def test_first_swap_loads_second_does_not(
    fresh_gateway: httpx.Client, triton: EmbeddedTriton
) -> None:
    before = swapper_loads_seen(triton)
    first = _swap(fresh_gateway)
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "image/png"
    assert first.headers["x-faces-swapped"] == "1"
    result = cv2.imdecode(np.frombuffer(first.content, np.uint8), cv2.IMREAD_COLOR)
    original = cv2.imdecode(np.frombuffer(TARGET, np.uint8), cv2.IMREAD_COLOR)
    assert result.shape == original.shape and not np.array_equal(result, original)
    second = _swap(fresh_gateway)
    assert second.status_code == 200
    assert _swapper_status(fresh_gateway)["load_count"] == 1
    assert swapper_loads_seen(triton) - before == 1
    states = {m["name"]: m["state"] for m in fresh_gateway.get("/v1/models").json()["models"]}
    assert states["swapper"] == "READY"


def test_concurrent_first_swaps_cause_exactly_one_load(
    fresh_gateway: httpx.Client, triton: EmbeddedTriton
) -> None:
    before = swapper_loads_seen(triton)
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: _swap(fresh_gateway), range(6)))
    assert [r.status_code for r in responses] == [200] * 6
    assert _swapper_status(fresh_gateway)["load_count"] == 1
    assert swapper_loads_seen(triton) - before == 1


def test_idle_ttl_unloads_and_the_next_swap_reloads(triton: EmbeddedTriton) -> None:
    unload_in_triton(triton)
    settings = gateway_settings(triton, swapper_idle_ttl_s=1.0)
    with ServerThread(settings) as server, api_client(server.url) as http:
        assert _swap(http).status_code == 200
        deadline = time.monotonic() + 20
        while _swapper_status(http)["state"] != "UNAVAILABLE" and time.monotonic() < deadline:
            time.sleep(0.2)
        states = {m["name"]: m["state"] for m in http.get("/v1/models").json()["models"]}
        assert states["swapper"] != "READY"
        assert _swap(http).status_code == 200
        assert _swapper_status(http)["load_count"] == 2


def test_admin_load_and_unload(fresh_gateway: httpx.Client) -> None:
    loaded = fresh_gateway.post("/v1/models/swapper/load")
    assert loaded.status_code == 200 and loaded.json()["state"] == "READY"
    unloaded = fresh_gateway.post("/v1/models/swapper/unload")
    assert unloaded.status_code == 200 and unloaded.json()["state"] == "UNAVAILABLE"
    states = {m["name"]: m["state"] for m in fresh_gateway.get("/v1/models").json()["models"]}
    assert states["swapper"] != "READY"


def test_formats_and_several_sources(client: httpx.Client) -> None:
    jpeg = client.post(
        "/v1/swap",
        files=[("source", SOURCE), ("source", SOURCE), ("target", TARGET)],
        params={"format": "jpeg", "quality": 80, "target_face": "all"},
    )
    assert jpeg.status_code == 200, jpeg.text
    assert jpeg.headers["content-type"] == "image/jpeg" and jpeg.content[:2] == b"\xff\xd8"
    assert jpeg.headers["x-faces-swapped"] == "2"
    by_accept = client.post(
        "/v1/swap",
        files=[("source", SOURCE), ("target", TARGET)],
        headers={"accept": "image/jpeg"},
    )
    assert by_accept.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize(
    ("files", "params", "status", "code"),
    [
        (
            [("source", encode(np.zeros((64, 64, 3), np.uint8))), ("target", TARGET)],
            {},
            422,
            "no_face",
        ),
        (
            [("source", SOURCE), ("target", encode(np.zeros((64, 64, 3), np.uint8)))],
            {},
            422,
            "no_face",
        ),
        ([("source", SOURCE), ("target", TARGET)], {"target_face": 5}, 422, "invalid_parameter"),
        ([("source", SOURCE), ("target", TARGET)], {"source_face": 3}, 422, "invalid_parameter"),
        (
            [("source", SOURCE), ("target", TARGET)],
            {"target_face": "most"},
            422,
            "invalid_parameter",
        ),
        ([("source", SOURCE), ("target", TARGET)], {"format": "gif"}, 422, "invalid_parameter"),
        ([("source", SOURCE), ("target", TARGET)], {"quality": 0}, 422, "invalid_parameter"),
        ([("target", TARGET)], {}, 422, "invalid_parameter"),
        ([("source", SOURCE), ("target", b"garbage")], {}, 415, "unsupported_media_type"),
    ],
)
def test_swap_errors(
    client: httpx.Client,
    files: list[tuple[str, bytes]],
    params: dict[str, object],
    status: int,
    code: str,
) -> None:
    response = client.post("/v1/swap", files=files, params=params)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def test_swap_json_body_is_415(client: httpx.Client) -> None:
    response = client.post("/v1/swap", json={"source": "x", "target": "y"})
    assert response.status_code == 415


def test_broken_swapper_is_503_while_detect_still_works(
    tiny_repository: Path, tmp_path: Path
) -> None:
    repository = tmp_path / "repo"
    shutil.copytree(tiny_repository, repository)
    (repository / spec.SWAPPER / "1" / "model.onnx").write_bytes(b"corrupt swapper file")
    options = TritonOptions(
        repository=repository, ports=free_ports(), repository_key=REPOSITORY_KEY
    )
    broken = EmbeddedTriton(options, runtime_dir=tmp_path / "rt")
    broken.start()
    try:
        with (
            ServerThread(gateway_settings(broken)) as server,
            api_client(server.url) as http,
        ):
            response = _swap(http)
            assert response.status_code == 503
            assert response.headers["retry-after"]
            message = response.json()["error"]["message"]
            assert "swapper" in message and "load" in message.lower()
            detect = http.post("/v1/detect", files={"image": TARGET})
            assert detect.status_code == 200 and len(detect.json()["faces"]) == 2
            assert http.get("/health/ready").status_code == 200
    finally:
        broken.stop()


def test_preload_loads_the_swapper_at_start(triton: EmbeddedTriton) -> None:
    unload_in_triton(triton)
    settings = gateway_settings(triton, swapper_preload=True)
    with ServerThread(settings) as server, api_client(server.url) as http:
        deadline = time.monotonic() + 60
        while _swapper_status(http)["state"] != "READY" and time.monotonic() < deadline:
            time.sleep(0.2)
        status = _swapper_status(http)
        assert status["state"] == "READY" and status["load_count"] == 1
        assert _swap(http).status_code == 200
        assert _swapper_status(http)["load_count"] == 1
