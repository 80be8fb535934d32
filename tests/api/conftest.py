"""The real gateway (uvicorn on a free port) in front of the session's embedded Triton."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from gateway.app import create_app
from gateway.config import Settings
from gateway.ops.servers.triton import EmbeddedTriton

from ..conftest import REPOSITORY_KEY, free_port


class ServerThread:
    """uvicorn serving an app in a background thread."""

    def __init__(self, settings: Settings) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


USER_KEY = "test-user-key-0123456789"
ADMIN_KEY = "test-admin-key-0123456789"


def gateway_settings(triton: EmbeddedTriton, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "triton_url": triton.grpc_url,
        "api_keys": f"user:{USER_KEY},admin:{ADMIN_KEY}",
        "triton_repository_key": REPOSITORY_KEY,
        "models_label": "synthetic: not a face model",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def gateway_url(triton: EmbeddedTriton) -> Iterator[str]:
    with ServerThread(gateway_settings(triton)) as server:
        yield server.url


def api_client(url: str, key: str = ADMIN_KEY, timeout_s: float = 120) -> httpx.Client:
    """An HTTP client for the gateway that sends an API key."""
    return httpx.Client(base_url=url, timeout=timeout_s, headers={"X-API-Key": key})


@pytest.fixture
def client(gateway_url: str) -> Iterator[httpx.Client]:
    with api_client(gateway_url) as http:
        yield http
