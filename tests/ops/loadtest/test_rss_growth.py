"""Memory per process over a run with restarts: growth judged on the last instance only."""

from __future__ import annotations

import pytest

from gateway.ops.loadtest.rss_growth import GROWTH_LIMIT_PCT, RssSample, process_memory


def _samples(series: dict[str, list[tuple[int, float]]]) -> list[RssSample]:
    """One sample a second: series[label][t] = (pid, MiB)."""
    length = max(len(values) for values in series.values())
    return [
        (float(t), {label: values[t] for label, values in series.items() if t < len(values)})
        for t in range(length)
    ]


def test_a_steady_process_is_measured_from_the_warm_up() -> None:
    # Grows from 100 to 150 MiB during the warm-up, then +2 MiB over 200 s (201 samples:
    # the quarters are 50 samples each, their medians at 74.5 and 225.5 s).
    values = [
        (7, 100 + 50 * min(t, 50) / 50 + (2 * (t - 50) / 200 if t > 50 else 0)) for t in range(251)
    ]
    (memory,) = process_memory(_samples({"gateway": values}), warmup_s=50, settle_s=30)
    assert memory.instances == 1 and memory.baseline_s == 50
    first, last = 150 + 2 * 24.5 / 200, 150 + 2 * 175.5 / 200
    assert memory.growth_pct == pytest.approx(100 * (last - first) / first, rel=1e-3)
    assert memory.within_limit
    assert (memory.first_mib, memory.last_mib) == (100, pytest.approx(152))


def test_a_restarted_process_is_measured_on_its_last_instance_after_settling() -> None:
    # pid 1 grows to 300 MiB and is killed at 100 s; pid 2 starts at 20 MiB and settles.
    first = [(1, 100 + 2 * t) for t in range(100)]
    second = [(2, 20 + 10 * min(t, 10) + 0.01 * max(0, t - 10)) for t in range(200)]
    (memory,) = process_memory(_samples({"triton": first + second}), warmup_s=50, settle_s=30)
    assert memory.instances == 2 and memory.baseline_s == 130
    # 170 samples from 130 s: quarter medians at 150.5 s and 278.5 s (t = 50.5 and 178.5 of
    # the instance); the first instance's 300 MiB do not count.
    first, last = 120 + 0.01 * 40.5, 120 + 0.01 * 168.5
    assert memory.growth_pct == pytest.approx(100 * (last - first) / first, rel=1e-3)
    assert memory.max_mib == pytest.approx(298)


def test_growth_past_the_goal_is_flagged_and_short_lives_are_not_judged() -> None:
    leaking = [(3, 100 * (1 + 0.001 * t)) for t in range(200)]
    short = [(4, 50.0)] * 150 + [(5, 10.0)] * 50  # restarted 50 s before the end
    memory = {
        m.label: m for m in process_memory(_samples({"leak": leaking, "short": short}), 20, 30)
    }
    assert memory["leak"].growth_pct is not None
    assert memory["leak"].growth_pct > GROWTH_LIMIT_PCT and not memory["leak"].within_limit
    assert memory["short"].growth_pct is None and memory["short"].within_limit
