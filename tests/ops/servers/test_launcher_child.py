"""LauncherChild: a launcher with a real process as a supervised child; the PostgreSQL probe."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from gateway.ops.servers.launcher_child import LauncherChild, postgres_answers
from gateway.ops.servers.sessions import session_members
from gateway.ops.servers.supervisor import ChildEvent, RestartPolicy, Supervisor

# A server that starts a helper (like a postmaster its backends) and waits.
SERVER = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print('server up', flush=True)\n"
    "time.sleep(600)\n"
)


class ScriptLauncher:
    """The shape of EmbeddedPostgres (start/stop/kill/wait/logs, pid, running) over a script."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdout=subprocess.DEVNULL, start_new_session=True
        )

    def stop(self, timeout_s: float | None = None) -> None:
        self.kill()

    def kill(self) -> None:
        if self.running:
            assert self._process is not None
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def wait(self) -> int:
        assert self._process is not None
        return self._process.wait()

    def logs(self) -> str:
        return "".join(f"line {i}\n" for i in range(100))


def test_a_killed_server_is_restarted_and_its_helpers_ended() -> None:
    launcher = ScriptLauncher()
    child = LauncherChild("script", launcher, probe=lambda: launcher.running)
    recovered = threading.Event()

    def on_change(event: ChildEvent) -> None:
        if event.phase == "running":
            recovered.set()

    policy = RestartPolicy(backoff_initial_s=0.01, probe_period_s=0.05)
    supervisor = Supervisor(child, policy, on_change)
    supervisor.start()
    try:
        first = launcher.pid
        deadline = time.monotonic() + 30
        while len(session_members(first)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(first, signal.SIGKILL)  # the helper lives on in the session
        assert recovered.wait(30)
        assert session_members(first) == [] and launcher.pid != first
        assert child.log_tail().splitlines() == [f"line {i}" for i in range(70, 100)]
    finally:
        supervisor.stop()
    assert not launcher.running and session_members(launcher.pid) == []


def test_the_postgres_probe_needs_an_answer_not_just_a_connection(tmp_path: Path) -> None:
    silent, answering = tmp_path / "silent", tmp_path / "answering"
    assert not postgres_answers(silent)  # nothing listens
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as mute,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server,
    ):
        mute.bind(str(silent))
        mute.listen()
        # Listening but never answering, like a stopped postmaster: the probe times out.
        assert not postgres_answers(silent, timeout_s=0.2)
        server.bind(str(answering))
        server.listen()

        def answer_once() -> None:
            connection, _ = server.accept()
            with connection:
                if connection.recv(8) == struct.pack("!ii", 8, 80877103):
                    connection.sendall(b"N")

        threading.Thread(target=answer_once, daemon=True).start()
        assert postgres_answers(answering)
