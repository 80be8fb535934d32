"""The short CI version of the load test: tiny models, 20 s at concurrency 4.

It checks that nothing fails and that the machinery works (percentiles for every kind, RSS
samples of both processes, growth computed, the report block). Memory growth gets a generous
bound only: a 20-second run is mostly pools filling up. The bound that matters is checked by
the full run recorded in docs/BENCHMARKS.md (`facegate loadtest --write-report`).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest

from gateway.ops.loadtest import DEFAULT_MIX, LoadOptions, format_text, run_loadtest, write_report
from gateway.ops.loadtest.report import BLOCK_BEGIN, BLOCK_END, format_markdown

DURATION_S = 20.0
GENEROUS_BOUND_MIB = 1024.0


@pytest.mark.integration
def test_short_load_run_has_no_failures_and_samples_memory(tmp_path: Path) -> None:
    options = LoadOptions(
        duration_s=DURATION_S,
        concurrency=4,
        profile="tiny",
        rss_bound_mib=GENEROUS_BOUND_MIB,
        cache_dir=tmp_path / "models",
        progress=False,
    )
    summary = run_loadtest(options, io.StringIO())
    text = format_text(summary, options)

    assert summary.failed == 0, text
    assert summary.requests > 2 * len(DEFAULT_MIX) and summary.throughput_rps > 0
    by_kind = {s.kind: s for s in summary.latencies}
    assert set(by_kind) == {*DEFAULT_MIX, "all"}  # every kind was sent, at least to prime it
    overall = by_kind["all"]
    assert overall.timed > 0 and 0 < overall.p50_ms <= overall.p95_ms <= overall.p99_ms

    # one sample a second after the 5 s warm-up, for the gateway and for Triton's tree
    memory = {m.process: m for m in summary.memory}
    assert set(memory) == {"gateway", "triton"}
    for m in memory.values():
        assert m.samples >= DURATION_S * 0.8 * 0.7, text
        assert 0 < m.min_mib <= m.first_quarter_mib <= m.max_mib
        assert math.isfinite(m.growth_mib)
    assert summary.passed, text
    assert summary.cpu_s["triton"] > 0 and summary.cpu_s["gateway"] > 0

    report = tmp_path / "BENCHMARKS.md"
    write_report(report, format_markdown(summary, options, {"CPU": "test"}, "today", "abc"))
    block = report.read_text().split(BLOCK_BEGIN, 1)[1].split(BLOCK_END, 1)[0]
    assert "p99 ms" in block and "growth MiB" in block and "Verdict: **PASS**" in block
