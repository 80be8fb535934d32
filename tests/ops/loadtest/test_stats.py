"""The load test's verdict from raw records: percentiles, failures, memory growth, report."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gateway.ops.bench.options import BenchError
from gateway.ops.cli import main
from gateway.ops.loadtest import DEFAULT_MIX, LoadOptions, parse_mix, summarize
from gateway.ops.loadtest.kinds import KIND_NAMES
from gateway.ops.loadtest.report import BLOCK_BEGIN, BLOCK_END, SECTION_HEADING, write_report
from gateway.ops.loadtest.stats import OK, RawRun, RequestRecord, Sample, memory_stats


def _samples(values: list[float], process: str = "triton") -> list[Sample]:
    return [Sample(float(t), {process: v}, 1.0) for t, v in enumerate(values)]


def test_steady_growth_is_measured_and_a_warm_up_ramp_is_not() -> None:
    ramp = [100.0 + 50 * t for t in range(20)]  # 0..19 s: warm-up, ignored
    leak = [1100.0 + 2 * t for t in range(80)]  # 20..99 s: 2 MiB/s
    stats = memory_stats("triton", _samples(ramp + leak), warmup_s=20)
    assert stats.samples == 80
    assert (stats.min_mib, stats.max_mib) == (1100.0, 1100.0 + 2 * 79)
    # medians of samples 0..19 and 60..79 of the post-warm-up series: 60 samples apart
    assert stats.growth_mib == pytest.approx(2 * 60)


def test_a_sawtooth_without_a_trend_does_not_count_as_growth() -> None:
    saw = [500.0 + (40 if t % 5 == 0 else 0) for t in range(100)]
    assert memory_stats("gateway", _samples(saw, "gateway"), warmup_s=0).growth_mib == 0


def test_no_samples_after_warm_up_fail_the_memory_check() -> None:
    stats = memory_stats("gateway", _samples([1.0, 2.0], "gateway"), warmup_s=10)
    assert stats.samples == 0 and math.isnan(stats.growth_mib)
    run = RawRun([RequestRecord("detect", 0.0, 5.0, OK)], _samples([1.0, 2.0]), 1.0, {}, 2)
    summary = summarize(run, warmup_s=10, rss_bound_mib=64)
    assert summary.failed == 0 and not summary.memory_within_bound and not summary.passed


def test_failures_count_priming_and_percentiles_skip_warm_up_and_failures() -> None:
    records = [
        RequestRecord("swap", -1.0, 9000.0, "503", "loading"),  # priming
        RequestRecord("detect", 1.0, 1000.0, OK),  # warm-up: not in percentiles
        *(RequestRecord("detect", 10.0 + i, float(i + 1), OK) for i in range(100)),
        RequestRecord("detect", 50.0, 5.0, "transport ReadTimeout"),
    ]
    run = RawRun(records, _samples([10.0] * 40), 100.0, {}, 2)
    summary = summarize(run, warmup_s=5, rss_bound_mib=64)
    assert summary.failures == {"503": 1, "transport ReadTimeout": 1}
    assert summary.failed == 2 and not summary.passed
    detect = next(s for s in summary.latencies if s.kind == "detect")
    assert (detect.requests, detect.failed, detect.timed) == (102, 1, 100)
    assert detect.p50_ms == pytest.approx(50.5) and detect.p99_ms == pytest.approx(99.01)
    assert summary.throughput_rps == pytest.approx(102 / 100)  # priming is not timed


def test_parse_mix() -> None:
    assert parse_mix("detect=3, swap", KIND_NAMES) == {"detect": 3, "swap": 1}
    assert parse_mix("detect=2,verify=0", KIND_NAMES) == {"detect": 2}
    for bad in ("selfie", "detect=x", "detect=-1", "detect=0", ""):
        with pytest.raises(BenchError):
            parse_mix(bad, KIND_NAMES)
    assert set(DEFAULT_MIX) == set(KIND_NAMES)


def test_cli_refuses_an_unknown_kind_before_starting_anything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["loadtest", "--mix", "detect,selfie"]) == 2
    assert "selfie" in capsys.readouterr().err


def test_command_line_repeats_the_options() -> None:
    options = LoadOptions(duration_s=30, concurrency=4, mix={"detect": 2, "swap": 1})
    assert options.command_line() == (
        "facegate loadtest --profile tiny --duration-s 30 --concurrency 4 "
        "--mix detect=2,swap=1 --rss-bound-mib 64"
    )
    assert options.warmup_s == 6


def test_report_block_replaces_only_its_markers(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    write_report(path, f"{BLOCK_BEGIN}\nfirst\n{BLOCK_END}")
    assert path.read_text().count(SECTION_HEADING) == 1
    path.write_text(path.read_text().replace(SECTION_HEADING, f"{SECTION_HEADING}\n\nhand text"))
    path.write_text(path.read_text() + "\n## After\n")
    write_report(path, f"{BLOCK_BEGIN}\nsecond\n{BLOCK_END}")
    text = path.read_text()
    assert "second" in text and "first" not in text
    assert "hand text" in text and text.rstrip().endswith("## After")
