"""The run's results as a terminal table and as the generated block of docs/BENCHMARKS.md."""

from __future__ import annotations

import math
import os
import platform
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from .images import BenchImage
from .measure import Measurement, Results
from .options import BenchOptions
from .scenarios import Scenario

BLOCK_BEGIN = "<!-- facegate bench: generated block begin (facegate bench --write-report) -->"
BLOCK_END = "<!-- facegate bench: generated block end -->"
OUTSIDE_NOTE = (
    "'server total' is the route handler's wall time (reading the body and multipart parsing "
    "included); 'outside the handler' is the client's round trip minus it: HTTP, response "
    "serialisation, the client's JSON parsing."
)
COLUMNS = (
    "image",
    "scenario",
    "faces",
    "p50 ms",
    "p95 ms",
    "img/s @{c}",
    "p50 ratio",
    "throughput ratio",
)


@dataclass(frozen=True)
class BenchReport:
    """Everything one run measured, with the machine and settings it ran under."""

    options: BenchOptions
    scenarios: tuple[Scenario, ...]
    images: tuple[BenchImage, ...]
    results: Results
    machine: dict[str, str]
    settings: dict[str, str]
    date: str
    commit: str
    duration_s: float

    def measurement(self, scenario: str, image: str) -> Measurement:
        return self.results[scenario, image]


def describe_machine() -> dict[str, str]:
    """CPU model, cores, memory, OS, Python and library versions, current load."""
    cpuinfo = _read("/proc/cpuinfo")
    cpu_models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    cores = {
        (block.get("physical id"), block.get("core id"))
        for block in (
            dict(re.findall(r"^([\w ]+?)\s*:\s*(.*)$", chunk, re.M))
            for chunk in cpuinfo.split("\n\n")
        )
        if "core id" in block
    }
    mem_kb = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    os_name = re.search(r'^PRETTY_NAME="?([^"\n]+)', _read("/etc/os-release"), re.M)
    return {
        "CPU": cpu_models[0] if cpu_models else platform.processor() or "unknown",
        "cores": f"{os.cpu_count()} logical, {len(cores) or 'unknown'} physical",
        "memory": f"{int(mem_kb.group(1)) / 1024**2:.1f} GiB" if mem_kb else "unknown",
        "OS": f"{os_name.group(1) if os_name else platform.system()}, kernel {platform.release()}",
        "Python": platform.python_version(),
        "onnxruntime": _version("onnxruntime"),
        "insightface": _version("insightface"),
        "nvidia-pytriton": _version("nvidia-pytriton"),
        "load average at start (1/5/15 min)": load_average(),
    }


def load_average() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_commit() -> str:
    """Short HEAD commit, marked when tracked files have uncommitted changes."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} + uncommitted changes" if dirty else head


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def _ratio_cell(value: float, limit: float | None, at_most: bool) -> str:
    if math.isnan(value):
        return "n/a"
    if limit is None:
        return f"{value:.2f}x"
    met = value <= limit if at_most else value >= limit
    sign = "<=" if at_most else ">="
    return f"{value:.2f}x {'met' if met else 'MISSED'} ({sign} {limit:.2f})"


def table_rows(report: BenchReport) -> list[list[str]]:
    """One row per image and scenario; ratios are to the first (baseline) scenario."""
    baseline = report.scenarios[0]
    rows = []
    for image in report.images:
        base = report.measurement(baseline.name, image.name)
        for scenario in report.scenarios:
            m = report.measurement(scenario.name, image.name)
            is_base = scenario is baseline
            p50_ratio = m.percentile_ms(50) / base.percentile_ms(50)
            tput_ratio = m.images_per_s / base.images_per_s
            rows.append(
                [
                    image.name,
                    scenario.name,
                    str(m.faces),
                    f"{m.percentile_ms(50):.1f}",
                    f"{m.percentile_ms(95):.1f}",
                    f"{m.images_per_s:.2f}",
                    "baseline" if is_base else _ratio_cell(p50_ratio, scenario.p50_ratio_max, True),
                    "baseline"
                    if is_base
                    else _ratio_cell(tput_ratio, scenario.throughput_ratio_min, False),
                ]
            )
    return rows


def stage_rows(report: BenchReport) -> list[list[str]]:
    """Median stage times per image and scenario, and what lies outside the server's own total."""
    rows = []
    for image in report.images:
        for scenario in report.scenarios:
            m = report.measurement(scenario.name, image.name)
            parts = [f"{stage} {ms:.1f}" for stage, ms in m.stage_medians_ms().items()]
            server_total = m.stages_ms.get("server total")
            if server_total:
                outside = np.subtract(m.latencies_ms, server_total)
                parts.append(f"outside the handler {float(np.median(outside)):.1f}")
            rows.append([image.name, scenario.name, f"{m.percentile_ms(50):.1f}", ", ".join(parts)])
    return rows


def _columns(report: BenchReport) -> list[str]:
    return [c.format(c=report.options.concurrency) for c in COLUMNS]


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def settings_lines(report: BenchReport) -> list[str]:
    return [f"{key}: {value}" for key, value in report.settings.items()]


def format_text(report: BenchReport) -> str:
    """The results for the terminal."""
    o = report.options
    parts = [
        f"\nLatency: {o.latency_requests} requests at concurrency 1; throughput: "
        f"{o.throughput_requests} requests at concurrency {o.concurrency} "
        f"({o.rounds} interleaved rounds, {o.warmup} warm-up)",
        _text_table(_columns(report), table_rows(report)),
        f"\nMedian stage times (ms). {OUTSIDE_NOTE}",
        _text_table(["image", "scenario", "p50 ms", "stages"], stage_rows(report)),
        f"\nRun took {report.duration_s:.0f} s; load average at the end {load_average()}",
    ]
    return "\n".join(parts) + "\n"


def format_markdown(report: BenchReport) -> str:
    """The generated block of docs/BENCHMARKS.md (markers included)."""
    machine = _md_table(["", ""], [[k, v] for k, v in report.machine.items()])
    settings = _md_table(["", ""], [[k, v] for k, v in report.settings.items()])
    scenarios = "\n".join(
        f"- `{s.name}`{' (baseline)' if i == 0 else ''}: {s.description}"
        for i, s in enumerate(report.scenarios)
    )
    o = report.options
    return "\n".join(
        [
            BLOCK_BEGIN,
            f"### Latest run: {report.date}, commit {report.commit}",
            "",
            f"Command: `{o.command_line()}` ({report.duration_s:.0f} s; load average at the end "
            f"{load_average()}).",
            "",
            "Machine:",
            "",
            machine,
            "",
            "Settings:",
            "",
            settings,
            "",
            "Scenarios:",
            "",
            scenarios,
            "",
            f"#### Latency at concurrency 1 ({o.latency_requests} requests) and throughput at "
            f"concurrency {o.concurrency} ({o.throughput_requests} requests)",
            "",
            _md_table(_columns(report), table_rows(report)),
            "",
            "#### Median stage times (ms)",
            "",
            OUTSIDE_NOTE,
            "",
            _md_table(["image", "scenario", "p50 ms", "stages"], stage_rows(report)),
            BLOCK_END,
        ]
    )


REPORT_TEMPLATE = f"""# facegate benchmarks

{BLOCK_BEGIN}
{BLOCK_END}
"""


def write_report(path: Path, report: BenchReport) -> None:
    """Replace the generated block of `path` (created from a template if missing)."""
    text = path.read_text() if path.exists() else REPORT_TEMPLATE
    block = format_markdown(report)
    pattern = re.compile(re.escape(BLOCK_BEGIN) + r".*?" + re.escape(BLOCK_END), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
