"""Processes of one session, from /proc (Linux): what a dead server left behind.

A server started with start_new_session=True leads a session of its own; the processes it
starts stay in that session even after it dies and they are orphaned to init.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PYTHON_STUB = "triton_python_backend_stub"


def _stat_fields(pid: str) -> list[str]:
    """/proc/<pid>/stat after the command name: state, ppid, pgrp, session, ..."""
    with open(f"/proc/{pid}/stat") as handle:
        return handle.read().rsplit(")", 1)[1].split()


def session_members(session_id: int) -> list[int]:
    """Pids of live processes in session `session_id` (zombies left out)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = _stat_fields(entry)
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[3]) == session_id:
            members.append(int(entry))
    return members


def python_stubs(session_id: int) -> dict[str, list[int]]:
    """Triton Python-backend stubs of a session by model name: {model: [pid, ...]}.

    A stub's first argument is <repository>/<model>/<version>/model.py.
    """
    stubs: dict[str, list[int]] = {}
    for pid in session_members(session_id):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                args = handle.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        model = stub_model(args)
        if model is not None:
            stubs.setdefault(model, []).append(pid)
    return stubs


def stub_model(args: list[str]) -> str | None:
    """The model a Python-backend stub serves, from its command line; None for another process.

    A stub's first argument is <repository>/<model>/<version>/model.py; a command line read while
    the process is still being exec'd can be short or empty, and then names the path as it is.
    """
    if len(args) < 2 or not args[0].endswith(PYTHON_STUB):
        return None
    parts = Path(args[1]).parts
    return parts[-3] if len(parts) >= 3 else args[1]


def mapped_shm_files() -> set[str]:
    """Names of /dev/shm files that some live process (readable by us) has mapped."""
    mapped = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/maps") as handle:
                for line in handle:
                    where = line.find("/dev/shm/")
                    if where >= 0:
                        mapped.add(line[where + len("/dev/shm/") :].split()[0])
        except OSError:
            continue
    return mapped


def sweep_stale_shm(prefix: str, shm_dir: Path = Path("/dev/shm")) -> int:
    """Remove our own files named prefix* that no live process maps; returns how many.

    What a server killed together with its supervisor (no cleanup ran) left behind. A file
    another live instance uses is mapped by its server and stubs, so it stays.
    """
    candidates = [
        path
        for path in shm_dir.glob(f"{prefix}*")
        if path.is_file() and path.stat().st_uid == os.geteuid()
    ]
    if not candidates:
        return 0
    in_use = mapped_shm_files()
    removed = 0
    for path in candidates:
        if path.name not in in_use:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed
