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
