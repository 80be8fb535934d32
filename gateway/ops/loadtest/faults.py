"""The load test with a fault schedule, against `facegate serve` (the supervised stack).

`facegate loadtest --faults kill@60,stop@150,stub@240` runs the usual mixed workload, but
against `facegate serve` in a child process, and at each scheduled second injects a fault:

    kill  SIGKILL tritonserver (a crash, an out-of-memory kill)
    stop  SIGSTOP tritonserver (a hang; the supervisor's hang timeout kills it)
    stub  SIGKILL the swapper's Python-backend stub (loaded first if need be)

A fault's window runs from its injection to the end of the first successful request of the
affected kinds started after it (any kind for kill/stop, swap for stub): its time to recover.
Failures outside every window are the run's real failures (goal 0); inside, they are what
the fault cost, reported by status. Resident memory of every process of the stack
(gateway, tritonserver, each stub) is sampled once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from gateway.ops.bench.models import BenchModels
from gateway.ops.bench.options import BenchError
from gateway.ops.loadtest.kinds import RequestKind
from gateway.ops.loadtest.options import LoadOptions
from gateway.ops.loadtest.stats import OK, LoadSummary, RawRun, RequestRecord, summarize
from gateway.ops.procfs import descendants
from gateway.ops.servers.sessions import PYTHON_STUB

FAULT_KINDS = ("kill", "stop", "stub")
HANG_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Fault:
    kind: str
    at_s: float


@dataclass
class InjectedFault:
    """A fault as injected: when (seconds since the timed run began), on which pid."""

    fault: Fault
    injected_s: float
    pid: int
    recovered_s: float | None = None
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def time_to_recover_s(self) -> float | None:
        return None if self.recovered_s is None else self.recovered_s - self.injected_s


def parse_faults(text: str) -> list[Fault]:
    """'kill@60,stop@150' as [Fault('kill', 60.0), Fault('stop', 150.0)], in time order."""
    faults = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, at = item.partition("@")
        if kind not in FAULT_KINDS:
            raise BenchError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        try:
            faults.append(Fault(kind, float(at)))
        except ValueError as exc:
            raise BenchError(f"fault {item!r}: write KIND@SECONDS, e.g. kill@60") from exc
    return sorted(faults, key=lambda f: f.at_s)


def _program(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def stack_processes(serve_pid: int) -> dict[str, int]:
    """Every live process of the stack by label: gateway, tritonserver, stub:<model>."""
    found = {"gateway": serve_pid}
    for pid in descendants(serve_pid):
        args = _program(pid)
        if pid == serve_pid or not args:
            continue
        if args[0].endswith("/tritonserver"):
            found["tritonserver"] = pid
        elif args[0].endswith(PYTHON_STUB) and len(args) > 1:
            found[f"stub:{args[1].rsplit('/', 3)[-3]}"] = pid
    return found


def process_rss_mib(serve_pid: int) -> dict[str, float]:
    """Resident memory of each process of the stack (not of its children), in MiB."""
    rss = {}
    for label, pid in stack_processes(serve_pid).items():
        try:
            with open(f"/proc/{pid}/status") as handle:
                kib = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
        rss[label] = kib / 1024
    return rss


def _inject(fault: Fault, serve_pid: int) -> int:
    processes = stack_processes(serve_pid)
    target = processes.get("stub:swapper" if fault.kind == "stub" else "tritonserver", 0)
    if target:
        os.kill(target, signal.SIGSTOP if fault.kind == "stop" else signal.SIGKILL)
    return target


async def inject_schedule(
    faults: Sequence[Fault],
    serve_pid: int,
    origin: Callable[[], float | None],
    ensure_swapper: Callable[[], Awaitable[object]],
) -> list[InjectedFault]:
    """Inject each fault at its second of the timed run (origin() is its perf_counter start)."""
    injected = []
    while origin() is None:
        await asyncio.sleep(0.1)
    start = origin()
    assert start is not None
    for fault in faults:
        if fault.kind == "stub":
            await ensure_swapper()
        await asyncio.sleep(max(0.0, start + fault.at_s - time.perf_counter()))
        pid = _inject(fault, serve_pid)
        injected.append(InjectedFault(fault, time.perf_counter() - start, pid))
    return injected


def assign_failures(
    records: Sequence[RequestRecord], injected: Sequence[InjectedFault]
) -> Counter[str]:
    """Set each fault's recovery and its failures; returns the failures outside every window."""
    for item in injected:
        affected = [
            r
            for r in records
            if r.started_s >= item.injected_s and (item.fault.kind != "stub" or r.kind == "swap")
        ]
        ends = [r.started_s + r.latency_ms / 1000 for r in affected if r.outcome == OK]
        item.recovered_s = min(ends) if ends else None
    outside: Counter[str] = Counter()
    for record in records:
        if record.outcome == OK:
            continue
        end_s = record.started_s + record.latency_ms / 1000
        owner = next(
            (
                item
                for item in injected
                if end_s >= item.injected_s
                and (item.recovered_s is None or record.started_s <= item.recovered_s)
            ),
            None,
        )
        if owner is None:
            outside[f"{record.kind}: {record.outcome}"] += 1
        else:
            owner.failures[record.outcome] += 1
    return outside


def format_faults(
    injected: Sequence[InjectedFault], outside: Mapping[str, int], rss: Sequence[dict[str, float]]
) -> str:
    """Terminal lines: each fault with its time to recover and cost, then RSS per process."""
    lines = ["", "Faults (time to recover: injection to the first success started after it):"]
    for item in injected:
        ttr = item.time_to_recover_s
        recovered = f"{ttr:.1f} s" if ttr is not None else "NOT RECOVERED"
        cost = ", ".join(f"{k} x{v}" for k, v in sorted(item.failures.items())) or "none"
        lines.append(
            f"  {item.fault.kind}@{item.fault.at_s:g} (pid {item.pid}): recovered in "
            f"{recovered}; failed requests in its window: {cost}"
        )
    total = sum(outside.values())
    lines.append(f"Failures outside the fault windows: {total}")
    lines += [f"  {what} x{count}" for what, count in sorted(outside.items())]
    if rss:
        labels = sorted({label for sample in rss for label in sample})
        lines.append("Resident memory per process (MiB): first sample, max, last sample")
        for label in labels:
            values = [s[label] for s in rss if label in s]
            lines.append(f"  {label}: {values[0]:.0f}, {max(values):.0f}, {values[-1]:.0f}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RunningServe:
    url: str
    api_key: str
    pid: int


@contextlib.contextmanager
def running_serve(models: BenchModels) -> Iterator[RunningServe]:
    """`facegate serve` on the synthetic models, in a child process, until the block ends."""
    from gateway.ops.servers.stack import _free_port, _wait_gateway_ready, stop_child

    port, api_key = _free_port(), secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "FACEGATE_API_KEYS": f"user:{api_key}",
        "FACEGATE_LOG_LEVEL": "WARNING",
        "FACEGATE_DRAIN_S": "0",
    }
    ports = [f"--{name}-port={_free_port()}" for name in ("grpc", "http", "metrics")]
    command = [
        sys.executable, "-m", "gateway.ops.cli", "serve", "--models", "synthetic",
        "--repository", str(models.repository), "--port", str(port),
        "--hang-timeout-s", str(HANG_TIMEOUT_S), "--no-gallery", *ports,
    ]  # fmt: skip
    with tempfile.TemporaryFile() as output:
        child = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_gateway_ready(url, child, output)
            yield RunningServe(url, api_key, child.pid)
        finally:
            stop_child(child)


@dataclass(frozen=True)
class FaultRun:
    """A fault-schedule run: the usual summary, the faults, what failed outside them, RSS."""

    summary: LoadSummary
    injected: Sequence[InjectedFault]
    outside: Mapping[str, int]
    rss: Sequence[dict[str, float]]

    @property
    def passed(self) -> bool:
        """Every fault recovered and nothing failed outside them.

        Memory is reported, not judged: a restarted Triton starts small and grows back, so
        growth over a run with faults says nothing about a leak (the run without faults does).
        """
        recovered = all(item.recovered_s is not None for item in self.injected)
        return recovered and not self.outside


async def _sample_rss(serve_pid: int, into: list[dict[str, float]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        into.append(await asyncio.to_thread(process_rss_mib, serve_pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


async def _drive_with_faults(
    serve: RunningServe,
    kinds: Mapping[str, RequestKind],
    options: LoadOptions,
    faults: Sequence[Fault],
) -> tuple[RawRun, list[InjectedFault], list[dict[str, float]]]:
    import httpx

    from gateway.ops.loadtest.driver import drive

    started: list[float] = []

    async def ensure_swapper() -> object:
        async with httpx.AsyncClient(
            base_url=serve.url, headers={"X-API-Key": serve.api_key}, timeout=120
        ) as client:
            return await kinds["swap"].send(client)

    rss: list[dict[str, float]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(serve.pid, rss, stop))
    injector = asyncio.create_task(
        inject_schedule(faults, serve.pid, lambda: started[0] if started else None, ensure_swapper)
    )
    watched = {"stack": serve.pid}
    run = await drive(serve.url, serve.api_key, kinds, watched, options, on_start=started.append)
    stop.set()
    await sampler
    return run, await injector, rss


def run_fault_loadtest(
    options: LoadOptions,
    faults: Sequence[Fault],
    models: BenchModels,
    kinds: Mapping[str, RequestKind],
    out: TextIO,
) -> FaultRun:
    """Start `facegate serve`, drive it with the fault schedule, and summarise."""
    with running_serve(models) as serve:
        out.write(
            f"facegate serve pid {serve.pid} at {serve.url}; faults: "
            + ", ".join(f"{f.kind}@{f.at_s:g}" for f in faults)
            + f"; driving {options.concurrency} workers for {options.duration_s:g} s\n"
        )
        out.flush()
        run, injected, rss = asyncio.run(_drive_with_faults(serve, kinds, options, faults))
    outside = assign_failures(run.records, injected)
    summary = summarize(run, options.warmup_s, options.rss_bound_mib)
    return FaultRun(summary, injected, outside, rss)
