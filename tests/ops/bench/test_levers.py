"""`facegate bench --levers`: the spread over processes, the tables and the report block."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ops.bench.images import BenchImage
from gateway.ops.bench.levers import (
    BEGIN,
    CONTROL,
    END,
    LEVERS,
    REFERENCE,
    LeverReport,
    SpreadRest,
    lever_tables,
    write_levers_report,
)
from gateway.ops.bench.measure import Measurement
from gateway.ops.bench.options import BenchOptions
from gateway.ops.bench.scenarios import Outcome
from gateway.ops.cli import main


class Counting:
    """A RestDetect stand-in that counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.closed = False

    def __call__(self, jpeg: bytes) -> Outcome:
        self.calls += 1
        return Outcome(4, {})

    def close(self) -> None:
        self.closed = True


def test_requests_are_spread_evenly_over_the_processes() -> None:
    clients = [Counting(), Counting()]
    spread = SpreadRest(clients)  # type: ignore[arg-type]
    for _ in range(7):
        assert spread(b"").faces == 4
    assert sorted(c.calls for c in clients) == [3, 4]
    spread.close()
    assert all(c.closed for c in clients)


def test_the_first_lever_is_the_reference_and_names_are_unique() -> None:
    assert LEVERS[0].name == REFERENCE and not LEVERS[0].env
    # The A/A control runs the reference's settings.
    (control,) = [lever for lever in LEVERS if lever.name == CONTROL]
    assert control.env == LEVERS[0].env and control.processes == LEVERS[0].processes
    assert len({lever.name for lever in LEVERS}) == len(LEVERS)
    assert all(all(key.startswith("FACEGATE_") for key in lever.env) for lever in LEVERS)


def _report() -> LeverReport:
    image = BenchImage("640x480", b"", 640, 480, 4)
    results = {}
    for index, lever in enumerate(LEVERS):
        # Each lever 10% slower than the one before, in both rounds.
        ms = 100.0 * 1.1**index
        results[lever.name, image.name] = Measurement(
            lever.name, image.name, 4, [[ms], [ms]], {1: [(1, ms / 1000)] * 2, 4: [(4, 1.0)] * 2}
        )
    return LeverReport(
        BenchOptions(concurrency=(1, 4)), LEVERS, (image,), results, "today", "abc", 1.0, "1", "2"
    )


def test_tables_give_ratios_to_the_defaults_per_round() -> None:
    (_, _, latency), (_, _, throughput) = lever_tables(_report())
    assert [row[1] for row in latency] == [lever.name for lever in LEVERS]
    assert latency[0][4:] == ["reference", "-"]
    assert latency[1][4:] == ["1.10x", "1.10 / 1.10"]
    assert throughput[1][0] == "640x480 c=1" and throughput[1][3] == "0.91x"
    assert [row[3] for row in throughput[len(LEVERS) :]] == ["reference"] + ["1.00x"] * (
        len(LEVERS) - 1
    )


def test_report_block_is_written_in_place(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# B\n\n{BEGIN}\n_Not run yet._\n{END}\n\n## After\n")
    write_levers_report(path, _report())
    text = path.read_text()
    assert "_Not run yet._" not in text and text.endswith("\n\n## After\n")
    assert "| 640x480 | defaults again | 110.0 | 110.0 | 1.10x | 1.10 / 1.10 |" in text


def test_negative_swap_calls_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--swap-calls", "-1"]) != 0
    assert "--swap-calls" in capsys.readouterr().err
