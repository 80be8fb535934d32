"""The Supervisor's policy with real (tiny) child processes: restart, hang, give up, stop."""

from __future__ import annotations

import http.client
import itertools
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from gateway.ops.servers.supervisor import (
    ChildEvent,
    ChildStartError,
    RestartPolicy,
    Supervisor,
    describe_exit,
    publish_events,
)
from gateway.supervision import ServerStates

FAST = RestartPolicy(
    backoff_initial_s=0.01, backoff_max_s=0.05, max_failures=3, window_s=60.0,
    hang_timeout_s=0.5, probe_period_s=0.05,
)  # fmt: skip


class SleeperChild:
    """A `sleep` in its own session, standing in for a server; records what was asked of it."""

    name = "sleeper"

    def __init__(self, good_starts: int = 1000) -> None:
        self.good_starts = good_starts
        self.starts = 0
        self.cleanups = 0
        self.repairs = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []

    def start(self) -> None:
        self.starts += 1
        if self.starts > self.good_starts:
            raise ChildStartError("the sleeper refuses to start")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
        )
        self.pids.append(self.process.pid)

    def exit_status(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def alive(self) -> bool:
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("T", "t")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        self.kill()

    def cleanup(self) -> str:
        self.cleanups += 1
        return ""

    def log_tail(self) -> str:
        return "the sleeper's last words\n"

    def repair(self) -> str:
        self.repairs += 1
        return ""


class Events:
    def __init__(self) -> None:
        self.seen: list[ChildEvent] = []
        self.changed = threading.Condition()

    def __call__(self, event: ChildEvent) -> None:
        with self.changed:
            self.seen.append(event)
            self.changed.notify_all()

    def wait_for(self, phase: str, count: int = 1, timeout_s: float = 30) -> None:
        with self.changed:
            ok = self.changed.wait_for(
                lambda: sum(e.phase == phase for e in self.seen) >= count, timeout_s
            )
        assert ok, f"no {count} x {phase} in {self.seen}"


@pytest.fixture
def child() -> SleeperChild:
    return SleeperChild()


def test_a_child_that_dies_is_cleaned_up_after_and_restarted(child: SleeperChild) -> None:
    events = Events()
    supervisor = Supervisor(child, FAST, events)
    supervisor.start()
    try:
        deadline = time.monotonic() + 30
        while not child.repairs and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.repairs > 0  # repair() is asked while the child answers
        first = child.pids[0]
        os.kill(first, signal.SIGKILL)
        events.wait_for("running")
        assert child.starts == 2 and child.cleanups == 1
        assert child.exit_status() is None and child.pids[1] != first
        restarting = next(e for e in events.seen if e.phase == "restarting")
        assert "SIGKILL" in restarting.reason and restarting.retry_after_s > 0
        running = events.seen[-1]
        assert running.restarts == 1 and running.recovered_s is not None
        assert supervisor.recoveries_s == [running.recovered_s]
    finally:
        supervisor.stop()
    assert supervisor.phase == "stopped" and child.exit_status() is not None


def test_a_hung_child_is_killed_and_restarted(child: SleeperChild) -> None:
    events = Events()
    supervisor = Supervisor(child, FAST, events)
    supervisor.start()
    try:
        hung = child.pids[0]
        os.kill(hung, signal.SIGSTOP)
        events.wait_for("running")
        assert "hung" in events.seen[0].reason
        with pytest.raises(ProcessLookupError):
            os.kill(hung, 0)  # killed and reaped, not left stopped
    finally:
        supervisor.stop()


def test_repeated_failures_in_the_window_give_up() -> None:
    child = SleeperChild(good_starts=1)
    states = ServerStates()
    failed = threading.Event()
    supervisor = Supervisor(child, FAST, publish_events(states, "sleeper", failed.set))
    supervisor.start()
    try:
        os.kill(child.pids[0], signal.SIGKILL)
        assert failed.wait(30)
        # One crash plus max_failures failed restarts; nothing is tried after giving up.
        assert child.starts == 1 + FAST.max_failures
        assert supervisor.phase == "failed" and "giving up" in supervisor.failure
        assert states.fatal == supervisor.failure
        assert states.down("sleeper") is not None
    finally:
        supervisor.stop()
    assert supervisor.phase == "failed"


def test_failures_outside_the_window_do_not_add_up(child: SleeperChild) -> None:
    now = [0.0]
    policy = RestartPolicy(
        backoff_initial_s=0.01,
        max_failures=1,
        window_s=10.0,
        hang_timeout_s=60,
        probe_period_s=0.05,
    )
    events = Events()
    supervisor = Supervisor(child, policy, events, clock=lambda: now[0])
    supervisor.start()
    try:
        for crash in range(3):
            now[0] += 11.0  # each crash more than a window after the one before
            os.kill(child.pids[-1], signal.SIGKILL)
            events.wait_for("running", crash + 1)
        assert supervisor.phase == "running" and supervisor.restarts == 3
    finally:
        supervisor.stop()


def test_stop_during_a_long_backoff_returns_and_starts_nothing(child: SleeperChild) -> None:
    slow = RestartPolicy(backoff_initial_s=600, probe_period_s=0.05)
    events = Events()
    supervisor = Supervisor(child, slow, events)
    supervisor.start()
    os.kill(child.pids[0], signal.SIGKILL)
    events.wait_for("restarting")
    supervisor.stop()
    assert child.starts == 1 and supervisor.phase == "stopped"


def test_backoff_doubles_and_is_capped() -> None:
    policy = RestartPolicy(backoff_initial_s=0.5, backoff_max_s=8.0)
    waits = [policy.backoff_s(n) for n in range(1, 10)]
    assert waits[0] == 0.5 and max(waits) == 8.0
    assert all(b in (a * 2, 8.0) for a, b in itertools.pairwise(waits))


def test_exit_descriptions() -> None:
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"
    assert describe_exit(3) == "exit code 3"


class FlakyProbeChild(SleeperChild):
    """A sleeper whose repair() and liveness probe raise now and then (an HTTP error, a bug)."""

    def __init__(self) -> None:
        super().__init__()
        self.raised = 0

    def repair(self) -> str:
        self.repairs += 1
        if self.repairs <= 2:
            self.raised += 1
            raise http.client.IncompleteRead(b"{", 10)
        return ""

    def alive(self) -> bool:
        if self.repairs == 2 and self.raised == 2:
            self.raised += 1
            raise RuntimeError("a bug in the probe")
        return super().alive()


def test_an_exception_in_one_probe_does_not_end_supervision() -> None:
    child = FlakyProbeChild()
    events = Events()
    supervisor = Supervisor(child, FAST, events)
    supervisor.start()
    try:
        deadline = time.monotonic() + 30
        while child.repairs < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.raised == 3 and child.repairs >= 4  # probes went on after each raise
        os.kill(child.pids[0], signal.SIGKILL)
        events.wait_for("running")  # and a crash after them is still noticed and repaired
        assert child.starts == 2
    finally:
        supervisor.stop()
