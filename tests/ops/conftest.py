"""Fixtures several tests of the command line and its tooling share."""

from __future__ import annotations

import os

import pytest

from gateway.ops.perf import (
    PerfAnalyzerMissing,
    check_libraries,
    find_perf_analyzer,
    perf_environment,
)
from gateway.ops.servers.ports import free_port


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on (bound once, then released)."""
    return free_port()


@pytest.fixture(scope="module")
def perf_analyzer_ready() -> None:
    """perf_analyzer and its libraries are here; skipped without them unless required (CI)."""
    try:
        check_libraries(find_perf_analyzer(), perf_environment())
    except PerfAnalyzerMissing as exc:
        if os.environ.get("FACEGATE_REQUIRE_PERF_ANALYZER") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
