"""`facegate triton` on its own restarts a crashed Triton, as `facegate serve` does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .test_cli_processes import _ports, _tritons_serving, _wait, repository  # noqa: F401

pytestmark = pytest.mark.integration


def test_triton_command_restarts_a_killed_triton(repository: Path) -> None:  # noqa: F811
    ports = _ports()
    ready_url = f"http://127.0.0.1:{ports[ports.index('--http-port') + 1]}/v2/health/ready"
    command = [
        sys.executable, "-m", "gateway.ops.cli", "triton", "--repository", str(repository),
        "--restart-backoff-s", "0.2", *ports,
    ]  # fmt: skip
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def ready() -> bool:
        try:
            return httpx.get(ready_url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        # Past the first start (not retried: a failure there is configuration), which the
        # command announces once its own ready wait has seen Triton ready.
        assert child.stdout is not None
        announced = ""
        for line in child.stdout:  # ends at EOF if the command exits
            announced += line
            if line.startswith("Triton ready"):
                break
        assert "Triton ready" in announced, announced[-3000:]
        (first,) = _tritons_serving(repository)
        os.kill(first, signal.SIGKILL)
        assert _wait(lambda: _tritons_serving(repository) not in ([], [first]), 120)
        assert _wait(ready, 120)
        assert child.poll() is None  # the command lives on
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=90) == 0
        assert _wait(lambda: not _tritons_serving(repository), 30)
        assert "triton exited unexpectedly (signal SIGKILL)" in child.stdout.read()
    finally:
        if child.poll() is None:
            child.kill()


def test_a_signal_while_triton_starts_stops_it_at_once(repository: Path) -> None:  # noqa: F811
    # The supervisor's first start waits for Triton to be ready; a SIGTERM in that wait
    # stops Triton there (exit 0) instead of being seen only once Triton is ready.
    command = [
        sys.executable,
        "-m",
        "gateway.ops.cli",
        "triton",
        "--repository",
        str(repository),
        *_ports(),
    ]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert _wait(lambda: bool(_tritons_serving(repository)), 120)
        child.send_signal(signal.SIGTERM)
        output, _ = child.communicate(timeout=90)
        assert child.returncode == 0, output[-3000:]
        assert "Triton ready" not in output
        assert _wait(lambda: not _tritons_serving(repository), 30)
    finally:
        if child.poll() is None:
            child.kill()
