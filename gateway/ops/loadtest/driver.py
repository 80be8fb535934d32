"""The asyncio driver: fixed-concurrency workers, a once-a-second sampler, a progress bar."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

import httpx

from gateway.ops.bench.images import bench_images
from gateway.ops.bench.models import BenchModels, prepare_models
from gateway.ops.bench.options import BenchError, BenchOptions
from gateway.ops.loadtest.kinds import RequestKind, request_kinds
from gateway.ops.loadtest.options import LoadOptions
from gateway.ops.loadtest.stats import OK, LoadSummary, RawRun, RequestRecord, Sample, summarize
from gateway.ops.procfs import find_child, machine_cpu_s, tree_cpu_s, tree_rss_mib
from gateway.ops.servers.stack import running_gateway

log = logging.getLogger(__name__)
DETAIL_CHARS = 200


@dataclass
class _State:
    """The run in progress: the clock origin, the deadline, and what has been recorded."""

    origin: float
    deadline: float
    records: list[RequestRecord] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def failed(self) -> int:
        return sum(r.outcome != OK for r in self.records)


async def _send(client: httpx.AsyncClient, kind: RequestKind, origin: float) -> RequestRecord:
    """Send one request of this kind and classify the answer; never raises for HTTP trouble."""
    started = time.perf_counter()
    try:
        response = await kind.send(client)
    except httpx.HTTPError as exc:
        latency_ms = (time.perf_counter() - started) * 1000
        outcome, detail = f"transport {type(exc).__name__}", str(exc)[:DETAIL_CHARS]
    else:
        latency_ms = (time.perf_counter() - started) * 1000
        if not response.is_success:
            outcome, detail = str(response.status_code), response.text[:DETAIL_CHARS]
        else:
            try:
                problem = kind.check(response)
            except ValueError as exc:  # not JSON where JSON was due
                problem = f"unreadable body: {exc}"
            outcome = f"{response.status_code} wrong body" if problem else OK
            detail = problem
    return RequestRecord(kind.name, started - origin, latency_ms, outcome, detail)


async def _worker(
    state: _State,
    client: httpx.AsyncClient,
    kinds: Mapping[str, RequestKind],
    mix: Mapping[str, int],
    seed: int,
) -> None:
    """Weighted random kinds (seeded per worker, so runs repeat) until the deadline."""
    rng = random.Random(seed)
    names, chances = list(mix), list(mix.values())
    while time.perf_counter() < state.deadline:
        kind = kinds[rng.choices(names, chances)[0]]
        state.records.append(await _send(client, kind, state.origin))


def _rss(watched: Mapping[str, int]) -> dict[str, float]:
    return {name: tree_rss_mib(pid) for name, pid in watched.items()}


async def _sampler(
    state: _State, watched: Mapping[str, int], options: LoadOptions, bar: Any
) -> None:
    """Every sample_interval_s: RSS of each watched tree, the load average, the progress bar."""
    tick, seen = 0, 0
    while not state.done.is_set():
        t_s = time.perf_counter() - state.origin
        rss = await asyncio.to_thread(_rss, watched)
        state.samples.append(Sample(t_s, rss, os.getloadavg()[0]))
        timed = sum(r.started_s >= 0 for r in state.records)
        bar.update(max(min(int(t_s), bar.total) - bar.n, 0))
        memory = ", ".join(f"{name} {mib:.0f} MiB" for name, mib in rss.items())
        rate = (timed - seen) / options.sample_interval_s
        bar.set_postfix_str(f"{rate:.1f} req/s, {state.failed()} failed, {memory}")
        seen = timed
        tick += 1
        wait_s = state.origin + tick * options.sample_interval_s - time.perf_counter()
        try:
            await asyncio.wait_for(state.done.wait(), timeout=max(wait_s, 0.0))
        except TimeoutError:
            continue


def _cpu_now(watched: Mapping[str, int]) -> dict[str, float]:
    times = os.times()
    busy, total = machine_cpu_s()
    cpu = {name: tree_cpu_s(pid) for name, pid in watched.items()}
    return cpu | {"driver": times.user + times.system, "machine busy": busy, "machine total": total}


async def drive(
    url: str,
    api_key: str,
    kinds: Mapping[str, RequestKind],
    watched: Mapping[str, int],
    options: LoadOptions,
    on_start: Callable[[float], None] | None = None,
) -> RawRun:
    """Prime each kind once, then run `concurrency` workers until the deadline.

    on_start hears the perf_counter time at which the timed run begins (records' 0 s).
    """
    from tqdm import tqdm

    # httpx logs every request at INFO; the progress bar says enough.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    limits = httpx.Limits(
        max_connections=options.concurrency, max_keepalive_connections=options.concurrency
    )
    headers = {"X-API-Key": api_key}
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=options.request_timeout_s, limits=limits
    ) as client:
        primed_at = time.perf_counter()
        priming = [await _send(client, kinds[name], primed_at) for name in options.mix]
        origin = time.perf_counter()
        if on_start is not None:
            on_start(origin)
        state = _State(origin, origin + options.duration_s)
        state.records += [replace(r, started_s=r.started_s - (origin - primed_at)) for r in priming]
        cpu_before = _cpu_now(watched)
        bar = tqdm(
            total=int(options.duration_s),
            unit="s",
            disable=not options.progress,
            file=sys.stderr,
            desc=f"loadtest c={options.concurrency}",
        )
        sampler = asyncio.create_task(_sampler(state, watched, options, bar))
        workers = [
            _worker(state, client, kinds, options.mix, options.seed + i)
            for i in range(options.concurrency)
        ]
        await asyncio.gather(*workers)
        elapsed_s = time.perf_counter() - origin
        state.done.set()
        await sampler
        bar.close()
        cpu_after = _cpu_now(watched)
    cpu_s = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
    return RawRun(state.records, state.samples, elapsed_s, cpu_s, os.cpu_count() or 1)


def load_models(options: LoadOptions) -> BenchModels:
    bench_options = BenchOptions(profile=options.profile, cache_dir=options.cache_dir)
    if "swap" in options.mix:
        from gateway.ops.bench.swap import prepare_swapper_models

        return prepare_swapper_models(bench_options)[0]
    return prepare_models(options.cache_dir, options.profile)


def run_loadtest(options: LoadOptions, out: TextIO) -> LoadSummary:
    """Start the embedded stack, drive it for options.duration_s, and summarise the run."""
    out.write(f"preparing {options.profile} synthetic models in {options.cache_dir} ...\n")
    out.flush()
    models = load_models(options)
    small, large = bench_images()
    kinds = request_kinds(small, large)
    with running_gateway(models.repository, models.label) as gateway:
        port = gateway.url.rsplit(":", 1)[1]
        gateway_pid = find_child(os.getpid(), "gateway", "--port", port)
        if not gateway_pid:
            raise BenchError(f"cannot find the gateway process (port {port}) under this one")
        watched = {"gateway": gateway_pid, "triton": gateway.triton_pid}
        out.write(
            f"gateway pid {gateway_pid} at {gateway.url}, Triton {gateway.triton_version} pid "
            f"{gateway.triton_pid} (RSS counts its Python-backend stubs); driving "
            f"{options.concurrency} workers for {options.duration_s:g} s\n"
        )
        out.flush()
        run = asyncio.run(drive(gateway.url, gateway.api_key, kinds, watched, options))
    return summarize(run, options.warmup_s, options.rss_bound_mib)
