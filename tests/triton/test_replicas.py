"""Several Triton replicas behind one gateway: two real embedded Triton processes, one gRPC
target naming both (as a headless Service's dns:/// name resolves to every pod)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from gateway.errors import UpstreamUnavailable
from gateway.ops.servers.triton import EmbeddedTriton, TritonOptions
from gateway.triton import spec
from gateway.triton.client import TritonFaceModels, TritonTarget
from gateway.triton.replicas import ReplicatedControl, resolve_replicas, split_target
from gateway.triton.targets import list_target

from ..api.conftest import ServerThread, api_client, gateway_settings
from ..conftest import REPOSITORY_KEY, free_port, free_ports
from ..images import encode, square_image

REQUESTS = 24
SOURCE = encode(square_image(640, 640, [(240, 128, 64)], value=230))
TARGET = encode(square_image(640, 640, [(320, 320, 128)]))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("dns:///triton-headless.faces.svc:8001", ("dns", "triton-headless.faces.svc:8001")),
        ("dns://10.0.0.10/triton:8001", ("dns", "triton:8001")),
        ("ipv4:10.0.0.1:8001,10.0.0.2:8001", ("list", "10.0.0.1:8001,10.0.0.2:8001")),
        ("triton:8001", None),
        ("localhost:8001", None),
    ],
)
def test_split_target(url: str, expected: tuple[str, str] | None) -> None:
    assert split_target(url) == expected


@pytest.mark.parametrize(
    ("addresses", "expected"),
    [
        (["10.0.0.1:8001", "10.0.0.2:8001"], "ipv4:10.0.0.1:8001,10.0.0.2:8001"),
        (["[fd00::1]:8001"], "ipv6:[fd00::1]:8001"),
        (["10.0.0.1:8001", "[fd00::1]:8001"], None),
        ([], None),
    ],
)
def test_list_target_takes_one_address_family(addresses: list[str], expected: str | None) -> None:
    assert list_target(addresses) == expected


def test_resolve_replicas() -> None:
    listed = asyncio.run(resolve_replicas("ipv4:127.0.0.2:9,127.0.0.1:9, 127.0.0.1:9"))
    assert listed == ["127.0.0.1:9", "127.0.0.2:9"]
    assert asyncio.run(resolve_replicas("dns:///127.0.0.1:8001")) == ["127.0.0.1:8001"]
    # One address: gRPC dials it as one replica, so does the gateway.
    assert asyncio.run(resolve_replicas("triton:8001")) == ["triton:8001"]


def _inference_count(server: EmbeddedTriton, model: str) -> int:
    client = grpcclient.InferenceServerClient(server.grpc_url)
    stats = client.get_inference_statistics(model, as_json=True)
    return sum(
        int(m.get("inference_stats", {}).get("success", {}).get("count", 0))
        for m in stats["model_stats"]
    )


def _ready(server: EmbeddedTriton, model: str) -> bool:
    return bool(grpcclient.InferenceServerClient(server.grpc_url).is_model_ready(model))


@pytest.fixture(scope="module")
def two_tritons(
    tiny_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EmbeddedTriton, EmbeddedTriton]]:
    servers = []
    try:
        for index in range(2):
            options = TritonOptions(
                repository=tiny_repository, ports=free_ports(), repository_key=REPOSITORY_KEY
            )
            server = EmbeddedTriton(
                options, runtime_dir=tmp_path_factory.mktemp(f"replica-{index}")
            )
            server.start()
            servers.append(server)
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def replicated_gateway(
    two_tritons: tuple[EmbeddedTriton, EmbeddedTriton],
) -> Iterator[httpx.Client]:
    first, second = two_tritons
    target = f"ipv4:127.0.0.1:{first.options.ports.grpc},127.0.0.1:{second.options.ports.grpc}"
    settings = gateway_settings(first, triton_url=target, swapper_idle_ttl_s=0)
    with ServerThread(settings) as server, api_client(server.url) as http:
        yield http


def _detect(http: httpx.Client) -> None:
    response = http.post("/v1/detect", files={"image": TARGET})
    assert response.status_code == 200, response.text


@pytest.mark.integration
def test_detection_is_spread_over_both_replicas(
    two_tritons: tuple[EmbeddedTriton, EmbeddedTriton], replicated_gateway: httpx.Client
) -> None:
    # round_robin uses the connections that are up; wait (bounded) until both replicas served.
    start = [_inference_count(s, spec.DETECTOR) for s in two_tritons]
    for _ in range(200):
        if all(
            _inference_count(s, spec.DETECTOR) > b for s, b in zip(two_tritons, start, strict=True)
        ):
            break
        _detect(replicated_gateway)
    before = [_inference_count(s, spec.DETECTOR) for s in two_tritons]
    assert all(b > a for a, b in zip(start, before, strict=True)), "one replica never served"
    for _ in range(REQUESTS):
        _detect(replicated_gateway)

    def served_since_before() -> list[int]:
        counts = zip(two_tritons, before, strict=True)
        return [_inference_count(s, spec.DETECTOR) - b for s, b in counts]

    # Triton records a request's statistics just after it answers: allow them a moment.
    deadline = time.monotonic() + 10
    served = served_since_before()
    while sum(served) < REQUESTS and time.monotonic() < deadline:
        time.sleep(0.1)
        served = served_since_before()
    assert sum(served) >= REQUESTS, served
    # round_robin: each replica takes a share, not one replica everything.
    assert min(served) >= REQUESTS // 4, served


@pytest.mark.integration
def test_swapper_loads_and_unloads_on_every_replica(
    two_tritons: tuple[EmbeddedTriton, EmbeddedTriton], replicated_gateway: httpx.Client
) -> None:
    assert not any(_ready(s, spec.SWAPPER) for s in two_tritons)
    loaded = replicated_gateway.post("/v1/models/swapper/load")
    assert loaded.status_code == 200, loaded.text
    assert all(_ready(s, spec.SWAPPER) for s in two_tritons)

    before = [_inference_count(s, spec.SWAPPER) for s in two_tritons]
    for _ in range(REQUESTS // 2):
        response = replicated_gateway.post(
            "/v1/swap", files=[("source", SOURCE), ("target", TARGET)]
        )
        assert response.status_code == 200, response.text
    swapped = [
        _inference_count(s, spec.SWAPPER) - b for s, b in zip(two_tritons, before, strict=True)
    ]
    # Swaps went through both replicas, and every one of them found the swapper loaded.
    assert min(swapped) > 0, swapped

    unloaded = replicated_gateway.post("/v1/models/swapper/unload")
    assert unloaded.status_code == 200, unloaded.text
    assert not any(_ready(s, spec.SWAPPER) for s in two_tritons)


@pytest.mark.integration
def test_a_replica_without_the_swapper_gets_it_on_the_next_swap(
    two_tritons: tuple[EmbeddedTriton, EmbeddedTriton], replicated_gateway: httpx.Client
) -> None:
    """As when a new Triton pod joins: the swapper is loaded on one replica only."""
    first, second = two_tritons
    client = grpcclient.InferenceServerClient(first.grpc_url)
    client.load_model(spec.SWAPPER, headers={spec.REPOSITORY_KEY_GRPC_HEADER: REPOSITORY_KEY})
    assert _ready(first, spec.SWAPPER) and not _ready(second, spec.SWAPPER)
    statuses = [
        replicated_gateway.post(
            "/v1/swap", files=[("source", SOURCE), ("target", TARGET)]
        ).status_code
        for _ in range(6)
    ]
    # At worst one swap meets the replica without it (503, retry); then both have it.
    assert statuses.count(200) >= len(statuses) - 1, statuses
    assert all(_ready(s, spec.SWAPPER) for s in two_tritons)
    assert replicated_gateway.post("/v1/models/swapper/unload").status_code == 200


@pytest.mark.integration
def test_a_replica_that_cannot_load_fails_the_load(
    two_tritons: tuple[EmbeddedTriton, EmbeddedTriton],
) -> None:
    """A load is whole or failed: a replica that does not answer makes it a 503 (the manager
    then holds the failure), even though the other replica loaded."""
    first, _ = two_tritons
    target = TritonTarget(
        url=f"ipv4:127.0.0.1:{first.options.ports.grpc},127.0.0.1:{free_port()}",
        timeout_s=5,
        unavailable_retries=0,
        repository_key=REPOSITORY_KEY,
    )

    async def load_everywhere() -> None:
        control = ReplicatedControl(target)
        try:
            assert len(await control.replicas()) == 2
            await control.load_model(spec.SWAPPER, 10)
        finally:
            await control.close()

    with pytest.raises(UpstreamUnavailable):
        asyncio.run(load_everywhere())
    client = grpcclient.InferenceServerClient(first.grpc_url)
    client.unload_model(spec.SWAPPER, headers={spec.REPOSITORY_KEY_GRPC_HEADER: REPOSITORY_KEY})


@pytest.mark.integration
def test_a_triton_pod_added_later_gets_traffic_after_re_resolution(
    two_tritons: tuple[EmbeddedTriton, EmbeddedTriton],
) -> None:
    """gRPC re-resolves a dns:/// name only when a connection fails: the client resolves it
    every reresolve_s itself and dials a changed set on a new channel. The name resolves to
    the first replica, then (as a headless Service after a scale-up) to both."""
    second = two_tritons[1]
    a, b = (f"127.0.0.1:{s.options.ports.grpc}" for s in two_tritons)
    answers = [[a]]

    async def resolve(url: str) -> list[str]:
        assert url == f"dns:///{a}"
        return answers[-1]

    # Four 640 px frames are 4.9 MB: more than gRPC's 4 MB default, so the new channel must
    # keep tritonclient's unlimited message sizes.
    frames = np.zeros((4, spec.DETECTOR_INPUT_SIZE_PX, spec.DETECTOR_INPUT_SIZE_PX, 3), np.uint8)

    async def scenario() -> list[int]:
        target = TritonTarget(
            url=f"dns:///{a}", timeout_s=30, unavailable_retries=2, repository_key="", reresolve_s=0
        )
        models = TritonFaceModels(target, resolve=resolve)
        try:
            for _ in range(3):
                await models.detect(frames)
            assert models.dialled == target.url
            before = _inference_count(second, spec.DETECTOR)
            answers.append([a, b])
            deadline = time.monotonic() + 10
            while models.dialled == target.url:
                assert time.monotonic() < deadline, "the changed name was never dialled"
                await models.detect(frames[:1])
                await asyncio.sleep(0.05)
            assert models.dialled == f"ipv4:{a},{b}"
            for _ in range(50):
                await models.detect(frames)
                if _inference_count(second, spec.DETECTOR) > before:
                    break
            return [before, _inference_count(second, spec.DETECTOR)]
        finally:
            await models.close()

    before, after = asyncio.run(scenario())
    assert after > before, "the replica added later got no inference"
