"""`facegate bench-compat` explains itself, refuses bad arguments, and rejects wrong answers."""

from __future__ import annotations

import pytest

from gateway.ops.cli import build_parser, main
from gateway.ops.commands.bench_compat import BenchCompatError, Row, _check


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["bench-compat", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "usage: facegate bench-compat" in out and "--concurrency" in out and "/extract" in out


@pytest.mark.parametrize(
    "argv", [["--concurrency", "0"], ["--concurrency", "a"], ["--requests", "0"]]
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-compat", *argv]) == 2
    assert "--concurrency" in capsys.readouterr().err


def test_wrong_answers_stop_the_benchmark() -> None:
    _check([("ok", 4), ("ok", 4)], 4, "/extract")
    with pytest.raises(BenchCompatError, match="1 images answered wrongly"):
        _check([("ok", 4), ("failed", 0)], 4, "/extract")
    with pytest.raises(BenchCompatError):
        _check([("ok", 3)], 4, "/v1/detect/batch")


def test_row_rate() -> None:
    assert Row("/extract msgpack", 2, 128, 4.0).images_per_s == 32.0
