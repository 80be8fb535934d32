"""A gateway with both compatibility protocols enabled, in front of the session's Triton."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.ops.servers.triton import EmbeddedTriton

from ...images import encode, square_image
from ..conftest import ADMIN_KEY, ServerThread, api_client, gateway_settings

# Squares the tiny synthetic detector finds exactly (side 4*stride on the stride grid).
SQUARES = [(240, 128, 64), (96, 400, 32), (480, 320, 128)]
IMMICH_PREFIX = "/immich"


@dataclass(frozen=True)
class CompatGateway:
    url: str
    images_dir: Path


@pytest.fixture(scope="session")
def compat_images_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("compat-images")
    (folder / "squares.png").write_bytes(encode(square_image(640, 480, SQUARES)))
    (folder / "nested").mkdir()
    (folder / "nested" / "one.jpg").write_bytes(
        encode(square_image(320, 320, [(160, 160, 64)]), ".jpg")
    )
    return folder


@pytest.fixture(scope="session")
def compat_gateway(triton: EmbeddedTriton, compat_images_dir: Path) -> Iterator[CompatGateway]:
    settings = gateway_settings(
        triton,
        compat="ifr,immich",
        compat_images_dir=compat_images_dir,
        compat_immich_prefix=IMMICH_PREFIX,
        compat_url_hosts="127.0.0.1",
    )
    with ServerThread(settings) as server:
        yield CompatGateway(server.url, compat_images_dir)


@pytest.fixture
def plain(compat_gateway: CompatGateway) -> Iterator[httpx.Client]:
    """No API key: what InsightFace-REST and Immich clients send."""
    with httpx.Client(base_url=compat_gateway.url, timeout=120) as http:
        yield http


@pytest.fixture
def keyed(compat_gateway: CompatGateway) -> Iterator[httpx.Client]:
    """The same gateway with a key, for the /v1/detect cross-checks."""
    with api_client(compat_gateway.url, ADMIN_KEY) as http:
        yield http
