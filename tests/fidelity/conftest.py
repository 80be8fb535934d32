"""The gateway in front of the session's embedded Triton, and InsightFace run in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.ops.servers.triton import EmbeddedTriton

from ..api.conftest import USER_KEY, ServerThread, api_client, gateway_settings
from .oracle import InsightFaceOracle


@pytest.fixture(scope="session")
def gateway_url(triton: EmbeddedTriton) -> Iterator[str]:
    with ServerThread(gateway_settings(triton)) as server:
        yield server.url


@pytest.fixture
def client(gateway_url: str) -> Iterator[httpx.Client]:
    """A client with a user-scope key: everything compared here is a user endpoint."""
    with api_client(gateway_url, USER_KEY) as http:
        yield http


@pytest.fixture(scope="session")
def oracle(tiny_upstream_dir: Path) -> InsightFaceOracle:
    """InsightFace's SCRFD and ArcFaceONNX on the same tiny models, in upstream form."""
    return InsightFaceOracle(tiny_upstream_dir)
