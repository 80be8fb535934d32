"""Graceful shutdown of a real `facegate gateway` process: in-flight requests finish, new ones get 503."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from gateway.ops.servers.triton import EmbeddedTriton

from ..api.conftest import ADMIN_KEY, USER_KEY
from ..conftest import REPOSITORY_KEY, free_port
from ..images import encode, square_image

pytestmark = pytest.mark.integration


def test_sigterm_drains_then_exits(triton: EmbeddedTriton) -> None:
    port = free_port()
    env = {
        **os.environ,
        "FACEGATE_TRITON_URL": triton.grpc_url,
        "FACEGATE_TRITON_REPOSITORY_KEY": REPOSITORY_KEY,
        "FACEGATE_API_KEYS": f"user:{USER_KEY},admin:{ADMIN_KEY}",
        "FACEGATE_DRAIN_S": "3",
        "FACEGATE_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "gateway.ops.cli", "gateway", "--port", str(port)]
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    headers = {"X-API-Key": USER_KEY}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        slow = [("images", encode(square_image(3000, 3000, [(1500, 1500, 600)]))) for _ in range(8)]
        outcome: dict[str, int] = {}

        def in_flight() -> None:
            response = httpx.post(
                f"{url}/v1/detect/batch", files=slow, headers=headers, timeout=120
            )
            outcome["status"] = response.status_code

        worker = threading.Thread(target=in_flight)
        worker.start()
        time.sleep(0.5)
        child.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        refused = httpx.post(
            f"{url}/v1/detect", files={"image": encode(square_image(64, 64, []))}, headers=headers
        )
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert httpx.get(f"{url}/health/ready").status_code == 503
        worker.join(timeout=120)
        assert outcome["status"] == 200
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert child.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
