"""The short CI version of the soak: the mixed workload with Triton and PostgreSQL faults.

Real processes: `facegate serve` on the tiny synthetic models with its embedded PostgreSQL,
driven by detect, verify, identify, enrol and swap while the schedule SIGKILLs PostgreSQL,
then SIGKILLs Triton. Each fault must recover (the supervisor restarted the server and a
request of the affected kinds succeeded) and nothing may fail outside the fault windows.
Memory is only checked for being sampled per process: a run this short says nothing about
growth (the 30-minute soak in docs/BENCHMARKS.md does).
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from gateway.ops.bench.images import bench_images
from gateway.ops.loadtest.driver import load_models
from gateway.ops.loadtest.faults import format_faults, parse_faults, run_fault_loadtest
from gateway.ops.loadtest.gallery_load import gallery_kinds, new_collection_name
from gateway.ops.loadtest.kinds import request_kinds
from gateway.ops.loadtest.options import LoadOptions
from gateway.ops.loadtest.report import format_text

MIX = {"detect": 2, "verify": 1, "identify": 2, "enrol": 2, "swap": 1}


@pytest.mark.integration
@pytest.mark.gallery
def test_mixed_load_recovers_from_postgres_and_triton_kills(tmp_path: Path) -> None:
    options = LoadOptions(
        duration_s=90.0,
        concurrency=3,
        profile="tiny",
        mix=MIX,
        cache_dir=tmp_path / "models",
        progress=False,
        serve_log=tmp_path / "serve.log",
    )
    faults = parse_faults("pgkill@10,kill@45")
    small, large = bench_images()
    collection = new_collection_name()
    kinds = {**request_kinds(small, large), **gallery_kinds(collection, small)}
    run = run_fault_loadtest(
        options, faults, load_models(options), kinds, io.StringIO(), collection
    )
    text = format_text(run.summary, options) + format_faults(run.injected, run.outside, run.memory)
    print(text)
    log = (tmp_path / "serve.log").read_text()

    assert [item.pid > 0 for item in run.injected] == [True, True], text
    assert run.passed, text + log[-3000:]
    for item in run.injected:
        # Recovery waited for the supervisor: /health/ready said "ready" again.
        assert item.ready_again_s is not None and item.time_to_recover_s is not None, text
    assert "postgres exited unexpectedly (signal SIGKILL)" in log
    assert "triton exited unexpectedly (signal SIGKILL)" in log
    by_kind = {s.kind: s for s in run.summary.latencies}
    assert set(MIX) <= set(by_kind)
    assert all(by_kind[kind].requests > by_kind[kind].failed for kind in MIX), text
    labels = {m.label for m in run.memory}
    assert {"gateway", "tritonserver", "postgres"} <= labels, labels
    assert {m.instances for m in run.memory if m.label in ("postgres", "tritonserver")} == {2}
