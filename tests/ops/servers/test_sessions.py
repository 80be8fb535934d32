"""What a dead server leaves behind, found from /proc: session members, unmapped shm files."""

from __future__ import annotations

import mmap
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateway.ops.servers.sessions import session_members, stub_model, sweep_stale_shm

SHM = Path("/dev/shm")
# A leader that starts a grandchild (which ignores SIGTERM, like a Triton stub) and waits.
LEADER = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', "
    "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
    "time.sleep(600)\n"
)


def test_orphans_stay_in_the_dead_leaders_session_until_killed() -> None:
    leader = subprocess.Popen([sys.executable, "-c", LEADER], start_new_session=True)
    deadline = time.monotonic() + 30
    while len(session_members(leader.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(leader.pid, signal.SIGKILL)
    leader.wait()
    (orphan,) = session_members(leader.pid)
    assert orphan != leader.pid and orphan != os.getpid()
    os.kill(orphan, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while session_members(leader.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert session_members(leader.pid) == []


def test_sweep_removes_only_unmapped_files_of_the_prefix() -> None:
    prefix = f"facegate_test_{secrets.token_hex(4)}_"
    mapped, stale, other = SHM / f"{prefix}mapped", SHM / f"{prefix}stale", SHM / f"x{prefix}"
    for path in (mapped, stale, other):
        path.write_bytes(b"\0" * 4096)
    try:
        with mapped.open("r+b") as handle, mmap.mmap(handle.fileno(), 4096):
            assert sweep_stale_shm(prefix) == 1
            assert mapped.exists() and not stale.exists() and other.exists()
    finally:
        for path in (mapped, stale, other):
            path.unlink(missing_ok=True)


def test_stub_model_names_the_model_or_copes_with_a_short_command_line() -> None:
    stub = "/venv/lib/triton/backends/python/triton_python_backend_stub"
    assert stub_model([stub, "/repo/detector/1/model.py", "shm"]) == "detector"
    # A command line read while the stub is being exec'd: fault loadtests sampled one of
    # these and raised IndexError (CI at 3fda122).
    assert stub_model([stub, ""]) == ""
    assert stub_model([stub, "model.py"]) == "model.py"
    assert stub_model([stub]) is None
    assert stub_model(["/usr/bin/python", "/repo/detector/1/model.py"]) is None
