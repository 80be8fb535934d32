"""Warm-up, latency at concurrency 1 and throughput at each concurrency, per scenario and image."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from gateway.ops.bench.images import BenchImage
from gateway.ops.bench.options import BenchError, BenchOptions
from gateway.ops.bench.scenarios import Outcome, Scenario

# Concurrent warm-up calls (capped: on 2 cores 16 untimed requests cost more than they teach).
WARMUP_CONCURRENCY_MAX = 4


@dataclass
class Measurement:
    """Samples of one scenario on one image, kept per interleaved round.

    throughput: concurrency -> (requests, seconds) per round; concurrency 1 is the latency
    phase (its requests over its wall time).
    """

    scenario: str
    image: str
    faces: int
    latency_rounds_ms: list[list[float]] = field(default_factory=list)
    throughput: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    stages_ms: dict[str, list[float]] = field(default_factory=dict)

    @property
    def latencies_ms(self) -> list[float]:
        return [ms for chunk in self.latency_rounds_ms for ms in chunk]

    def percentile_ms(self, q: float) -> float:
        latencies = self.latencies_ms
        return float(np.percentile(latencies, q)) if latencies else math.nan

    def round_percentiles_ms(self, q: float) -> list[float]:
        return [float(np.percentile(chunk, q)) for chunk in self.latency_rounds_ms if chunk]

    def images_per_s(self, concurrency: int) -> float:
        chunks = self.throughput.get(concurrency, [])
        seconds = sum(s for _, s in chunks)
        return sum(n for n, _ in chunks) / seconds if seconds else math.nan

    def round_images_per_s(self, concurrency: int) -> list[float]:
        return [n / s for n, s in self.throughput.get(concurrency, []) if s]

    def stage_medians_ms(self) -> dict[str, float]:
        return {stage: float(np.median(values)) for stage, values in self.stages_ms.items()}

    def check(self, outcome: Outcome) -> None:
        if outcome.faces != self.faces:
            raise BenchError(
                f"{self.scenario} found {outcome.faces} faces on {self.image}, "
                f"{self.faces} during warm-up"
            )

    def add_latency(self, outcome: Outcome, latency_ms: float) -> None:
        self.check(outcome)
        self.latency_rounds_ms[-1].append(latency_ms)
        for stage, value in outcome.stages_ms.items():
            self.stages_ms.setdefault(stage, []).append(value)


Results = Mapping[tuple[str, str], Measurement]


class Progress:
    """A tqdm bar on stderr (or nothing), advanced once per timed request or batch."""

    def __init__(self, total: int, enabled: bool, unit: str = "req") -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, disable=not enabled, file=sys.stderr, unit=unit)

    def phase(self, text: str) -> None:
        self._bar.set_description(text, refresh=True)

    def step(self) -> None:
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


def split_evenly(total: int, parts: int) -> list[int]:
    """`total` as `parts` integers that differ by at most one."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def throughput_chunks(options: BenchOptions, concurrency: int) -> list[int]:
    """Requests per round at a level above 1: at least `concurrency`, so every worker is busy."""
    return [max(n, concurrency) for n in split_evenly(options.throughput_requests, options.rounds)]


def time_in_rounds(
    calls: Sequence[tuple[str, Callable[[], object]]], chunks: Sequence[int], bar: Progress
) -> list[list[list[float]]]:
    """ms of sequential calls per (label, call), per round; rounds alternate the order.

    Round r runs chunks[r] calls of each in turn, the order reversed every other round so
    that drifting background load is spread over all of them. Returns, per call, its
    rounds' samples (a round with no calls is left out).
    """
    rounds_ms: list[list[list[float]]] = [[] for _ in calls]
    for round_index, count in enumerate(chunks):
        order = list(range(len(calls)))
        for index in order if round_index % 2 == 0 else reversed(order):
            label, call = calls[index]
            bar.phase(label)
            chunk = []
            for _ in range(count):
                started = time.perf_counter()
                call()
                chunk.append((time.perf_counter() - started) * 1000)
                bar.step()
            if chunk:
                rounds_ms[index].append(chunk)
    return rounds_ms


def planned_requests(options: BenchOptions, images: int) -> int:
    """Timed requests per scenario over all images (the progress bar's unit)."""
    sweep = sum(sum(throughput_chunks(options, c)) for c in options.sweep)
    return images * options.latency_requests + (sweep if images else 0)


def _warm_up(scenario: Scenario, image: BenchImage, options: BenchOptions, concurrent: int) -> int:
    """Sequential, then concurrent calls; returns the face count they all agree on."""
    counts = {scenario.run(image.jpeg).faces for _ in range(max(options.warmup, 1))}
    if concurrent > 1:
        with ThreadPoolExecutor(concurrent) as pool:
            jobs = [pool.submit(scenario.run, image.jpeg) for _ in range(concurrent)]
            counts |= {job.result().faces for job in jobs}
    if len(counts) != 1:
        raise BenchError(f"{scenario.name} found varying face counts on {image.name}: {counts}")
    return counts.pop()


def _time_latency(
    scenario: Scenario, image: BenchImage, count: int, into: Measurement, bar: Progress
) -> None:
    if count == 0:
        return
    into.latency_rounds_ms.append([])
    phase_started = time.perf_counter()
    for _ in range(count):
        started = time.perf_counter()
        outcome = scenario.run(image.jpeg)
        into.add_latency(outcome, (time.perf_counter() - started) * 1000)
        bar.step()
    into.throughput.setdefault(1, []).append((count, time.perf_counter() - phase_started))


def _time_throughput(
    scenario: Scenario,
    image: BenchImage,
    count: int,
    concurrency: int,
    into: Measurement,
    bar: Progress,
) -> None:
    """`count` requests through `concurrency` workers, each starting as soon as one ends."""
    if count == 0:
        return

    def one() -> None:
        into.check(scenario.run(image.jpeg))
        bar.step()

    with ThreadPoolExecutor(concurrency) as pool:
        started = time.perf_counter()
        for job in [pool.submit(one) for _ in range(count)]:
            job.result()
        elapsed = time.perf_counter() - started
    into.throughput.setdefault(concurrency, []).append((count, elapsed))


def measure(
    scenarios: Sequence[Scenario], images: Sequence[BenchImage], options: BenchOptions
) -> dict[tuple[str, str], Measurement]:
    """Measurements keyed by (scenario name, image name).

    Per image: every scenario warms up, then the timed requests run in `rounds` interleaved
    chunks (scenario order reversed every other round) so that drifting background load is
    spread over all scenarios instead of landing on one. Latency (concurrency 1) runs on
    every image; the levels above 1 run on the first image only.
    """
    bar = Progress(len(scenarios) * planned_requests(options, len(images)), options.progress)
    results: dict[tuple[str, str], Measurement] = {}
    try:
        for index, image in enumerate(images):
            sweep = options.sweep if index == 0 else ()
            concurrent = min(max(sweep, default=1), WARMUP_CONCURRENCY_MAX)
            for scenario in scenarios:
                bar.phase(f"{image.name} {scenario.name} warm-up")
                faces = _warm_up(scenario, image, options, concurrent)
                results[scenario.name, image.name] = Measurement(scenario.name, image.name, faces)
            found = {s.name: results[s.name, image.name].faces for s in scenarios}
            if len(set(found.values())) != 1:
                raise BenchError(f"the scenarios disagree on the faces in {image.name}: {found}")
            latency = split_evenly(options.latency_requests, options.rounds)
            levels = {c: throughput_chunks(options, c) for c in sweep}
            for round_index in range(options.rounds):
                order = list(scenarios) if round_index % 2 == 0 else list(reversed(scenarios))
                for scenario in order:
                    bar.phase(f"{image.name} {scenario.name} c=1")
                    into = results[scenario.name, image.name]
                    _time_latency(scenario, image, latency[round_index], into, bar)
                for concurrency, chunks in levels.items():
                    for scenario in order:
                        bar.phase(f"{image.name} {scenario.name} c={concurrency}")
                        into = results[scenario.name, image.name]
                        count = chunks[round_index]
                        _time_throughput(scenario, image, count, concurrency, into, bar)
    finally:
        bar.close()
    return results
