"""The audit stream on its own: records among the logs or in a file, and the reading command."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gateway.audit import AUDIT_LOGGER, AuditRecord, configure_audit_log, write_audit
from gateway.ops.cli import main


def test_the_audit_command_says_what_to_do_without_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["gallery", "audit", "--file", str(tmp_path / "missing.jsonl")]) != 0
    assert "FACEGATE_AUDIT_LOG_FILE" in capsys.readouterr().err


def test_records_go_among_the_logs_without_a_file(caplog: pytest.LogCaptureFixture) -> None:
    configure_audit_log(None)
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        write_audit(AuditRecord("k", "identify", "POST", "/v1/x", 200, collection="c"))
    (record,) = [r for r in caplog.records if r.name == AUDIT_LOGGER]
    assert record.__dict__["audit"]["collection"] == "c"


def test_the_command_filters_a_mixed_log_and_keeps_the_last(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = tmp_path / "gateway.log"
    configure_audit_log(log_file)
    try:
        for number in range(3):
            write_audit(AuditRecord(f"k{number % 2}", "identify", "POST", "/v1/x", 200))
    finally:
        configure_audit_log(None)
    with log_file.open("a") as handle:
        handle.write('not json\n{"logger": "facegate.access", "message": "GET"}\n')
    assert main(["gallery", "audit", "--file", str(log_file), "--key", "k0", "--last", "1"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    record = json.loads(line)
    assert record["key"] == "k0" and record["time"] and "request_id" in record


def test_since_with_a_utc_offset_means_that_instant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--since 05:00+02:00 is 03:00 UTC (the first round compared it as text, dropping 03:30Z)."""
    log_file = tmp_path / "audit.jsonl"
    with log_file.open("w") as handle:
        for at, key in (
            ("2026-12-07T02:30:00.000Z", "before"),
            ("2026-12-07T03:30:00.000Z", "after"),
        ):
            line = {"time": at, "logger": AUDIT_LOGGER, "audit": {"key": key}}
            handle.write(json.dumps(line) + "\n")
    for since in ("2026-12-07T05:00+02:00", "2026-12-07T03:00", "2026-12-06T22:00-05:00"):
        assert main(["gallery", "audit", "--file", str(log_file), "--since", since]) == 0
        keys = [json.loads(line)["key"] for line in capsys.readouterr().out.splitlines()]
        assert keys == ["after"], since


def test_a_since_that_is_no_time_says_how_to_write_one(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["gallery", "audit", "--file", "-", "--since", "yesterday"])
    assert stopped.value.code == 2
    assert "2026-12-07T05:00+02:00" in capsys.readouterr().err
