"""The report's figure: p50 latency bars, throughput against concurrency, the recognizer floor."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gateway.ops.bench.summary import BenchReport

FIGURE_SIZE_IN = (15.0, 4.6)
DPI = 110


def write_plot(path: Path, report: BenchReport) -> None:
    """A PNG with three panels, drawn off-screen (matplotlib's Agg canvas, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    latency, throughput, floor = figure.subplots(1, 3)
    names = [s.name for s in report.scenarios]
    width = 0.8 / len(names)
    positions = np.arange(len(report.images))
    for index, name in enumerate(names):
        p50 = [report.measurement(name, i.name).percentile_ms(50) for i in report.images]
        p95 = [report.measurement(name, i.name).percentile_ms(95) for i in report.images]
        for x, low, high in zip(positions + index * width, p50, p95, strict=True):
            latency.vlines(x, low, high, colors="black", linewidth=1, zorder=3)
        latency.bar(positions + index * width, p50, width, label=name)
    latency.set_xticks(positions + width * (len(names) - 1) / 2, [i.name for i in report.images])
    latency.set_ylabel("ms per image (bar p50, whisker p95)")
    latency.set_title("Latency at concurrency 1")
    latency.legend(fontsize="small")

    sweep_image = report.images[0].name
    levels = report.options.concurrency
    for name in names:
        measurement = report.measurement(name, sweep_image)
        rates = [measurement.images_per_s(c) for c in levels]
        throughput.plot(levels, rates, marker="o", label=name)
    throughput.set_xscale("log", base=2)
    throughput.set_xticks(levels, [str(c) for c in levels])
    throughput.set_xlabel("concurrency (client threads)")
    throughput.set_ylabel("images/s")
    throughput.set_ylim(bottom=0)
    throughput.set_title(f"Throughput, {sweep_image}")
    throughput.legend(fontsize="small")

    sides = [r.side for r in report.floor]
    bars = floor.bar(range(len(sides)), [r.faces_per_s for r in report.floor], color="tab:gray")
    floor.bar_label(bars, fmt="%.1f")
    floor.set_xticks(range(len(sides)), sides)
    floor.set_ylabel("faces/s")
    batch = report.floor[0].batch_size if report.floor else 0
    floor.set_title(f"Recognizer, batches of {batch} aligned faces")
    figure.suptitle(
        f"facegate bench on {report.options.device.upper()} ({report.options.profile} synthetic "
        "models, NOT face models), "
        f"{report.machine.get('CPU', '?')}, {report.date}",
        fontsize="medium",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
