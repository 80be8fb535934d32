"""The fault schedule's pure parts: parsing, and which failures belong to which fault."""

from __future__ import annotations

import pytest

from gateway.ops.bench.options import BenchError
from gateway.ops.loadtest.faults import Fault, InjectedFault, assign_failures, parse_faults
from gateway.ops.loadtest.stats import OK, RequestRecord


def test_parse_orders_faults_and_refuses_unknown_ones() -> None:
    assert parse_faults("stop@150, kill@60") == [Fault("kill", 60.0), Fault("stop", 150.0)]
    assert parse_faults("pgstop@9,pgkill@3") == [Fault("pgkill", 3.0), Fault("pgstop", 9.0)]
    for bad in ("boom@10", "kill@soon", "kill"):
        with pytest.raises(BenchError):
            parse_faults(bad)


def _record(kind: str, started_s: float, latency_s: float, outcome: str = OK) -> RequestRecord:
    return RequestRecord(kind, started_s, latency_s * 1000, outcome)


def test_failures_inside_a_window_are_the_faults_and_outside_are_real() -> None:
    records = [
        _record("detect", 5.0, 0.5, "503"),  # before any fault: a real failure
        _record("detect", 9.5, 1.0, "503"),  # in flight at the kill: the fault's
        _record("detect", 11.0, 0.1, "503"),
        _record("swap", 12.0, 0.5, "502"),
        _record("detect", 14.0, 1.0),  # first success after the kill: recovered at 15.0
        _record("detect", 20.0, 0.5, "504"),  # after recovery: real
        _record("swap", 30.0, 0.5, "502"),  # in the stub fault's window
        _record("detect", 31.0, 0.5),  # a detect success does not end a stub fault
        _record("swap", 33.0, 1.0),  # the swap that does: recovered at 34.0
    ]
    kill = InjectedFault(Fault("kill", 10.0), 10.0, pid=1)
    stub = InjectedFault(Fault("stub", 29.0), 29.0, pid=2)
    outside = assign_failures(records, [kill, stub])
    assert outside == {"detect: 503": 1, "detect: 504": 1}
    assert kill.time_to_recover_s == pytest.approx(5.0)
    assert kill.failures == {"503": 2, "502": 1}
    assert stub.time_to_recover_s == pytest.approx(5.0) and stub.failures == {"502": 1}


def test_a_fault_without_a_later_success_never_recovers() -> None:
    fault = InjectedFault(Fault("kill", 10.0), 10.0, pid=1)
    outside = assign_failures([_record("detect", 11.0, 0.1, "503")], [fault])
    assert fault.recovered_s is None and fault.failures == {"503": 1} and not outside


def test_a_postgres_fault_recovers_with_a_gallery_request_only() -> None:
    records = [
        _record("enrol", 10.5, 0.2, "503"),  # the fault's
        _record("detect", 11.0, 0.1),  # detect works without the database: not a recovery
        _record("identify", 12.0, 0.5, "503"),
        _record("identify", 15.0, 1.0),  # recovered at 16.0
        _record("enrol", 17.0, 0.5, "503"),  # after recovery: real
    ]
    fault = InjectedFault(Fault("pgkill", 10.0), 10.0, pid=1)
    outside = assign_failures(records, [fault])
    assert fault.time_to_recover_s == pytest.approx(6.0)
    assert fault.failures == {"503": 2} and outside == {"enrol: 503": 1}
