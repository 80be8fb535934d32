"""A REST gateway with an API key, and direct clients, on the session's embedded Triton."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.client import FaceClient, FaceRestClient
from gateway.ops.servers.triton import EmbeddedTriton

from ..api.conftest import ServerThread, gateway_settings

API_KEY = "client-tests-admin-key-0123456789"


@pytest.fixture(scope="session")
def keyed_gateway_url(triton: EmbeddedTriton) -> Iterator[str]:
    """The gateway in front of the session's Triton, with one admin API key."""
    with ServerThread(gateway_settings(triton, api_keys=f"admin:{API_KEY}")) as server:
        yield server.url


@pytest.fixture
def rest(keyed_gateway_url: str) -> Iterator[FaceRestClient]:
    with FaceRestClient(keyed_gateway_url, api_key=API_KEY, timeout_s=120) as client:
        yield client


@pytest.fixture(scope="module", params=[False, True], ids=["wire", "shm"])
def direct(request: pytest.FixtureRequest, triton: EmbeddedTriton) -> Iterator[FaceClient]:
    """A FaceClient over the wire, then over system shared memory (both must be exact)."""
    with FaceClient(triton.grpc_url, use_shared_memory=request.param) as client:
        assert client.shared_memory is request.param
        yield client
