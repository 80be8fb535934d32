"""BenchReport: everything one benchmark run measured (what tables, plot and report read)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.ops.bench.floor import FloorResult
from gateway.ops.bench.images import BenchImage
from gateway.ops.bench.measure import Measurement, Results
from gateway.ops.bench.options import BenchOptions
from gateway.ops.bench.scenarios import Scenario
from gateway.ops.bench.swapcall import SwapResult
from gateway.ops.bench.targets import Verdict, evaluate


@dataclass(frozen=True)
class BenchReport:
    """Everything one run measured, with the machine and settings it ran under."""

    options: BenchOptions
    scenarios: tuple[Scenario, ...]
    images: tuple[BenchImage, ...]
    results: Results
    floor: tuple[FloorResult, ...]
    swap: tuple[SwapResult, ...]
    machine: dict[str, str]
    settings: dict[str, str]
    date: str
    commit: str
    duration_s: float

    def measurement(self, scenario: str, image: str) -> Measurement:
        return self.results[scenario, image]

    @property
    def verdicts(self) -> list[Verdict]:
        return evaluate(self.results, [image.name for image in self.images], self.floor, self.swap)
