"""`facegate bench-group`: runs without a server, reports both algorithms, refuses bad input."""

from __future__ import annotations

import pytest

from gateway.ops.cli import main


def test_bench_group_reports_both_algorithms(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["bench-group", "--seeds", "1", "--people", "30", "--singletons", "5"]
    assert main([*args, "--lookalike-pairs", "0,10"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert "two stages" in header and "DBSCAN alone" in header and len(rows) == 2
    # With look-alikes the candidates alone merge people; the two stages do not.
    assert int(rows[1].split("|")[2].split()[1]) > int(rows[1].split("|")[1].split()[1])


@pytest.mark.parametrize("bad", [["--lookalike-pairs", "x"], ["--lookalike-pairs", "99"]])
def test_bench_group_refuses_bad_input(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-group", "--people", "30", *bad]) == 2
    assert "--lookalike-pairs" in capsys.readouterr().err
