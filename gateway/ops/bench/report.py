"""The run's results for the terminal and as the generated block of docs/BENCHMARKS.md."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from gateway.ops.bench.floor import FloorResult
from gateway.ops.bench.images import BenchImage
from gateway.ops.bench.machine import load_average
from gateway.ops.bench.measure import Measurement, Results
from gateway.ops.bench.options import BenchOptions
from gateway.ops.bench.scenarios import Scenario
from gateway.ops.bench.tables import (
    floor_table,
    latency_table,
    md_rows,
    md_table,
    stage_table,
    target_table,
    text_table,
    throughput_table,
)
from gateway.ops.bench.targets import Verdict, evaluate

BLOCK_BEGIN = "<!-- facegate bench: generated block begin (facegate bench --write-report) -->"
BLOCK_END = "<!-- facegate bench: generated block end -->"
GPU_BLOCK_BEGIN = "<!-- facegate bench --device gpu: generated block begin -->"
GPU_BLOCK_END = "<!-- facegate bench --device gpu: generated block end -->"
PLOT_NAME = "benchmarks.png"
GPU_PLOT_NAME = "benchmarks-gpu.png"
OUTSIDE_NOTE = (
    "'server total' is the route handler's wall time (reading the body and multipart parsing "
    "included); 'outside the handler' is the client's round trip minus it: HTTP, response "
    "serialisation, the client's JSON parsing."
)
VERDICT_NOTE = (
    "'within noise': missed on all requests together, but met in at least one interleaved "
    "round, so the difference is below what this run resolves."
)


@dataclass(frozen=True)
class BenchReport:
    """Everything one run measured, with the machine and settings it ran under."""

    options: BenchOptions
    scenarios: tuple[Scenario, ...]
    images: tuple[BenchImage, ...]
    results: Results
    floor: tuple[FloorResult, ...]
    machine: dict[str, str]
    settings: dict[str, str]
    date: str
    commit: str
    duration_s: float

    def measurement(self, scenario: str, image: str) -> Measurement:
        return self.results[scenario, image]

    @property
    def verdicts(self) -> list[Verdict]:
        return evaluate(self.results, [image.name for image in self.images], self.floor)


def _headings(report: BenchReport) -> dict[str, str]:
    o = report.options
    sweep = ", ".join(str(c) for c in o.sweep) or "none"
    return {
        "latency": f"Latency at concurrency 1 ({o.latency_requests} requests per image and "
        "scenario; ratios to InsightFace in process)",
        "throughput": f"Throughput (images/s; concurrency 1 is the latency phase; levels {sweep} "
        f"on {report.images[0].name} only, at least {o.throughput_requests} requests per level)",
        "floor": f"Recognizer floor: batches of {report.floor[0].batch_size if report.floor else 0} "
        f"aligned faces, {o.floor_batches} timed batches per side after a checked warm-up",
        "targets": "Targets",
        "stages": "Median stage times (ms)",
    }


def format_text(report: BenchReport) -> str:
    """The results for the terminal."""
    h = _headings(report)
    parts = [
        f"\n{h['latency']}",
        text_table(latency_table(report)),
        f"\n{h['throughput']}",
        text_table(throughput_table(report)),
        f"\n{h['floor']}",
        text_table(floor_table(report)),
        f"\n{h['targets']}. {VERDICT_NOTE}",
        text_table(target_table(report)),
        f"\n{h['stages']}. {OUTSIDE_NOTE}",
        text_table(stage_table(report)),
        f"\nRun took {report.duration_s:.0f} s; load average at the end {load_average()}",
    ]
    return "\n".join(parts) + "\n"


def format_markdown(report: BenchReport, plot: str | None = None) -> str:
    """The generated block of docs/BENCHMARKS.md (markers included)."""
    h = _headings(report)
    scenarios = "\n".join(
        f"- `{s.name}`{' (baseline)' if i == 0 else ''}: {s.description}"
        for i, s in enumerate(report.scenarios)
    )
    sides = "\n".join(
        f"- `{r.side}`{' (floor)' if i == 0 else ''}: {r.description}"
        for i, r in enumerate(report.floor)
    )
    gpu = report.options.device == "gpu"
    lines = [
        GPU_BLOCK_BEGIN if gpu else BLOCK_BEGIN,
        f"### Latest run: {report.date}, commit {report.commit}",
        "",
        f"Command: `{report.options.command_line()}` ({report.duration_s:.0f} s; load average "
        f"at the end {load_average()}).",
        "",
        "Machine:",
        "",
        md_rows(["", ""], [[k, v] for k, v in report.machine.items()]),
        "",
        "Settings:",
        "",
        md_rows(["", ""], [[k, v] for k, v in report.settings.items()]),
        "",
        "Scenarios:",
        "",
        scenarios,
        "",
        "Recognizer floor sides:",
        "",
        sides,
        "",
    ]
    if plot:
        lines += [f"![p50 latency and throughput per scenario]({plot})", ""]
    for key, table in (
        ("latency", latency_table(report)),
        ("throughput", throughput_table(report)),
        ("floor", floor_table(report)),
        ("targets", target_table(report)),
    ):
        lines += [f"#### {h[key]}", "", md_table(table), ""]
        if key == "targets":
            lines += [VERDICT_NOTE, ""]
    lines += [f"#### {h['stages']}", "", OUTSIDE_NOTE, "", md_table(stage_table(report))]
    lines.append(GPU_BLOCK_END if gpu else BLOCK_END)
    return "\n".join(lines)


REPORT_TEMPLATE = f"""# facegate benchmarks

{BLOCK_BEGIN}
{BLOCK_END}
"""


def write_report(path: Path, report: BenchReport, plot: bool = True) -> Path | None:
    """Replace the generated block of `path` (created from a template if missing).

    A `--device gpu` run has its own block and plot, so CPU and GPU figures stay apart. With
    `plot`, also writes the plot next to the report and links it; returns the plot's path.
    """
    gpu = report.options.device == "gpu"
    begin, end = (GPU_BLOCK_BEGIN, GPU_BLOCK_END) if gpu else (BLOCK_BEGIN, BLOCK_END)
    plot_name = GPU_PLOT_NAME if gpu else PLOT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_path = None
    if plot:
        from gateway.ops.bench.plot import write_plot

        plot_path = path.parent / plot_name
        write_plot(plot_path, report)
    text = path.read_text() if path.exists() else REPORT_TEMPLATE
    block = format_markdown(report, plot_name if plot_path else None)
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
    return plot_path
