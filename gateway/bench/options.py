"""What a benchmark run measures, and its one error type."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..repository.synthetic import Profile

DEFAULT_CACHE_DIR = Path(".facegate") / "bench"
DEFAULT_REPORT = Path("docs") / "BENCHMARKS.md"


class BenchError(Exception):
    """The benchmark could not run or its sides disagree; the message says why."""


@dataclass(frozen=True)
class BenchOptions:
    """How much to measure and where the models live."""

    profile: Profile = "realistic"
    latency_requests: int = 40
    throughput_requests: int = 32
    concurrency: int = 4
    warmup: int = 3
    rounds: int = 2
    cache_dir: Path = DEFAULT_CACHE_DIR
    fresh_models: bool = False
    progress: bool = True

    def command_line(self) -> str:
        """The `facegate bench` command that repeats this run."""
        return (
            f"facegate bench --profile {self.profile} --requests {self.latency_requests} "
            f"--throughput-requests {self.throughput_requests} --concurrency {self.concurrency} "
            f"--warmup {self.warmup} --rounds {self.rounds}"
        )
