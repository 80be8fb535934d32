"""Generated requests from the gateway's own OpenAPI (schemathesis): no 5xx, ever.

schemathesis' pytest plugin does not run under pytest 9, so its command line runs against
a real gateway in front of the real embedded Triton, once with an admin key and once
without one, with valid and deliberately invalid requests (mode "all").
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.ops.servers.postgres import EmbeddedPostgres
from gateway.ops.servers.triton import EmbeddedTriton

from ..api.conftest import ADMIN_KEY, ServerThread, gateway_settings
from ..gallery.conftest import postgres, wait_for_gallery

__all__ = ["postgres"]  # the session's PostgreSQL fixture, so the gallery routes are fuzzed too

pytestmark = pytest.mark.integration
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def gateway_for_fuzzing(triton: EmbeddedTriton, postgres: EmbeddedPostgres) -> Iterator[str]:
    # A gateway of its own: generated admin calls (unload) must not disturb the shared one.
    settings = gateway_settings(triton, swapper_idle_ttl_s=0, gallery_url=postgres.url())
    with ServerThread(settings) as server:
        wait_for_gallery(server.url)
        yield server.url


@pytest.mark.parametrize(
    "headers", [["-H", f"X-API-Key: {ADMIN_KEY}"], []], ids=["admin", "anonymous"]
)
def test_no_server_errors(gateway_for_fuzzing: str, headers: list[str], tmp_path: Path) -> None:
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{gateway_for_fuzzing}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--mode",
        "all",
        "--max-examples",
        "20",
        "--generation-deterministic",
        "--request-timeout",
        "60",
        *headers,
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path
    )
    report = done.stdout[-4000:] + done.stderr[-2000:]
    assert done.returncode == 0, report
    counts = re.search(r"(\d+) generated, (\d+) passed", report)
    assert counts is not None and int(counts[1]) >= 50 and counts[1] == counts[2], report
