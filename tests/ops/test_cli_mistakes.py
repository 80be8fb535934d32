"""What a user at the command line gets wrong gets a plain paragraph, never a traceback.

The cases come from walking through README and docs/OPERATIONS.md as a new user: a path that
does not exist, a FACEGATE_* variable with a bad value, a gallery database that is not there,
perf_analyzer against a Triton that is not running. Each exits 2 (a usage or setup problem)
and says what to do next.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.ops.cli import main
from gateway.ops.failures import ExitCode

KEYS = "user:test-user-key-0123456789,admin:test-admin-key-0123456789"


def explained(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert "This is a bug" not in err, err
    paragraph = err[err.index("error: ") :]
    assert paragraph.count("\n") == 1, err  # one paragraph, the last thing printed
    for word in words:
        assert word in paragraph, err
    return paragraph


def test_a_path_that_does_not_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-export.jsonl"
    argv = ["gallery", "import", str(missing), "--url", "postgresql://x@127.0.0.1:1/db"]
    assert main(argv) == ExitCode.USAGE
    explained(capsys, "No such file or folder", str(missing), "Check the path")


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("FACEGATE_COMPAT", "ifr,foo", ("FACEGATE_COMPAT:", "'foo'", "ifr and/or immich")),
        ("FACEGATE_MAX_IN_FLIGHT", "lots", ("FACEGATE_MAX_IN_FLIGHT:", "integer")),
        ("FACEGATE_COMPAT_NETWORKS", "10.0.0.300/8", ("FACEGATE_COMPAT_NETWORKS:",)),
    ],
)
def test_a_bad_setting_names_its_variable(
    variable: str,
    value: str,
    words: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    closed_port: int,
) -> None:
    monkeypatch.setenv("FACEGATE_API_KEYS", KEYS)
    monkeypatch.setenv(variable, value)
    assert main(["gateway", "--port", str(closed_port)]) == ExitCode.USAGE
    explained(capsys, "Invalid setting", *words, "docs/OPERATIONS.md")


def test_a_gallery_database_that_is_not_there(
    capsys: pytest.CaptureFixture[str], closed_port: int
) -> None:
    url = f"postgresql://facegate@127.0.0.1:{closed_port}/facegate"
    assert main(["gallery", "status", "--url", url]) == ExitCode.USAGE
    explained(capsys, "cannot use the gallery database", "FACEGATE_GALLERY_URL")


def test_perf_against_a_triton_that_is_not_running(
    perf_analyzer_ready: None, capsys: pytest.CaptureFixture[str], closed_port: int
) -> None:
    url = f"127.0.0.1:{closed_port}"
    assert main(["perf", "detector", "--url", url]) == ExitCode.USAGE
    explained(capsys, "perf_analyzer failed", url, "facegate triton")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["serve", "--port", "70000"], ("--port", "'70000' is not a port number")),
        (["triton", "--grpc-port", "x"], ("--grpc-port", "not a port number")),
        (["gateway", "--port", "0"], ("--port", "not a port number")),
        (["loadtest", "--concurrency", "-1"], ("--concurrency", "at least 1")),
        (["loadtest", "--duration-s", "0"], ("--duration-s", "above 0")),
        (["gallery", "bench", "--faces", "0"], ("--faces", "at least 1")),
        (["serve", "--startup-timeout-s", "nan"], ("--startup-timeout-s", "above 0")),
        (["serve", "--restart-backoff-s", "-1"], ("--restart-backoff-s", "at least 0")),
        (["triton", "--restart-max", "-1"], ("--restart-max", "at least 0")),
        (["serve", "--restart-window-s", "0"], ("--restart-window-s", "above 0")),
        (["triton", "--hang-timeout-s", "-5"], ("--hang-timeout-s", "above 0")),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_an_impossible_number_is_refused_before_anything_starts(
    argv: list[str], words: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    # Refused by the parser, so no server is started first (serve used to start Triton and
    # then fail with an OverflowError for --port 70000).
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
