"""onnxruntime settings of the in-process sides: the defaults, and the tuned ones the bench finds.

"Tuned" is what a careful user of InsightFace in process would do on this machine: turn the
thread pools' spin-wait off (between runs a spinning pool burns the cores the other model,
or the other request, needs) and pick the intra-op thread count that is fastest here, found
by timing the candidates against each other, not assumed.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

# onnxruntime's session config keys (onnxruntime_session_options_config_keys.h): "0" stops
# the intra-op and inter-op pools from spin-waiting for work between runs.
SPIN_OFF_ENTRIES = (
    ("session.intra_op.allow_spinning", "0"),
    ("session.inter_op.allow_spinning", "0"),
)


@dataclass(frozen=True)
class OrtSettings:
    """How an in-process onnxruntime session is configured.

    intra_op_threads: 0 leaves onnxruntime's default (one thread per physical core).
    """

    intra_op_threads: int = 0
    spinning: bool = True

    def session_options(self) -> Any:
        """An onnxruntime.SessionOptions with these settings (everything else default)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self.intra_op_threads:
            options.intra_op_num_threads = self.intra_op_threads
        if not self.spinning:
            for key, value in SPIN_OFF_ENTRIES:
                options.add_session_config_entry(key, value)
        return options

    def describe(self) -> str:
        threads = (
            f"intra_op_num_threads={self.intra_op_threads}"
            if self.intra_op_threads
            else "intra_op_num_threads default (one per physical core)"
        )
        spin = "spin-wait on (default)" if self.spinning else "spin-wait off (intra and inter op)"
        return f"{threads}, {spin}"


ORT_DEFAULTS = OrtSettings()


def thread_candidates(physical_cores: int) -> tuple[int, ...]:
    """Intra-op thread counts worth trying: 1, 2, half and all of the physical cores."""
    cores = max(physical_cores, 1)
    return tuple(sorted({1, min(2, cores), max(cores // 2, 1), cores}))


@dataclass(frozen=True)
class ThreadSearch:
    """What the search timed: median ms per call for each candidate, and the fastest."""

    what: str
    best: int
    median_ms: dict[int, float] = field(default_factory=dict)

    def describe(self) -> str:
        timed = ", ".join(f"{n}: {ms:.0f} ms" for n, ms in sorted(self.median_ms.items()))
        return f"{self.best} (median per {self.what} by intra-op threads, spin-wait off: {timed})"


def search_threads(
    what: str,
    make_call: Callable[[int], Callable[[], object]],
    candidates: Sequence[int],
    rounds: int,
    calls_per_round: int,
    clock: Callable[[], float] = time.perf_counter,
) -> ThreadSearch:
    """Time each candidate's call (after one untimed call) in alternating rounds; keep the fastest.

    make_call(threads) builds the sessions once and returns the call to time. Rounds
    alternate the candidates' order so that drifting background load is shared out. Ties
    go to the fewer threads (they leave cores to everything else). `clock` is in seconds.
    """
    calls = {n: make_call(n) for n in candidates}
    for call in calls.values():
        call()
    samples: dict[int, list[float]] = {n: [] for n in candidates}
    for round_index in range(max(rounds, 1)):
        order = list(candidates) if round_index % 2 == 0 else list(reversed(candidates))
        for n in order:
            for _ in range(max(calls_per_round, 1)):
                started = clock()
                calls[n]()
                samples[n].append((clock() - started) * 1000)
    medians = {n: statistics.median(values) for n, values in samples.items()}
    best = min(medians, key=lambda n: (medians[n], n))
    return ThreadSearch(what, best, medians)
