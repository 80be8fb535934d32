"""The run's tables as rows of strings (rendered by gateway.ops.reports)."""

from __future__ import annotations

import math

import numpy as np

from gateway.ops.bench.scenarios import BASELINE, OPENVINO_BASELINE, TUNED
from gateway.ops.bench.summary import BenchReport

Table = tuple[list[str], list[list[str]]]
NO_STAGES = "(not reported: the client runs the pipeline in the caller)"


def _ratio(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f}x"


def _number(value: float, digits: int = 1) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def _vs(value: float, reference: float, is_reference: bool) -> str:
    if is_reference:
        return "baseline"
    return "-" if math.isnan(value) else _ratio(value / reference)


def _references(report: BenchReport) -> tuple[str, ...]:
    """The in-process baselines this run measured (the OpenVINO one on CPU runs only)."""
    names = {scenario.name for scenario in report.scenarios}
    return tuple(n for n in (BASELINE, TUNED, OPENVINO_BASELINE) if n in names)


REFERENCE_LABELS = {BASELINE: "vs defaults", TUNED: "vs tuned", OPENVINO_BASELINE: "vs openvino"}


def latency_table(report: BenchReport) -> Table:
    """p50/p95 at concurrency 1 per image and scenario; p50 ratios to the in-process baselines."""
    baselines = _references(report)
    header = ["image", "scenario", "faces", "p50 ms", "p95 ms"]
    header += [REFERENCE_LABELS[name] for name in baselines]
    rows = []
    for image in report.images:
        references = [report.measurement(name, image.name).percentile_ms(50) for name in baselines]
        for scenario in report.scenarios:
            m = report.measurement(scenario.name, image.name)
            p50 = m.percentile_ms(50)
            ratios = [
                _vs(p50, reference, scenario.name == name)
                for name, reference in zip(baselines, references, strict=True)
            ]
            rows.append(
                [
                    image.name,
                    scenario.name,
                    str(m.faces),
                    _number(p50),
                    _number(m.percentile_ms(95)),
                    *ratios,
                ]
            )
    return header, rows


def throughput_table(report: BenchReport) -> Table:
    """Images/s per concurrency level, then the ratios to both baselines at each level."""
    levels = report.options.concurrency
    header = ["image", "scenario"] + [f"img/s @{c}" for c in levels]
    header += [f"vs defaults @{c}" for c in levels] + [f"vs tuned @{c}" for c in levels]
    rows = []
    for image in report.images:
        for scenario in report.scenarios:
            m = report.measurement(scenario.name, image.name)
            rates = [m.images_per_s(c) for c in levels]
            ratios = []
            for name in (BASELINE, TUNED):
                base = report.measurement(name, image.name)
                ratios += [
                    "-" if math.isnan(r) else _vs(r, base.images_per_s(c), scenario.name == name)
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


def swap_table(report: BenchReport) -> Table:
    """Warm swap calls per side: p50/p95 and the p50 ratios to both in-process sides."""
    header = ["side", "calls", "p50 ms", "p95 ms", "vs defaults", "vs tuned"]
    by_side = {result.side: result for result in report.swap}
    references = [
        by_side[name].percentile_ms(50) if name in by_side else math.nan
        for name in (BASELINE, TUNED)
    ]
    rows = []
    for result in report.swap:
        p50 = result.percentile_ms(50)
        ratios = [
            _vs(p50, reference, result.side == name)
            for name, reference in zip((BASELINE, TUNED), references, strict=True)
        ]
        rows.append(
            [
                result.side,
                str(len(result.calls_ms)),
                _number(p50),
                _number(result.percentile_ms(95)),
                *ratios,
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
