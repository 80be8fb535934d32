"""What every embedded server's launcher shares: its log tail and its wait until ready.

EmbeddedTriton and EmbeddedPostgres both run their server as a child process whose stdout
and stderr go to one pipe. A daemon thread reads that pipe into a bounded tail (what the
supervisor logs when the server dies, and what a failed start shows), echoing it when
asked; a ready wait polls the server's own probe until it answers, the process exits or a
deadline passes.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

LOG_TAIL_LINES = 400


class LogTail:
    """The last lines a child process wrote, read from its stdout pipe by a daemon thread."""

    def __init__(self, name: str, echo: bool = False, lines: int = LOG_TAIL_LINES) -> None:
        self._name = name
        self._echo = echo
        self._capacity = lines
        self._lines: collections.deque[str] = collections.deque(maxlen=lines)
        self._reader: threading.Thread | None = None

    def follow(self, process: subprocess.Popen[bytes]) -> None:
        """Start reading a new process's output; the previous instance's lines are dropped."""
        # A fresh deque: a reader of the previous instance still draining its pipe writes
        # into the old one, never into this instance's tail.
        lines: collections.deque[str] = collections.deque(maxlen=self._capacity)
        self._lines = lines
        self._reader = threading.Thread(
            target=self._read, args=(process, lines), name=f"{self._name}-logs", daemon=True
        )
        self._reader.start()

    def _read(self, process: subprocess.Popen[bytes], lines: collections.deque[str]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", errors="replace")
            lines.append(line)
            if self._echo:
                sys.stderr.write(line)

    def join(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) until the reader has seen the end of the pipe: the tail is complete."""
        if self._reader is not None:
            self._reader.join(timeout=timeout_s)

    def lines(self) -> list[str]:
        return list(self._lines)

    def text(self, last: int | None = None) -> str:
        """The tail as one string; `last` lines only when given."""
        lines = self.lines()
        return "".join(lines if last is None else lines[-last:])


class NotReady(Exception):
    """The child exited during startup (exit_code set) or was not ready in time (None)."""

    def __init__(self, exit_code: int | None) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


def wait_until_ready(
    process: subprocess.Popen[bytes],
    probe: Callable[[], bool],
    timeout_s: float,
    poll_s: float,
    tail: LogTail,
) -> None:
    """Poll `probe` until it answers True; NotReady when the process exits or time runs out.

    On an exit the log reader is joined first, so the caller's message shows the last lines.
    A probe that answered while the process was already exiting does not count.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            tail.join()
            raise NotReady(code)
        if probe() and process.poll() is None:
            return
        time.sleep(poll_s)
    raise NotReady(None)


# Switches user (if asked), sets the parent-death signal, then becomes the command (exec
# keeps the setting; a change of user clears it, hence this order). An orphan already (the
# parent died before prctl) exits instead.
_TRAMPOLINE = (
    "import ctypes, os, sys\n"
    "parent, uid, gid = (int(value) for value in sys.argv[1:4])\n"
    "if uid >= 0:\n"
    "    os.setgroups([])\n"
    "    os.setgid(gid)\n"
    "    os.setuid(uid)\n"
    "try:\n"
    "    ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)\n"
    "except (OSError, AttributeError):\n"
    "    pass\n"
    "if os.getppid() != parent:\n"
    "    sys.exit(1)\n"
    "os.execv(sys.argv[4], sys.argv[4:])\n"
)


def dying_with_parent(command: list[str], uid: int = -1, gid: int = -1) -> list[str]:
    """`command` behind a trampoline that sets die-with-parent (SIGKILL when the starting thread ends),
    run as uid:gid (without supplementary groups) when they are given.

    For children started from a process with gRPC's threads: a preexec_fn makes Popen fork
    and run Python's at-fork hooks in the child, where gRPC's can crash it (SIGSEGV before
    exec, seen on PostgreSQL restarts under load); a plain Popen needs no hooks. The
    trampoline starts as the caller, so the interpreter need not be reachable by uid. The
    signal follows the thread that is the child's parent once the trampoline runs (a
    fraction of a second after Popen): start it from a thread that lives on.
    """
    return [sys.executable, "-S", "-c", _TRAMPOLINE, str(os.getpid()), str(uid), str(gid), *command]
