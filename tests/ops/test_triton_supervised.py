"""`facegate triton` on its own restarts a crashed Triton, as `facegate serve` does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .test_cli_processes import _ports, _tritons_serving, _wait, repository  # noqa: F401

pytestmark = pytest.mark.integration


def test_triton_command_restarts_a_killed_triton(repository: Path) -> None:  # noqa: F811
    command = [
        sys.executable, "-m", "gateway.ops.cli", "triton", "--repository", str(repository),
        "--restart-backoff-s", "0.2", *_ports(),
    ]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert _wait(lambda: bool(_tritons_serving(repository)), 60)
        (first,) = _tritons_serving(repository)
        os.kill(first, signal.SIGKILL)
        assert _wait(lambda: _tritons_serving(repository) not in ([], [first]), 120)
        assert child.poll() is None  # the command lives on
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=90) == 0
        assert _wait(lambda: not _tritons_serving(repository), 30)
        assert child.stdout is not None
        assert "triton exited unexpectedly (signal SIGKILL)" in child.stdout.read()
    finally:
        if child.poll() is None:
            child.kill()
