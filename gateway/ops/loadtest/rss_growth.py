"""Resident memory of each process of a supervised stack over a run with faults. Pure.

A process restarted by the supervisor starts small and grows back, so its growth says
nothing about a leak: growth is measured on each label's last instance (its pid in the last
sample) only, over its samples after the warm-up and after it has settled: the median of
the last quarter of them against the median of the first quarter (single samples jump with
every 12 MP image in flight).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# (seconds since the timed run began, {label: (pid, MiB)})
RssSample = tuple[float, Mapping[str, tuple[int, float]]]
GROWTH_LIMIT_PCT = 5.0
# A judgement needs this much of the last instance's life after its baseline.
MIN_SPAN_S = 60.0


@dataclass(frozen=True)
class ProcessMemory:
    """One label's memory: first/max/last MiB over the run, instances, growth of the last."""

    label: str
    first_mib: float
    max_mib: float
    last_mib: float
    instances: int
    baseline_s: float | None
    growth_pct: float | None  # None: the last instance lived too short after its baseline

    @property
    def within_limit(self) -> bool:
        return self.growth_pct is None or self.growth_pct < GROWTH_LIMIT_PCT


def process_memory(
    samples: Sequence[RssSample], warmup_s: float, settle_s: float
) -> list[ProcessMemory]:
    """Per label, in label order; baseline = max(warm-up, the last instance's start + settle_s)."""
    labels = sorted({label for _, sample in samples for label in sample})
    out = []
    for label in labels:
        seen = [(t, *sample[label]) for t, sample in samples if label in sample]
        values = [mib for _, _, mib in seen]
        last_pid = seen[-1][1]
        instance = [(t, mib) for t, pid, mib in seen if pid == last_pid]
        started_s = instance[0][0]
        baseline_s = max(warmup_s, started_s + settle_s)
        after = [(t, mib) for t, mib in instance if t >= baseline_s]
        growth = None
        if after and after[-1][0] - after[0][0] >= MIN_SPAN_S:
            quarter = max(1, len(after) // 4)
            first = statistics.median(mib for _, mib in after[:quarter])
            last = statistics.median(mib for _, mib in after[-quarter:])
            growth = 100.0 * (last - first) / first if first > 0 else None
        out.append(
            ProcessMemory(
                label,
                values[0],
                max(values),
                values[-1],
                len({pid for _, pid, _ in seen}),
                after[0][0] if after else None,
                growth,
            )
        )
    return out


def format_memory(memory: Sequence[ProcessMemory]) -> list[str]:
    """Terminal lines, one per process."""
    lines = [
        "Resident memory per process (MiB): first, max, last; growth of the last instance "
        "after its baseline, last-quarter median against first-quarter median "
        f"(goal < {GROWTH_LIMIT_PCT:g}%)"
    ]
    for m in memory:
        restarted = f", {m.instances} instances" if m.instances > 1 else ""
        if m.growth_pct is None:
            growth = "too short after its baseline to judge"
        else:
            growth = f"{m.growth_pct:+.1f}% since {m.baseline_s:.0f} s"
            growth += "" if m.within_limit else " OVER THE GOAL"
        lines.append(
            f"  {m.label}: {m.first_mib:.0f}, {m.max_mib:.0f}, {m.last_mib:.0f}{restarted}; {growth}"
        )
    return lines
