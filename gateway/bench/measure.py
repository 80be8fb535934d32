"""Warm-up, latency at concurrency 1 and throughput at concurrency N, per scenario and image."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .images import BenchImage
from .options import BenchError, BenchOptions
from .scenarios import Outcome, Scenario


@dataclass
class Measurement:
    """Samples of one scenario on one image."""

    scenario: str
    image: str
    faces: int
    latencies_ms: list[float] = field(default_factory=list)
    throughput_requests: int = 0
    throughput_s: float = 0.0
    stages_ms: dict[str, list[float]] = field(default_factory=dict)

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else math.nan

    @property
    def images_per_s(self) -> float:
        return self.throughput_requests / self.throughput_s if self.throughput_s else math.nan

    def stage_medians_ms(self) -> dict[str, float]:
        return {stage: float(np.median(values)) for stage, values in self.stages_ms.items()}

    def add(self, outcome: Outcome, latency_ms: float | None = None) -> None:
        if outcome.faces != self.faces:
            raise BenchError(
                f"{self.scenario} found {outcome.faces} faces on {self.image}, "
                f"{self.faces} during warm-up"
            )
        if latency_ms is not None:
            self.latencies_ms.append(latency_ms)
            for stage, value in outcome.stages_ms.items():
                self.stages_ms.setdefault(stage, []).append(value)


Results = Mapping[tuple[str, str], Measurement]


class _Progress:
    """A tqdm bar on stderr (or nothing), advanced once per timed request."""

    def __init__(self, total: int, enabled: bool) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total, disable=not enabled, file=sys.stderr, unit="req")

    def phase(self, text: str) -> None:
        self._bar.set_description(text, refresh=True)

    def step(self) -> None:
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


def split_evenly(total: int, parts: int) -> list[int]:
    """`total` as `parts` integers that differ by at most one."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _warm_up(scenario: Scenario, image: BenchImage, options: BenchOptions) -> int:
    """Sequential, then concurrent calls; returns the face count they all agree on."""
    counts = {scenario.run(image.jpeg).faces for _ in range(max(options.warmup, 1))}
    with ThreadPoolExecutor(options.concurrency) as pool:
        jobs = [pool.submit(scenario.run, image.jpeg) for _ in range(options.concurrency)]
        counts |= {job.result().faces for job in jobs}
    if len(counts) != 1:
        raise BenchError(f"{scenario.name} found varying face counts on {image.name}: {counts}")
    return counts.pop()


def _time_latency(
    scenario: Scenario, image: BenchImage, count: int, into: Measurement, bar: _Progress
) -> None:
    for _ in range(count):
        started = time.perf_counter()
        outcome = scenario.run(image.jpeg)
        into.add(outcome, (time.perf_counter() - started) * 1000)
        bar.step()


def _time_throughput(
    scenario: Scenario,
    image: BenchImage,
    count: int,
    concurrency: int,
    into: Measurement,
    bar: _Progress,
) -> None:
    """`count` requests through `concurrency` workers, each starting as soon as one ends."""

    def one() -> None:
        into.add(scenario.run(image.jpeg))
        bar.step()

    with ThreadPoolExecutor(concurrency) as pool:
        started = time.perf_counter()
        for job in [pool.submit(one) for _ in range(count)]:
            job.result()
        into.throughput_s += time.perf_counter() - started
    into.throughput_requests += count


def measure(
    scenarios: Sequence[Scenario], images: Sequence[BenchImage], options: BenchOptions
) -> dict[tuple[str, str], Measurement]:
    """Measurements keyed by (scenario name, image name).

    Per image: every scenario warms up, then the timed requests run in `rounds` interleaved
    chunks (scenario order reversed every other round) so that drifting background load is
    spread over all scenarios instead of landing on one.
    """
    per_pair = options.latency_requests + options.throughput_requests
    bar = _Progress(len(scenarios) * len(images) * per_pair, options.progress)
    results: dict[tuple[str, str], Measurement] = {}
    try:
        for image in images:
            for scenario in scenarios:
                bar.phase(f"{image.name} {scenario.name} warm-up")
                faces = _warm_up(scenario, image, options)
                results[scenario.name, image.name] = Measurement(scenario.name, image.name, faces)
            found = {
                scenario.name: results[scenario.name, image.name].faces for scenario in scenarios
            }
            if len(set(found.values())) != 1:
                raise BenchError(f"the scenarios disagree on the faces in {image.name}: {found}")
            chunks = zip(
                split_evenly(options.latency_requests, options.rounds),
                split_evenly(options.throughput_requests, options.rounds),
                strict=True,
            )
            for index, (latency_count, throughput_count) in enumerate(chunks):
                order = list(scenarios) if index % 2 == 0 else list(reversed(scenarios))
                for scenario in order:
                    bar.phase(f"{image.name} {scenario.name} c=1")
                    into = results[scenario.name, image.name]
                    _time_latency(scenario, image, latency_count, into, bar)
                for scenario in order:
                    bar.phase(f"{image.name} {scenario.name} c={options.concurrency}")
                    into = results[scenario.name, image.name]
                    _time_throughput(
                        scenario, image, throughput_count, options.concurrency, into, bar
                    )
    finally:
        bar.close()
    return results
