"""Any embedded-server launcher as a supervised Child, plus a PostgreSQL liveness probe.

A launcher (EmbeddedPostgres is one) has start/stop/kill/wait/logs, a pid and `running`,
and starts its server in a session of its own. LauncherChild adds what the Supervisor
needs: the exit status, a liveness probe, the end of what a dead instance left in its
session (a killed postmaster's backends), and the log tail. Triton needs more (stub
repair, shared-memory files) and implements the Child interface itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from gateway.ops.servers.postgres import EmbeddedPostgres, EmbeddedPostgresError
from gateway.ops.servers.sessions import session_members
from gateway.ops.servers.supervisor import ChildStartError
from gateway.supervision import POSTGRES

PROBE_TIMEOUT_S = 2.0
LOG_TAIL_LINES = 30
ORPHAN_WAIT_S = 10.0
# PostgreSQL's SSLRequest: length 8, then the code 1234 5679; the server answers one byte.
_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


class Launcher(Protocol):
    @property
    def running(self) -> bool: ...

    @property
    def pid(self) -> int: ...

    def start(self) -> None: ...

    def stop(self, timeout_s: float | None = None) -> None: ...

    def kill(self) -> None: ...

    def wait(self) -> int: ...

    def logs(self) -> str: ...


class LauncherChild:
    """Adapts a Launcher to the Supervisor's Child interface."""

    def __init__(
        self,
        name: str,
        launcher: Launcher,
        probe: Callable[[], bool],
        start_errors: tuple[type[Exception], ...] = (Exception,),
        leftovers: Callable[[], list[int]] | None = None,
    ) -> None:
        """leftovers: the live processes of a dead instance; by default its session's."""
        self.name = name
        self._launcher = launcher
        self._probe = probe
        self._start_errors = start_errors
        self._leftovers = leftovers or (lambda: session_members(self._session))
        self._session = 0

    def start(self) -> None:
        try:
            self._launcher.start()
        except self._start_errors as exc:
            raise ChildStartError(str(exc)) from exc
        self._session = self._launcher.pid

    def exit_status(self) -> int | None:
        if not self._session or self._launcher.running:
            return None
        return self._launcher.wait()  # exited already: returns at once

    def alive(self) -> bool:
        return self._probe()

    def kill(self) -> None:
        self._launcher.kill()

    def stop(self) -> None:
        self._launcher.stop()
        self.cleanup()

    def cleanup(self) -> str:
        """SIGKILL what is left of the dead instance; '' if nothing was."""
        if not self._session or self._launcher.running:
            return ""
        orphans = self._leftovers()
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        # Until they are gone: a postmaster refuses to start while a backend of the dead
        # one still holds the shared-memory segment named in postmaster.pid.
        deadline = time.monotonic() + ORPHAN_WAIT_S
        while orphans and self._leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)
        return f"killed {len(orphans)} orphaned process(es) {orphans}" if orphans else ""

    def log_tail(self) -> str:
        return "".join(self._launcher.logs().splitlines(keepends=True)[-LOG_TAIL_LINES:])

    def repair(self) -> str:
        return ""


def postgres_answers(socket_path: Path, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """The postmaster answers an SSLRequest on its unix socket (a hung one does not).

    Connecting alone proves nothing: the kernel accepts connections into the backlog of a
    stopped process.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(timeout_s)
            probe.connect(str(socket_path))
            probe.sendall(_SSL_REQUEST)
            return probe.recv(1) in (b"S", b"N")
    except OSError:
        return False


def postgres_child(server: EmbeddedPostgres) -> LauncherChild:
    """The embedded PostgreSQL as a supervised child named POSTGRES (the gateway's key)."""
    return LauncherChild(
        POSTGRES,
        server,
        lambda: postgres_answers(server.socket_path),
        (EmbeddedPostgresError,),
        # A postmaster's children lead sessions of their own (setsid): found by data folder.
        server.server_pids,
    )
