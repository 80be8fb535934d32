"""The load test with a fault schedule, against `facegate serve` (the supervised stack).

`facegate loadtest --faults kill@60,stop@150,stub@240` runs the usual mixed workload, but
against `facegate serve` in a child process, and at each scheduled second injects a fault:

    kill    SIGKILL tritonserver (a crash, an out-of-memory kill)
    stop    SIGSTOP tritonserver (a hang; the supervisor's hang timeout kills it)
    stub    SIGKILL the swapper's Python-backend stub (loaded first if need be)
    pgkill  SIGKILL the embedded PostgreSQL's postmaster (its backends follow)
    pgstop  SIGSTOP every process of the embedded PostgreSQL (a hang, e.g. a stalled disk)

With enrol or identify in the mix, serve runs with its embedded PostgreSQL in a fresh
folder and the run enrols into a collection of its own (gallery_load.py).

A fault's window runs from its injection to the end of the first successful request of the
affected kinds started after it (any kind for kill/stop, swap for stub, enrol/identify for
the PostgreSQL faults): its time to recover. Failures outside every window are the run's
real failures (goal 0); inside, they are what the fault cost, reported by status. Resident
memory of every process of the stack (gateway, tritonserver, each stub, the postmaster) is
sampled once a second (rss_growth.py judges it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from gateway.ops.bench.models import BenchModels
from gateway.ops.bench.options import BenchError
from gateway.ops.loadtest.gallery_load import (
    GALLERY_KINDS,
    create_collection,
    inject_postgres_fault,
)
from gateway.ops.loadtest.kinds import RequestKind
from gateway.ops.loadtest.options import LoadOptions
from gateway.ops.loadtest.rss_growth import (
    ProcessMemory,
    RssSample,
    format_memory,
    process_memory,
)
from gateway.ops.loadtest.stats import OK, LoadSummary, RawRun, RequestRecord, summarize
from gateway.ops.procfs import descendants
from gateway.ops.servers.sessions import stub_model

FAULT_KINDS = ("kill", "stop", "stub", "pgkill", "pgstop")
HANG_TIMEOUT_S = 10.0
# Which request kinds a fault's recovery waits for (None: any kind).
AFFECTED: dict[str, tuple[str, ...] | None] = {
    "kill": None,
    "stop": None,
    "stub": ("swap",),
    "pgkill": GALLERY_KINDS,
    "pgstop": GALLERY_KINDS,
}
# A restarted process is left this long (at most) before its growth is measured.
SETTLE_S = 60.0
HEALTH_POLL_S = 0.25
# How long a watcher waits for the fault to show in /health/ready at all.
HEALTH_WATCH_S = 120.0


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
    # When /health/ready said "ready" again after saying otherwise (None: not seen).
    ready_again_s: float | None = None

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


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def stack_processes(serve_pid: int) -> dict[str, int]:
    """Every live process of the stack by label: gateway, tritonserver, stub:<model>, postgres.

    postgres is the postmaster (its backends retitle themselves and come and go).
    """
    found = {"gateway": serve_pid}
    for pid in descendants(serve_pid):
        args = _program(pid)
        if pid == serve_pid or not args:
            continue
        if args[0].endswith("/tritonserver"):
            found["tritonserver"] = pid
        elif args[0].endswith("/postgres") and _parent(pid) == serve_pid:
            # The postmaster; a backend carries the same command line until it retitles.
            found["postgres"] = pid
        elif (model := stub_model(args)) is not None:
            found[f"stub:{model}"] = pid
    return found


def process_rss_mib(serve_pid: int) -> dict[str, tuple[int, float]]:
    """Resident memory of each process of the stack (not of its children): (pid, MiB)."""
    rss = {}
    for label, pid in stack_processes(serve_pid).items():
        try:
            with open(f"/proc/{pid}/status") as handle:
                kib = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            continue
        rss[label] = (pid, kib / 1024)
    return rss


def _inject(fault: Fault, serve_pid: int, gallery_dir: Path | None) -> int:
    if fault.kind in ("pgkill", "pgstop"):
        if gallery_dir is None:
            raise BenchError(f"{fault.kind} needs the gallery: put enrol or identify in --mix")
        return inject_postgres_fault(fault.kind, serve_pid, gallery_dir)
    processes = stack_processes(serve_pid)
    target = processes.get("stub:swapper" if fault.kind == "stub" else "tritonserver", 0)
    if target:
        os.kill(target, signal.SIGSTOP if fault.kind == "stop" else signal.SIGKILL)
    return target


async def watch_health(url: str, item: InjectedFault, start: float) -> None:
    """Set item.ready_again_s: /health/ready fully "ready" after it said otherwise.

    So a fault's window lasts until the supervisor has marked the server up again, not only
    until a first lucky request got through while it was still restarting.
    """
    import httpx

    async def fully_ready(client: httpx.AsyncClient) -> bool:
        try:
            response = await client.get("/health/ready")
            return response.status_code == 200 and response.json().get("status") == "ready"
        except (httpx.HTTPError, ValueError):
            return False

    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        deadline = time.perf_counter() + HEALTH_WATCH_S
        while await fully_ready(client):
            if time.perf_counter() > deadline:
                return
            await asyncio.sleep(HEALTH_POLL_S)
        while not await fully_ready(client):
            await asyncio.sleep(HEALTH_POLL_S)
        item.ready_again_s = time.perf_counter() - start


async def inject_schedule(
    faults: Sequence[Fault],
    serve: RunningServe,
    origin: Callable[[], float | None],
    ensure_swapper: Callable[[], Awaitable[object]],
    watchers: list[asyncio.Task[None]],
) -> list[InjectedFault]:
    """Inject each fault at its second of the timed run (origin() is its perf_counter start).

    Each fault but stub (no restart) gets a health watcher, appended to `watchers`.
    """
    injected = []
    while origin() is None:
        await asyncio.sleep(0.1)
    start = origin()
    assert start is not None
    for fault in faults:
        if fault.kind == "stub":
            await ensure_swapper()
        await asyncio.sleep(max(0.0, start + fault.at_s - time.perf_counter()))
        pid = await asyncio.to_thread(_inject, fault, serve.pid, serve.gallery_dir)
        item = InjectedFault(fault, time.perf_counter() - start, pid)
        injected.append(item)
        if fault.kind != "stub":
            watchers.append(asyncio.create_task(watch_health(serve.url, item, start)))
    return injected


def assign_failures(
    records: Sequence[RequestRecord], injected: Sequence[InjectedFault]
) -> Counter[str]:
    """Set each fault's recovery and its failures; returns the failures outside every window."""
    for item in injected:
        kinds = AFFECTED[item.fault.kind]
        affected = [
            r
            for r in records
            if r.started_s >= item.injected_s and (kinds is None or r.kind in kinds)
        ]
        ends = [r.started_s + r.latency_ms / 1000 for r in affected if r.outcome == OK]
        item.recovered_s = min(ends) if ends else None
        if item.recovered_s is not None and item.ready_again_s is not None:
            item.recovered_s = max(item.recovered_s, item.ready_again_s)
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
    injected: Sequence[InjectedFault], outside: Mapping[str, int], memory: Sequence[ProcessMemory]
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
    if memory:
        lines += format_memory(memory)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class RunningServe:
    url: str
    api_key: str
    pid: int
    gallery_dir: Path | None = None


@contextlib.contextmanager
def _gallery_folder(wanted: bool) -> Iterator[Path | None]:
    """A fresh folder for the embedded PostgreSQL (removed after), or None.

    Not under a 0700 temporary folder: as root, PostgreSQL runs as a system user that must
    traverse the folders above its data folder.
    """
    if not wanted:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="facegate-loadtest-pg-"))
    folder.chmod(0o755)
    try:
        yield folder / "data"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def running_serve(
    models: BenchModels, gallery: bool = False, serve_log: Path | None = None
) -> Iterator[RunningServe]:
    """`facegate serve` on the synthetic models, in a child process, until the block ends.

    gallery: with its embedded PostgreSQL in a fresh folder; the key has the enroll scope.
    serve_log: keep serve's own output (its supervisor's events) in this file.
    """
    from gateway.ops.servers.ports import free_port, free_ports
    from gateway.ops.servers.stack import (
        ONE_KEY_DRIVER_ENV,
        _wait_gateway_ready,
        stop_child,
    )

    port, api_key = free_port(), secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "FACEGATE_API_KEYS": f"enroll:{api_key}",
        "FACEGATE_LOG_LEVEL": "WARNING",
        "FACEGATE_DRAIN_S": "0",
        **ONE_KEY_DRIVER_ENV,
    }
    ports = [
        f"--{name}-port={number}"
        for name, number in zip(("grpc", "http", "metrics"), free_ports(3), strict=True)
    ]
    log_file = open(serve_log, "w+b") if serve_log else tempfile.TemporaryFile()  # noqa: SIM115
    with _gallery_folder(gallery) as gallery_dir, log_file as output:
        where = ["--gallery-dir", str(gallery_dir)] if gallery_dir else ["--no-gallery"]
        command = [
            sys.executable, "-m", "gateway.ops.cli", "serve", "--models", "synthetic",
            "--repository", str(models.repository), "--port", str(port),
            "--hang-timeout-s", str(HANG_TIMEOUT_S), *where, *ports,
        ]  # fmt: skip
        child = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_gateway_ready(url, child, output)
            yield RunningServe(url, api_key, child.pid, gallery_dir)
        finally:
            stop_child(child)


@dataclass(frozen=True)
class FaultRun:
    """A fault-schedule run: the usual summary, the faults, what failed outside them, memory."""

    summary: LoadSummary
    injected: Sequence[InjectedFault]
    outside: Mapping[str, int]
    memory: Sequence[ProcessMemory]

    @property
    def passed(self) -> bool:
        """Every fault recovered and nothing failed outside them."""
        recovered = all(item.recovered_s is not None for item in self.injected)
        return recovered and not self.outside

    @property
    def memory_ok(self) -> bool:
        """No process's last instance grew past the goal after its baseline (rss_growth.py)."""
        return all(m.within_limit for m in self.memory)


async def _sample_rss(
    into: list[tuple[float, dict[str, tuple[int, float]]]], serve_pid: int, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        sample = await asyncio.to_thread(process_rss_mib, serve_pid)
        into.append((time.perf_counter(), sample))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)


async def _wait_collection(serve: RunningServe, name: str) -> None:
    """Create the run's collection once the gallery is connected (serve connects after ready)."""
    deadline = time.monotonic() + 120
    while True:
        try:
            await create_collection(serve.url, serve.api_key, name)
            return
        except BenchError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _drive_with_faults(
    serve: RunningServe,
    kinds: Mapping[str, RequestKind],
    options: LoadOptions,
    faults: Sequence[Fault],
    collection: str,
) -> tuple[RawRun, list[InjectedFault], list[RssSample]]:
    import httpx

    from gateway.ops.loadtest.driver import drive

    started: list[float] = []

    async def ensure_swapper() -> object:
        async with httpx.AsyncClient(
            base_url=serve.url, headers={"X-API-Key": serve.api_key}, timeout=120
        ) as client:
            return await kinds["swap"].send(client)

    if serve.gallery_dir is not None:
        await _wait_collection(serve, collection)
    raw: list[tuple[float, dict[str, tuple[int, float]]]] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(raw, serve.pid, stop))
    watchers: list[asyncio.Task[None]] = []
    injector = asyncio.create_task(
        inject_schedule(
            faults, serve, lambda: started[0] if started else None, ensure_swapper, watchers
        )
    )
    watched = {"stack": serve.pid}
    run = await drive(serve.url, serve.api_key, kinds, watched, options, on_start=started.append)
    stop.set()
    await sampler
    for watcher in watchers:  # a server that never came back: its fault has no ready time
        watcher.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    origin = started[0] if started else 0.0
    return run, await injector, [(t - origin, sample) for t, sample in raw]


def run_fault_loadtest(
    options: LoadOptions,
    faults: Sequence[Fault],
    models: BenchModels,
    kinds: Mapping[str, RequestKind],
    out: TextIO,
    collection: str = "",
) -> FaultRun:
    """Start `facegate serve`, drive it with the fault schedule, and summarise.

    With enrol or identify in the mix, serve gets its embedded PostgreSQL and the run creates
    `collection` (the one those kinds were built for: gallery_load.gallery_kinds).
    """
    gallery = any(kind in options.mix for kind in GALLERY_KINDS)
    with running_serve(models, gallery, options.serve_log) as serve:
        out.write(
            f"facegate serve pid {serve.pid} at {serve.url}; faults: "
            + ", ".join(f"{f.kind}@{f.at_s:g}" for f in faults)
            + f"; driving {options.concurrency} workers for {options.duration_s:g} s\n"
        )
        out.flush()
        run, injected, rss = asyncio.run(
            _drive_with_faults(serve, kinds, options, faults, collection)
        )
    outside = assign_failures(run.records, injected)
    summary = summarize(run, options.warmup_s, options.rss_bound_mib)
    memory = process_memory(rss, options.warmup_s, min(SETTLE_S, options.warmup_s))
    return FaultRun(summary, injected, outside, memory)
