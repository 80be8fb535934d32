"""Done-when of issue 22 with a real `facegate gateway` process on the session's Triton.

Key A holds 100 slow uploads and floods detect from 16 workers for 30 s while key B makes
sequential detects: every call of B answers 200, and every slow upload is answered or closed
within 90 s. B's p95 under attack against its own idle p50 (same run) is printed with the
load average; it is checked by `facegate loadtest-fairness` (exit 1 beyond 8x), not here: the
test machine is shared and contended (no timed assertions in tests).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from gateway.ops.loadtest.fairness import FairnessOptions, run_fairness
from gateway.ops.servers.triton import EmbeddedTriton

from ..conftest import REPOSITORY_KEY, free_port
from ..images import encode, square_image

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEY_A = "fairness-key-a-0123456789"
KEY_B = "fairness-key-b-0123456789"


@pytest.fixture
def gateway_process(triton: EmbeddedTriton) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "FACEGATE_TRITON_URL": triton.grpc_url,
        "FACEGATE_TRITON_REPOSITORY_KEY": REPOSITORY_KEY,
        "FACEGATE_API_KEYS": f"user/flooder:{KEY_A},user/quiet:{KEY_B}",
        "FACEGATE_LOG_LEVEL": "WARNING",
        "FACEGATE_DET_SIZES": "640",
    }
    command = [sys.executable, "-m", "gateway.ops.cli", "gateway", "--port", str(port)]
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and child.poll() is None, "no gateway"
            time.sleep(0.2)
        yield url
    finally:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def test_one_keys_flood_and_slow_uploads_leave_the_other_key_served(
    gateway_process: str,
) -> None:
    options = FairnessOptions(
        url=gateway_process,
        key_a=KEY_A,
        key_b=KEY_B,
        image=encode(square_image(640, 480, [(320, 240, 96)])),
    )
    result = asyncio.run(run_fairness(options))
    print(result.summary())
    assert set(result.b_statuses) == {"idle 200", "200"}, result.summary()
    assert len(result.attack_ms) >= 5, result.summary()
    assert sum(result.slow_outcomes.values()) == 100
    assert not result.slow_outcomes.get("still open"), result.summary()
    # The uploads past key A's share were refused at once, those within it cut at the body deadline.
    assert set(result.slow_outcomes) <= {"429", "408", "closed"}, result.summary()
    assert result.slow_outcomes["408"] >= 1 and result.slow_outcomes["429"] >= 1
    assert result.flood_statuses["200"] >= 1 and result.flood_statuses["429"] >= 1
