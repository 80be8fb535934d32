"""What a benchmark run measures, and its one error type."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from gateway.ops.repository.synthetic import Profile

DEFAULT_CACHE_DIR = Path(".facegate") / "bench"
DEFAULT_REPORT = Path("docs") / "BENCHMARKS.md"
DEFAULT_CONCURRENCY = (1, 4, 16)
Device = Literal["cpu", "gpu"]


class BenchError(Exception):
    """The benchmark could not run or its sides disagree; the message says why."""


def parse_concurrency(text: str) -> tuple[int, ...]:
    """'1,4,16' -> (1, 4, 16): sorted, distinct, positive; 1 is always included."""
    try:
        levels = {int(part) for part in text.split(",") if part.strip()}
    except ValueError as exc:
        raise BenchError(
            f"--concurrency is a comma-separated list of integers, not {text!r}"
        ) from exc
    if not levels or min(levels) < 1:
        raise BenchError(f"--concurrency levels are positive integers, not {text!r}")
    return tuple(sorted(levels | {1}))


@dataclass(frozen=True)
class BenchOptions:
    """How much to measure and where the models live.

    Throughput at concurrency 1 is the latency phase itself; every other level runs
    max(throughput_requests, level) requests on the first (sweep) image only.
    """

    profile: Profile = "realistic"
    latency_requests: int = 20
    throughput_requests: int = 16
    concurrency: tuple[int, ...] = DEFAULT_CONCURRENCY
    warmup: int = 2
    rounds: int = 2
    floor_batches: int = 3
    # Timed warm swap calls per side (REST and InsightFace in process, defaults and tuned);
    # 0 leaves the swap row out of the run.
    swap_calls: int = 4
    device: Device = "cpu"
    cache_dir: Path = DEFAULT_CACHE_DIR
    fresh_models: bool = False
    progress: bool = True
    # The insightface-openvino baseline (CPU runs only; needs bootstrap.sh's onnxruntime-openvino).
    openvino: bool = True

    @property
    def sweep(self) -> tuple[int, ...]:
        """The concurrency levels above 1, timed in their own throughput phase."""
        return tuple(c for c in self.concurrency if c > 1)

    def requests_at(self, concurrency: int) -> int:
        """Timed requests per image and scenario at a concurrency level above 1."""
        return max(self.throughput_requests, concurrency)

    def command_line(self) -> str:
        """The `facegate bench` command that repeats this run."""
        levels = ",".join(str(c) for c in self.concurrency)
        return (
            f"facegate bench --profile {self.profile} --requests {self.latency_requests} "
            f"--throughput-requests {self.throughput_requests} --concurrency {levels} "
            f"--warmup {self.warmup} --rounds {self.rounds} --floor-batches {self.floor_batches} "
            f"--swap-calls {self.swap_calls}"
            f"{' --device gpu' if self.device == 'gpu' else ''}"
            f"{' --no-openvino' if self.device == 'cpu' and not self.openvino else ''}"
        )

    def providers(self) -> list[str]:
        """onnxruntime execution providers for the in-process sides."""
        if self.device == "gpu":
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]
