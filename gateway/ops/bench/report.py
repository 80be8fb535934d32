"""The run's results for the terminal and as the generated block of docs/BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

from gateway.ops.bench.summary import BenchReport
from gateway.ops.bench.tables import (
    floor_table,
    latency_table,
    stage_table,
    swap_table,
    target_table,
    throughput_table,
)
from gateway.ops.machine import load_average
from gateway.ops.reports import md_table, replace_block, text_table

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
    "round, so the difference is below what this run resolves. 'reported': a ratio the "
    "issue asks to see without a bar (throughput at concurrency 16)."
)


def _headings(report: BenchReport) -> dict[str, str]:
    o = report.options
    sweep = ", ".join(str(c) for c in o.sweep) or "none"
    return {
        "latency": f"Latency at concurrency 1 ({o.latency_requests} requests per image and "
        "scenario; p50 ratios to InsightFace in process with onnxruntime's defaults, tuned, "
        "and given OpenVINO where measured)",
        "throughput": f"Throughput (images/s; concurrency 1 is the latency phase; levels {sweep} "
        f"on {report.images[0].name} only, at least {o.throughput_requests} requests per level)",
        "floor": f"Recognizer floor: batches of {report.floor[0].batch_size if report.floor else 0} "
        f"aligned faces, {o.floor_batches} timed batches per side after a checked warm-up",
        "swap": f"Swap, warm calls on {report.images[0].name} ({o.swap_calls} per side after "
        "an untimed one that loads the swapper)",
        "targets": "Goals (issue 28's latency, issue 12's throughput, floor and swap)",
        "stages": "Median stage times (ms)",
    }


def format_text(report: BenchReport) -> str:
    """The results for the terminal."""
    h = _headings(report)
    parts = [
        f"\n{h['latency']}",
        text_table(*latency_table(report)),
        f"\n{h['throughput']}",
        text_table(*throughput_table(report)),
        f"\n{h['floor']}",
        text_table(*floor_table(report)),
        *([f"\n{h['swap']}", text_table(*swap_table(report))] if report.swap else []),
        f"\n{h['targets']}. {VERDICT_NOTE}",
        text_table(*target_table(report)),
        f"\n{h['stages']}. {OUTSIDE_NOTE}",
        text_table(*stage_table(report)),
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
    swap_sides = "\n".join(f"- `{r.side}`: {r.description}" for r in report.swap)
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
        md_table(["", ""], [[k, v] for k, v in report.machine.items()]),
        "",
        "Settings:",
        "",
        md_table(["", ""], [[k, v] for k, v in report.settings.items()]),
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
    if report.swap:
        lines += ["Swap sides:", "", swap_sides, ""]
    if plot:
        lines += [f"![p50 latency and throughput per scenario]({plot})", ""]
    tables = [
        ("latency", latency_table(report)),
        ("throughput", throughput_table(report)),
        ("floor", floor_table(report)),
        *([("swap", swap_table(report))] if report.swap else []),
        ("targets", target_table(report)),
    ]
    for key, table in tables:
        lines += [f"#### {h[key]}", "", md_table(*table), ""]
        if key == "targets":
            lines += [VERDICT_NOTE, ""]
    lines += [f"#### {h['stages']}", "", OUTSIDE_NOTE, "", md_table(*stage_table(report))]
    lines.append(GPU_BLOCK_END if gpu else BLOCK_END)
    return "\n".join(lines)


REPORT_TITLE = "# facegate benchmarks"


def write_report(path: Path, report: BenchReport, plot: bool = True) -> Path | None:
    """Replace the generated block of `path` (created from a template if missing).

    A `--device gpu` run has its own block and plot, so CPU and GPU figures stay apart. With
    `plot`, also writes the plot next to the report and links it; returns the plot's path.
    """
    gpu = report.options.device == "gpu"
    plot_name = GPU_PLOT_NAME if gpu else PLOT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_path = None
    if plot:
        from gateway.ops.bench.plot import write_plot

        plot_path = path.parent / plot_name
        write_plot(plot_path, report)
    block = format_markdown(report, plot_name if plot_path else None)
    replace_block(path, block, "" if path.exists() else REPORT_TITLE)
    return plot_path
