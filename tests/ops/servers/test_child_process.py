"""The launchers' shared pieces over real processes: log tail, ready wait, death with parent."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from gateway.ops.servers.child_process import (
    LogTail,
    NotReady,
    dying_with_parent,
    wait_until_ready,
)


def _python(code: str, **extra: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **extra,  # type: ignore[call-overload]
    )


def test_the_tail_keeps_the_last_lines_of_the_current_instance() -> None:
    tail = LogTail("test", lines=5)
    first = _python("print('old instance')")
    tail.follow(first)
    first.wait()
    tail.join()
    assert tail.text() == "old instance\n"
    second = _python("import sys\nfor i in range(20): print(i)\nprint('bad \\xff', flush=True)")
    tail.follow(second)
    second.wait()
    tail.join()
    lines = tail.lines()
    # Bounded, newest kept, nothing of the previous instance, undecodable bytes replaced.
    assert lines == ["16\n", "17\n", "18\n", "19\n", "bad \u00ff\n"]
    assert tail.text(last=2) == "19\nbad \u00ff\n"


def test_ready_wait_returns_once_the_probe_answers() -> None:
    process = _python("import time; time.sleep(30)")
    tail = LogTail("test")
    tail.follow(process)
    answers = iter([False, False, True])
    try:
        wait_until_ready(process, lambda: next(answers), timeout_s=30, poll_s=0.01, tail=tail)
    finally:
        process.kill()
        process.wait()


def test_ready_wait_reports_an_exit_with_the_complete_log() -> None:
    process = _python("print('cannot start: bad config', flush=True)\nraise SystemExit(3)")
    tail = LogTail("test")
    tail.follow(process)
    with pytest.raises(NotReady) as caught:
        wait_until_ready(process, lambda: False, timeout_s=30, poll_s=0.01, tail=tail)
    assert caught.value.exit_code == 3
    assert "bad config" in tail.text()


def test_ready_wait_gives_up_at_its_deadline() -> None:
    process = _python("import time; time.sleep(30)")
    tail = LogTail("test")
    tail.follow(process)
    try:
        with pytest.raises(NotReady) as caught:
            wait_until_ready(process, lambda: False, timeout_s=0.3, poll_s=0.05, tail=tail)
        assert caught.value.exit_code is None
        assert process.poll() is None  # the caller decides what to do with it
    finally:
        process.kill()
        process.wait()


def test_the_trampoline_becomes_the_command_and_dies_with_its_thread() -> None:
    started: list[subprocess.Popen[bytes]] = []
    first_line: list[bytes] = []

    def launch() -> None:
        command = dying_with_parent(["/bin/sh", "-c", "echo $$; exec sleep 60"])
        child = subprocess.Popen(command, stdout=subprocess.PIPE)
        started.append(child)
        assert child.stdout is not None
        # The thread lives until the command runs (as serve's threads do): the trampoline
        # sets the signal for the thread that is its parent then.
        first_line.append(child.stdout.readline())

    thread = threading.Thread(target=launch)
    thread.start()
    thread.join()
    (child,) = started
    # The command runs in the very process Popen started (exec, no extra child).
    assert int(first_line[0]) == child.pid
    deadline = time.monotonic() + 10
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert child.returncode == -9
