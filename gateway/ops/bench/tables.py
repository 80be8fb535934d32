"""The run's tables as rows of strings (rendered by gateway.ops.reports)."""

from __future__ import annotations

import math

import numpy as np

from gateway.ops.bench.summary import BenchReport

Table = tuple[list[str], list[list[str]]]
NO_STAGES = "(not reported: the client runs the pipeline in the caller)"


def _ratio(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def _number(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def latency_table(report: BenchReport) -> Table:
    """p50/p95 at concurrency 1 per image and scenario; ratio to the baseline's p50."""
    header = ["image", "scenario", "faces", "p50 ms", "p95 ms", "p50 ratio"]
    baseline = report.scenarios[0].name
    rows = []
    for image in report.images:
        base = report.measurement(baseline, image.name).percentile_ms(50)
        for scenario in report.scenarios:
            m = report.measurement(scenario.name, image.name)
            p50 = m.percentile_ms(50)
            ratio = "baseline" if scenario.name == baseline else _ratio(p50 / base)
            rows.append(
                [
                    image.name,
                    scenario.name,
                    str(m.faces),
                    _number(p50),
                    _number(m.percentile_ms(95)),
                    ratio,
                ]
            )
    return header, rows


def throughput_table(report: BenchReport) -> Table:
    """Images/s per concurrency level, then the ratio to the baseline at each level."""
    levels = report.options.concurrency
    header = ["image", "scenario"]
    header += [f"img/s @{c}" for c in levels] + [f"ratio @{c}" for c in levels]
    baseline = report.scenarios[0].name
    rows = []
    for image in report.images:
        base = report.measurement(baseline, image.name)
        for scenario in report.scenarios:
            m = report.measurement(scenario.name, image.name)
            rates = [m.images_per_s(c) for c in levels]
            if scenario.name == baseline:
                ratios = ["baseline" if not math.isnan(r) else "-" for r in rates]
            else:
                ratios = [
                    "-" if math.isnan(r) else _ratio(r / base.images_per_s(c))
                    for r, c in zip(rates, levels, strict=True)
                ]
            rows.append([image.name, scenario.name, *[_number(r, 2) for r in rates], *ratios])
    return header, rows


def stage_table(report: BenchReport) -> Table:
    """Median stage times per image and scenario, and what lies outside the server's total."""
    rows = []
    for image in report.images:
        for scenario in report.scenarios:
            m = report.measurement(scenario.name, image.name)
            parts = [f"{stage} {ms:.1f}" for stage, ms in m.stage_medians_ms().items()]
            server_total = m.stages_ms.get("server total")
            if server_total:
                outside = np.subtract(m.latencies_ms, server_total)
                parts.append(f"outside the handler {float(np.median(outside)):.1f}")
            stages = ", ".join(parts) or NO_STAGES
            rows.append([image.name, scenario.name, _number(m.percentile_ms(50)), stages])
    return ["image", "scenario", "p50 ms", "stages"], rows


def floor_table(report: BenchReport) -> Table:
    """Faces/s on batches of aligned faces per side; ratio to the first (the floor)."""
    header = ["side", "batch", "batches", "p50 ms per batch", "faces/s", "ratio"]
    rows = []
    for index, result in enumerate(report.floor):
        ratio = result.faces_per_s / report.floor[0].faces_per_s
        rows.append(
            [
                result.side,
                str(result.batch_size),
                str(len(result.batches_ms)),
                _number(float(np.median(result.batches_ms)) if result.batches_ms else math.nan),
                _number(result.faces_per_s),
                "floor" if index == 0 else _ratio(ratio),
            ]
        )
    return header, rows


def target_table(report: BenchReport) -> Table:
    rows = [
        [
            v.target.describe(),
            v.where,
            _ratio(v.ratio),
            " / ".join(f"{r:.2f}" for r in v.round_ratios) or "-",
            v.verdict,
        ]
        for v in report.verdicts
    ]
    return ["target", "where", "ratio", "per round", "verdict"], rows
