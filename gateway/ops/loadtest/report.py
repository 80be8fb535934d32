"""The run's figures as terminal text and as the generated block of docs/BENCHMARKS.md."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from gateway.ops.loadtest.gallery_load import GALLERY_KINDS
from gateway.ops.loadtest.kinds import KIND_NAMES
from gateway.ops.loadtest.options import LoadOptions
from gateway.ops.loadtest.stats import LoadSummary
from gateway.ops.machine import load_average
from gateway.ops.reports import md_table, replace_block, text_table

BLOCK_BEGIN = "<!-- facegate loadtest: generated block begin -->"
BLOCK_END = "<!-- facegate loadtest: generated block end -->"
SECTION_HEADING = "## Load test (issue 7)"
LATENCY_COLUMNS = ("kind", "requests", "failed", "timed", "p50 ms", "p95 ms", "p99 ms")
MEMORY_COLUMNS = (
    "process",
    "samples",
    "min MiB",
    "max MiB",
    "first-quarter median MiB",
    "last-quarter median MiB",
    "growth MiB",
    "bound MiB",
)
WATCHED = ("gateway", "triton")


def latency_rows(summary: LoadSummary) -> list[list[str]]:
    order = {name: i for i, name in enumerate((*KIND_NAMES, *GALLERY_KINDS, "all"))}
    rows = sorted(summary.latencies, key=lambda s: order.get(s.kind, len(order)))
    return [
        [s.kind, str(s.requests), str(s.failed), str(s.timed)]
        + [f"{v:.1f}" for v in (s.p50_ms, s.p95_ms, s.p99_ms)]
        for s in rows
    ]


def memory_rows(summary: LoadSummary) -> list[list[str]]:
    rows = []
    for m in summary.memory:
        verdict = "within" if m.growth_mib <= summary.rss_bound_mib else "EXCEEDED"
        values = (m.min_mib, m.max_mib, m.first_quarter_mib, m.last_quarter_mib)
        growth = f"{m.growth_mib:+.1f}"
        bound = f"{summary.rss_bound_mib:g} ({verdict})"
        rows.append([m.process, str(m.samples), *(f"{v:.1f}" for v in values), growth, bound])
    return rows


def cpu_line(summary: LoadSummary) -> str:
    """Average cores used by each watched tree, the driver and everything else on the machine."""
    cpu, wall = summary.cpu_s, summary.elapsed_s
    ours = sum(cpu.get(name, 0.0) for name in (*WATCHED, "driver"))
    other = cpu.get("machine busy", 0.0) - ours
    parts = [f"{name} {cpu.get(name, 0.0) / wall:.2f}" for name in (*WATCHED, "driver")]
    busy = cpu.get("machine busy", 0.0) / max(cpu.get("machine total", 0.0), 1e-9)
    return (
        f"CPU, average cores in use over the run: {', '.join(parts)}, other processes "
        f"{max(other, 0.0) / wall:.2f}; the machine's {summary.cores} cores were {busy:.0%} busy"
    )


def verdict_line(summary: LoadSummary) -> str:
    reasons = []
    if summary.failed:
        reasons.append(f"{summary.failed} failed requests")
    if not summary.memory_within_bound:
        reasons.append(f"memory growth beyond {summary.rss_bound_mib:g} MiB (or no samples)")
    return "PASS" if not reasons else "FAIL: " + "; ".join(reasons)


def _failures_text(failures: Mapping[str, int]) -> str:
    return ", ".join(f"{label} x{n}" for label, n in sorted(failures.items())) or "none"


def _summary_lines(summary: LoadSummary, options: LoadOptions) -> list[str]:
    timed = sum(s.requests for s in summary.latencies if s.kind == "all")
    return [
        f"Requests: {timed} ({len(options.mix)} priming requests included), failed: "
        f"{summary.failed} ({_failures_text(summary.failures)}); any non-2xx answer, transport "
        "error or wrong body counts as failed",
        f"Throughput: {summary.throughput_rps:.2f} requests/s over {summary.elapsed_s:.0f} s at "
        f"concurrency {options.concurrency}",
        f"Load average (1 min) during the run: median {summary.load_1min_median:.2f}, max "
        f"{summary.load_1min_max:.2f}",
        cpu_line(summary),
    ]


def format_text(summary: LoadSummary, options: LoadOptions) -> str:
    """The run's figures and verdict for the terminal."""
    parts = [
        "",
        *_summary_lines(summary, options),
        f"\nLatency (percentiles over successful requests after the {summary.warmup_s:.0f} s "
        "warm-up):",
        text_table(LATENCY_COLUMNS, latency_rows(summary)),
        "\nResident memory after warm-up (RSS; Triton includes its Python-backend stubs):",
        text_table(MEMORY_COLUMNS, memory_rows(summary)),
        *(f"  failure: {detail}" for detail in summary.failure_details),
        f"\n{verdict_line(summary)}",
    ]
    return "\n".join(parts) + "\n"


def format_markdown(
    summary: LoadSummary, options: LoadOptions, machine: Mapping[str, str], date: str, commit: str
) -> str:
    """The generated block (markers included)."""
    mix = ", ".join(f"{kind} {weight}" for kind, weight in options.mix.items())
    lines: Sequence[str] = [
        BLOCK_BEGIN,
        f"### Latest run: {date}, commit {commit}",
        "",
        f"Command: `{options.command_line()}`. Load average at the end {load_average()}.",
        "",
        "Machine:",
        "",
        md_table(["", ""], [[k, v] for k, v in machine.items()]),
        "",
        f"Profile {options.profile} (synthetic models, not face models); mix weights: {mix}; "
        f"warm-up: the first {summary.warmup_s:.0f} s; RSS sampled every "
        f"{options.sample_interval_s:g} s.",
        "",
        *(f"- {line}" for line in _summary_lines(summary, options)),
        f"- Verdict: **{verdict_line(summary)}**",
        "",
        "Latency (percentiles over successful requests started after warm-up):",
        "",
        md_table(LATENCY_COLUMNS, latency_rows(summary)),
        "",
        "Resident memory after warm-up (Triton: tritonserver plus its Python-backend stubs):",
        "",
        md_table(MEMORY_COLUMNS, memory_rows(summary)),
        BLOCK_END,
    ]
    return "\n".join(lines)


def write_report(path: Path, block: str) -> None:
    """Replace the generated block (between its markers), or append it under its heading."""
    replace_block(path, block, SECTION_HEADING)
