"""What a load-test run does: duration, concurrency, request mix, memory bound."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.ops.bench.options import DEFAULT_CACHE_DIR, BenchError

if TYPE_CHECKING:
    from gateway.ops.repository.synthetic import Profile

# Relative weights: mostly single-image detection, some embedding work, the rarer batch,
# verify and swap calls, and a 12 MP photo now and then (decode and letterbox memory).
DEFAULT_MIX: Mapping[str, int] = {
    "detect": 4,
    "detect_embed": 4,
    "batch": 1,
    "verify": 2,
    "swap": 1,
    "detect_12mp": 1,
}


@dataclass(frozen=True)
class LoadOptions:
    """How long and how hard to drive the stack, and what counts as stable memory."""

    duration_s: float = 300.0
    concurrency: int = 8
    profile: Profile = "tiny"
    mix: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX))
    rss_bound_mib: float = 64.0
    warmup_fraction: float = 0.2
    sample_interval_s: float = 1.0
    request_timeout_s: float = 120.0
    cache_dir: Path = DEFAULT_CACHE_DIR
    progress: bool = True
    seed: int = 7
    # The fault-schedule run: where to keep `facegate serve`'s own log (None: discarded).
    serve_log: Path | None = None

    @property
    def warmup_s(self) -> float:
        return self.duration_s * self.warmup_fraction

    def command_line(self) -> str:
        """The `facegate loadtest` command that repeats this run."""
        mix = ",".join(f"{kind}={weight}" for kind, weight in self.mix.items())
        return (
            f"facegate loadtest --profile {self.profile} --duration-s {self.duration_s:g} "
            f"--concurrency {self.concurrency} --mix {mix} --rss-bound-mib {self.rss_bound_mib:g}"
        )


def parse_mix(text: str, known: tuple[str, ...]) -> dict[str, int]:
    """'detect=4,swap=1' or 'detect,swap' (weight 1 each) as {kind: weight}."""
    mix: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, weight = item.partition("=")
        if name not in known:
            raise BenchError(f"unknown request kind {name!r}; known: {', '.join(known)}")
        try:
            mix[name] = int(weight) if weight else 1
        except ValueError as exc:
            raise BenchError(f"weight of {name!r} is not an integer: {weight!r}") from exc
        if mix[name] < 0:
            raise BenchError(f"weight of {name!r} is negative")
    if not any(mix.values()):
        raise BenchError("the mix has no request kind with a positive weight")
    return {name: weight for name, weight in mix.items() if weight > 0}
