"""`facegate triton` and `facegate serve` as real processes: a signal stops Triton too."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ..conftest import free_port

pytestmark = pytest.mark.integration


def _tritons_serving(repository: Path) -> list[int]:
    """Pids of tritonserver processes started on this repository (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                args = handle.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if (
            state != "Z"
            and args[0].endswith(b"tritonserver")
            and any(arg == f"--model-repository={repository.resolve()}".encode() for arg in args)
        ):
            found.append(int(entry))
    return found


def _wait(condition: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def _ports() -> list[str]:
    return [
        "--grpc-port",
        str(free_port()),
        "--http-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
    ]


@pytest.fixture
def repository(tiny_repository: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(tiny_repository, copy)
    return copy


def test_triton_command_stops_on_sigterm(repository: Path) -> None:
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
        assert _wait(lambda: bool(_tritons_serving(repository)), 60)
        time.sleep(3)  # past startup: the CLI is waiting on Triton
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == 0
        assert _wait(lambda: not _tritons_serving(repository), 30)
    finally:
        if child.poll() is None:
            child.kill()


def test_serve_stops_triton_on_sigterm(repository: Path) -> None:
    port = free_port()
    env = {**os.environ, "FACEGATE_API_KEYS": "user:process-test-key-0123456789"}
    command = [
        sys.executable, "-m", "gateway.ops.cli", "serve", "--models", "synthetic",
        "--repository", str(repository), "--port", str(port), *_ports(), "--no-gallery",
    ]  # fmt: skip
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def ready() -> bool:
            try:
                return (
                    httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200
                )
            except httpx.HTTPError:
                return False

        assert _wait(ready, 90)
        assert _tritons_serving(repository)
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=60)
        assert _wait(lambda: not _tritons_serving(repository), 30)
    finally:
        if child.poll() is None:
            child.kill()
