"""`facegate bench --levers`: the gateway's own settings, A/B against each other in one run.

One embedded Triton, and one `facegate gateway` child per variant in front of it (two for
the two-process variant, the client spreading requests over both as the kernel spreads
connections over uvicorn's workers). Every variant gets the same requests through the
benchmark's interleaved rounds, so background load drifts over all of them alike, and
each is reported as a ratio to the defaults. The models' cost is the same for all: what
differs is the gateway's share (threads, processes, decoding).
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from gateway.ops.bench.images import BenchImage, bench_images
from gateway.ops.bench.measure import Measurement, measure
from gateway.ops.bench.models import prepare_models
from gateway.ops.bench.options import BenchOptions
from gateway.ops.bench.scenarios import Outcome, RestDetect, Scenario
from gateway.ops.machine import describe_machine, git_commit, load_average
from gateway.ops.reports import md_table, replace_block, text_table
from gateway.ops.servers.stack import RunningGateway, gateway_process, running_gateway

BEGIN = "<!-- facegate bench --levers: generated block begin -->"
END = "<!-- facegate bench --levers: generated block end -->"
REFERENCE = "defaults"
CONTROL = "defaults again"


@dataclass(frozen=True)
class Lever:
    """A gateway variant: FACEGATE_* settings and how many processes serve it."""

    name: str
    description: str
    env: dict[str, str] = field(default_factory=dict)
    processes: int = 1


LEVERS = (
    Lever(REFERENCE, "one uvicorn process, Settings defaults (cpu_threads 4)"),
    # An A/A control: the same settings in another process. Its distance from 1.00x is
    # what this run cannot resolve; a lever inside that distance has shown nothing.
    Lever(CONTROL, "a second gateway with the defaults (A/A control: its ratio is the noise)"),
    Lever(
        "cpu_threads=1",
        "FACEGATE_CPU_THREADS=1: decode, letterbox and warp of every request on one thread",
        {"FACEGATE_CPU_THREADS": "1"},
    ),
    Lever(
        "2 processes",
        "two gateway processes on one Triton, requests spread over both (uvicorn --workers 2)",
        processes=2,
    ),
    Lever(
        "reduced decode",
        "FACEGATE_REDUCED_DECODE=true: detector frames of large JPEGs from a 1/2-scale decode",
        {"FACEGATE_REDUCED_DECODE": "true"},
    ),
)


class SpreadRest:
    """RestDetect over several gateway processes, round robin (what SO_REUSEPORT would do)."""

    def __init__(self, clients: list[RestDetect]) -> None:
        self._clients = clients
        self._next = itertools.cycle(range(len(clients)))
        self._lock = threading.Lock()

    def __call__(self, jpeg: bytes) -> Outcome:
        with self._lock:
            index = next(self._next)
        return self._clients[index](jpeg)

    def close(self) -> None:
        for client in self._clients:
            client.close()


@dataclass(frozen=True)
class LeverReport:
    options: BenchOptions
    levers: tuple[Lever, ...]
    images: tuple[BenchImage, ...]
    results: dict[tuple[str, str], Measurement]
    date: str
    commit: str
    duration_s: float
    load_start: str
    load_end: str


def _scenario(
    lever: Lever, running: RunningGateway, label: str, stack: contextlib.ExitStack
) -> Scenario:
    clients = []
    for _ in range(lever.processes):
        url = stack.enter_context(gateway_process(running, label, lever.env))
        client = RestDetect(url, running.api_key)
        stack.callback(client.close)
        clients.append(client)
    return Scenario(lever.name, lever.description, SpreadRest(clients))


def run_levers(options: BenchOptions, out: TextIO) -> LeverReport:
    """Start Triton and every variant, measure them in interleaved rounds, print the ratios."""
    started = time.monotonic()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_start = load_average()
    models = prepare_models(options.cache_dir, options.profile, fresh=options.fresh_models)
    images = bench_images()
    with (
        running_gateway(models.repository, models.label) as running,
        contextlib.ExitStack() as stack,
    ):
        scenarios = tuple(_scenario(lever, running, models.label, stack) for lever in LEVERS)
        out.write(f"gateway variants up: {', '.join(s.name for s in scenarios)}\n")
        out.flush()
        results = measure(scenarios, images, options)
    report = LeverReport(
        options,
        LEVERS,
        images,
        results,
        date,
        git_commit(),
        time.monotonic() - started,
        load_start,
        load_average(),
    )
    out.write(format_levers_text(report))
    return report


def _ratio(value: float, reference: float, is_reference: bool) -> str:
    return "reference" if is_reference else f"{value / reference:.2f}x"


def lever_tables(report: LeverReport) -> list[tuple[str, list[str], list[list[str]]]]:
    """(heading, header, rows): latency at concurrency 1 per image, throughput per level."""
    latency = []
    for image in report.images:
        reference = report.results[REFERENCE, image.name].percentile_ms(50)
        for lever in report.levers:
            m = report.results[lever.name, image.name]
            p50 = m.percentile_ms(50)
            rounds = [
                f"{a / b:.2f}"
                for a, b in zip(
                    m.round_percentiles_ms(50),
                    report.results[REFERENCE, image.name].round_percentiles_ms(50),
                    strict=False,
                )
            ]
            latency.append(
                [
                    image.name,
                    lever.name,
                    f"{p50:.1f}",
                    f"{m.percentile_ms(95):.1f}",
                    _ratio(p50, reference, lever.name == REFERENCE),
                    " / ".join(rounds) if lever.name != REFERENCE else "-",
                ]
            )
    sweep = report.images[0].name
    throughput = []
    for level in report.options.concurrency:
        reference = report.results[REFERENCE, sweep].images_per_s(level)
        for lever in report.levers:
            m = report.results[lever.name, sweep]
            rate = m.images_per_s(level)
            rounds = [
                f"{a / b:.2f}"
                for a, b in zip(
                    m.round_images_per_s(level),
                    report.results[REFERENCE, sweep].round_images_per_s(level),
                    strict=False,
                )
            ]
            throughput.append(
                [
                    f"{sweep} c={level}",
                    lever.name,
                    f"{rate:.2f}",
                    _ratio(rate, reference, lever.name == REFERENCE),
                    " / ".join(rounds) if lever.name != REFERENCE else "-",
                ]
            )
    return [
        (
            "Latency at concurrency 1 (p50 ratio to the defaults; lower is better)",
            ["image", "variant", "p50 ms", "p95 ms", "p50 ratio", "per round"],
            latency,
        ),
        (
            "Throughput (images/s ratio to the defaults; higher is better)",
            ["where", "variant", "img/s", "ratio", "per round"],
            throughput,
        ),
    ]


def format_levers_text(report: LeverReport) -> str:
    parts = [f"\n{heading}\n{text_table(h, rows)}" for heading, h, rows in lever_tables(report)]
    parts.append(
        f"\nRun took {report.duration_s:.0f} s; load average at the start {report.load_start}, "
        f"at the end {report.load_end}"
    )
    return "\n".join(parts) + "\n"


def write_levers_report(path: Path, report: LeverReport) -> None:
    """Replace the levers block of the report (between its markers) with this run."""
    machine = describe_machine()
    o = report.options
    lines = [
        BEGIN,
        f"#### Run of {report.date}, commit {report.commit}",
        "",
        f"`facegate bench --levers --requests {o.latency_requests} --throughput-requests "
        f"{o.throughput_requests} --concurrency {','.join(str(c) for c in o.concurrency)} "
        f"--rounds {o.rounds}` ({report.duration_s:.0f} s; {machine['CPU']}, "
        f"{machine['cores']}; load average at the start {report.load_start}, at the end "
        f"{report.load_end}).",
        "",
        *(f"- `{lever.name}`: {lever.description}" for lever in report.levers),
        "",
    ]
    for heading, header, rows in lever_tables(report):
        lines += [f"{heading}:", "", md_table(header, rows), ""]
    lines.append(END)
    replace_block(path, "\n".join(lines), "## Gateway levers (issue 12)")
