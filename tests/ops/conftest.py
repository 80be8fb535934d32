"""Fixtures several tests of the command line and its tooling share."""

from __future__ import annotations

import os
import socket

import pytest

from gateway.ops.perf import (
    PerfAnalyzerMissing,
    check_libraries,
    find_perf_analyzer,
    perf_environment,
)


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def perf_analyzer_ready() -> None:
    """perf_analyzer and its libraries are here; skipped without them unless required (CI)."""
    try:
        check_libraries(find_perf_analyzer(), perf_environment())
    except PerfAnalyzerMissing as exc:
        if os.environ.get("FACEGATE_REQUIRE_PERF_ANALYZER") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
