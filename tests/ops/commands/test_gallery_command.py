"""`facegate gallery bench|bench-http` explain themselves and refuse bad arguments before any
server starts; the embedded PostgreSQL's settings carry shared_buffers and pg_prewarm."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ops.cli import build_parser, main
from gateway.ops.commands.gallery import server_settings


@pytest.mark.parametrize("command", ["bench", "bench-http"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["gallery", command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: facegate gallery {command}" in out and "--shared-buffers" in out


@pytest.mark.parametrize(
    "argv", [["--faces", "0"], ["--distribution", "gaussian"], ["--faces-per-subject", "x"]]
)
def test_bad_bench_arguments_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["gallery", "bench", *argv])
    assert done.value.code == 2


def test_bad_ef_search_says_what_to_give(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gallery", "bench", "--ef-search", "40,0", "--url", "postgresql:///x"]) == 2
    assert "--ef-search takes numbers from 1 to 1000" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["bench", "bench-tenants"])
def test_bad_statement_timeout_says_what_to_give(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["gallery", command, "--statement-timeout-s", "0", "--url", "postgresql:///x"]
    assert main(argv) == 2
    assert "--statement-timeout-s takes seconds" in capsys.readouterr().err


def test_bench_http_needs_a_key_and_a_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FACEGATE_BENCH_KEY", raising=False)
    monkeypatch.delenv("FACEGATE_GALLERY_URL", raising=False)
    assert main(["gallery", "bench-http"]) == 2
    assert "--key" in capsys.readouterr().err
    assert main(["gallery", "bench-http", "--key", "k", "--data-dir", str(tmp_path)]) == 2
    assert "no embedded PostgreSQL" in capsys.readouterr().err


def test_server_settings() -> None:
    assert server_settings("2GB") == ("shared_buffers=2GB", "shared_preload_libraries=pg_prewarm")
    assert server_settings("") == ("shared_preload_libraries=pg_prewarm",)
