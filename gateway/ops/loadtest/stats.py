"""From raw records to the verdict: percentiles, failures, memory growth. Pure functions."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

OK = "ok"
MAX_FAILURE_DETAILS = 5


@dataclass(frozen=True)
class RequestRecord:
    """One request: started_s is seconds since the timed run began (negative while priming)."""

    kind: str
    started_s: float
    latency_ms: float
    outcome: str  # OK, or a failure label: "503", "200 wrong body", "transport ReadTimeout"
    detail: str = ""


@dataclass(frozen=True)
class Sample:
    """Resident memory (MiB) per watched process and the 1-minute load average, at t_s."""

    t_s: float
    rss_mib: Mapping[str, float]
    load_1min: float


@dataclass(frozen=True)
class RawRun:
    """What the driver saw. cpu_s: CPU seconds per watched process tree and 'driver', plus
    'machine busy' and 'machine total' (all cores) over the same wall time."""

    records: Sequence[RequestRecord]
    samples: Sequence[Sample]
    elapsed_s: float
    cpu_s: Mapping[str, float]
    cores: int


@dataclass(frozen=True)
class LatencyStats:
    """Per request kind ('all' for every kind): counts over the whole run, percentiles (ms)
    over the successful requests started after warm-up."""

    kind: str
    requests: int
    failed: int
    timed: int
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True)
class MemoryStats:
    """Resident memory of one process (tree) after warm-up, in MiB.

    growth_mib is the median of the last quarter of the post-warm-up samples minus the median
    of their first quarter: a leak shows as steady growth, a transient peak does not.
    """

    process: str
    samples: int
    min_mib: float
    max_mib: float
    first_quarter_mib: float
    last_quarter_mib: float
    growth_mib: float


@dataclass(frozen=True)
class LoadSummary:
    """The verdict of one run and the figures behind it."""

    requests: int
    failures: Mapping[str, int]
    failure_details: Sequence[str]
    elapsed_s: float
    throughput_rps: float
    latencies: Sequence[LatencyStats]
    memory: Sequence[MemoryStats]
    rss_bound_mib: float
    warmup_s: float
    load_1min_median: float
    load_1min_max: float
    cpu_s: Mapping[str, float]
    cores: int

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def memory_within_bound(self) -> bool:
        """Every watched process grew at most the bound (and was sampled at all)."""
        return bool(self.memory) and all(
            m.samples > 0 and m.growth_mib <= self.rss_bound_mib for m in self.memory
        )

    @property
    def passed(self) -> bool:
        return self.failed == 0 and self.memory_within_bound


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def latency_stats(kind: str, records: Sequence[RequestRecord], warmup_s: float) -> LatencyStats:
    """Counts over all records; p50/p95/p99 over successful ones started after warm-up."""
    timed = [r.latency_ms for r in records if r.outcome == OK and r.started_s >= warmup_s]
    failed = sum(r.outcome != OK for r in records)
    return LatencyStats(
        kind,
        len(records),
        failed,
        len(timed),
        _percentile(timed, 50),
        _percentile(timed, 95),
        _percentile(timed, 99),
    )


def memory_stats(process: str, samples: Sequence[Sample], warmup_s: float) -> MemoryStats:
    """Min, max and growth of one process's RSS over the samples taken after warm-up."""
    values = [s.rss_mib[process] for s in samples if s.t_s >= warmup_s and process in s.rss_mib]
    if not values:
        return MemoryStats(process, 0, math.nan, math.nan, math.nan, math.nan, math.nan)
    quarter = max(len(values) // 4, 1)
    first = statistics.median(values[:quarter])
    last = statistics.median(values[-quarter:])
    return MemoryStats(process, len(values), min(values), max(values), first, last, last - first)


def summarize(run: RawRun, warmup_s: float, rss_bound_mib: float) -> LoadSummary:
    """The run's figures; failures count every non-OK request, priming included."""
    kinds = sorted({r.kind for r in run.records})
    by_kind = {kind: [r for r in run.records if r.kind == kind] for kind in kinds}
    latencies = [latency_stats(kind, by_kind[kind], warmup_s) for kind in kinds]
    latencies.append(latency_stats("all", run.records, warmup_s))
    processes = sorted({name for s in run.samples for name in s.rss_mib})
    memory = [memory_stats(name, run.samples, warmup_s) for name in processes]
    failures = Counter(r.outcome for r in run.records if r.outcome != OK)
    details = [f"{r.kind}: {r.outcome} {r.detail}".strip() for r in run.records if r.outcome != OK]
    timed = [r for r in run.records if r.started_s >= 0]
    loads = [s.load_1min for s in run.samples] or [math.nan]
    return LoadSummary(
        requests=len(run.records),
        failures=dict(failures),
        failure_details=details[:MAX_FAILURE_DETAILS],
        elapsed_s=run.elapsed_s,
        throughput_rps=len(timed) / run.elapsed_s if run.elapsed_s > 0 else math.nan,
        latencies=latencies,
        memory=memory,
        rss_bound_mib=rss_bound_mib,
        warmup_s=warmup_s,
        load_1min_median=statistics.median(loads),
        load_1min_max=max(loads),
        cpu_s=dict(run.cpu_s),
        cores=run.cores,
    )
