"""The issues' targets as data, and their verdicts on a run's results.

A verdict is 'met' or 'MISSED' on all timed requests together; 'within noise' when it is
missed overall but the interleaved rounds disagree (at least one round meets it), so the
difference is smaller than what the run can resolve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.ops.bench.floor import FloorResult
from gateway.ops.bench.measure import Measurement, Results

Metric = Literal["p50", "throughput", "floor"]


@dataclass(frozen=True)
class Target:
    """subject / reference on `metric` must stay <= limit (at_most) or >= limit.

    concurrency: the level a throughput target applies to; 0 means every measured level.
    """

    subject: str
    reference: str
    metric: Metric
    limit: float
    at_most: bool
    source: str
    concurrency: int = 0

    def describe(self) -> str:
        what = {"p50": "p50", "throughput": "img/s", "floor": "faces/s"}[self.metric]
        sign = "<=" if self.at_most else ">="
        return f"{self.subject} {what} {sign} {self.limit:.2f}x {self.reference} ({self.source})"


@dataclass(frozen=True)
class Verdict:
    target: Target
    where: str
    ratio: float
    round_ratios: tuple[float, ...]
    verdict: str


TARGETS = (
    Target("rest", "insightface", "p50", 1.10, True, "issue 3"),
    Target("rest", "insightface", "throughput", 1.0, False, "issue 3", concurrency=4),
    Target("grpc", "insightface", "p50", 1.05, True, "issue 5"),
    Target("grpc+shm", "grpc", "p50", 1.0, True, "issue 5: shm never slower"),
    Target("grpc+shm", "grpc", "throughput", 1.0, False, "issue 5: shm never slower"),
    Target("triton grpc", "onnxruntime", "floor", 0.9, False, "issue 5"),
    Target("triton grpc+shm", "onnxruntime", "floor", 0.9, False, "issue 5"),
)


def _judge(target: Target, where: str, ratio: float, rounds: Sequence[float]) -> Verdict:
    def meets(value: float) -> bool:
        return value <= target.limit if target.at_most else value >= target.limit

    if math.isnan(ratio):
        verdict = "n/a"
    elif meets(ratio):
        verdict = "met"
    elif len(rounds) > 1 and any(meets(r) for r in rounds):
        verdict = "within noise"
    else:
        verdict = "MISSED"
    return Verdict(target, where, ratio, tuple(rounds), verdict)


def _ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    return [x / y for x, y in zip(a, b, strict=False) if y]


def _judge_pair(target: Target, image: str, a: Measurement, b: Measurement) -> list[Verdict]:
    if target.metric == "p50":
        ratio = a.percentile_ms(50) / b.percentile_ms(50)
        rounds = _ratios(a.round_percentiles_ms(50), b.round_percentiles_ms(50))
        return [_judge(target, image, ratio, rounds)]
    levels = sorted(set(a.throughput) & set(b.throughput))
    if target.concurrency:
        levels = [c for c in levels if c == target.concurrency]
    verdicts = []
    for c in levels:
        ratio = a.images_per_s(c) / b.images_per_s(c)
        rounds = _ratios(a.round_images_per_s(c), b.round_images_per_s(c))
        verdicts.append(_judge(target, f"{image} c={c}", ratio, rounds))
    return verdicts


def evaluate(
    results: Results,
    images: Sequence[str],
    floor: Sequence[FloorResult],
    targets: Sequence[Target] = TARGETS,
) -> list[Verdict]:
    """One verdict per target and image (and concurrency level) it applies to."""
    by_side = {result.side: result for result in floor}
    verdicts: list[Verdict] = []
    for target in targets:
        if target.metric == "floor":
            a, b = by_side.get(target.subject), by_side.get(target.reference)
            if a is not None and b is not None:
                ratio = a.faces_per_s / b.faces_per_s
                rounds = _ratios(a.round_faces_per_s(), b.round_faces_per_s())
                verdicts.append(_judge(target, f"batch {a.batch_size}", ratio, rounds))
            continue
        for image in images:
            subject = results.get((target.subject, image))
            reference = results.get((target.reference, image))
            if subject is not None and reference is not None:
                verdicts += _judge_pair(target, image, subject, reference)
    return verdicts
