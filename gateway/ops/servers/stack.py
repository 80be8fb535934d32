"""The embedded Triton and `facegate gateway` in a child process, as `facegate serve` runs them."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gateway.ops.servers.ports import free_port, free_ports

GATEWAY_STARTUP_TIMEOUT_S = 60.0

# Every gateway the benchmark or a load test starts: one API key drives all of its client
# threads, so the per-key share of the slots (FACEGATE_MAX_IN_FLIGHT_PER_KEY, default 4) is
# off there; it would answer 429 key_overloaded at concurrency 16. Overrides the caller's own
# environment.
ONE_KEY_DRIVER_ENV = {"FACEGATE_MAX_IN_FLIGHT_PER_KEY": "0"}


class StackError(RuntimeError):
    """Triton or the gateway did not start; the message says why (and Triton's log tail)."""


@dataclass(frozen=True)
class RunningGateway:
    """Where the gateway and its Triton listen, and what the benchmark needs to reach them."""

    url: str
    api_key: str
    triton_version: str
    triton_pid: int
    triton_grpc_url: str
    repository_key: str


@contextlib.contextmanager
def running_gateway(
    repository: Path, label: str, extra_env: dict[str, str] | None = None
) -> Iterator[RunningGateway]:
    """The embedded Triton on `repository`, then `facegate gateway` in a child process.

    What `facegate serve` runs, for the benchmark and the load test; `label` is the models
    label the gateway reports (synthetic models say so); `extra_env` adds FACEGATE_*
    settings of the gateway (e.g. FACEGATE_COMPAT).
    """
    from gateway.ops.servers.triton import (
        EmbeddedTriton,
        EmbeddedTritonError,
        TritonOptions,
        TritonPorts,
    )

    ports = TritonPorts(*free_ports(3))
    triton = EmbeddedTriton(TritonOptions(repository=repository, ports=ports))
    try:
        triton.start()
    except EmbeddedTritonError as exc:
        triton.stop()
        raise StackError(str(exc)) from exc
    try:
        with urllib.request.urlopen(f"{triton.http_url}/v2", timeout=5) as answer:
            triton_version = str(json.load(answer).get("version", "?"))
        api_key = secrets.token_urlsafe(24)
        running = RunningGateway(
            "",
            api_key,
            triton_version,
            triton.pid,
            triton.grpc_url,
            triton.options.repository_key,
        )
        with gateway_process(running, label, extra_env) as url:
            yield dataclasses.replace(running, url=url)
    finally:
        triton.stop()


@contextlib.contextmanager
def gateway_process(
    running: RunningGateway, label: str, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """One more `facegate gateway` child in front of `running`'s Triton; yields its URL.

    Same key and settings as running_gateway's own child, plus `extra_env` (FACEGATE_*):
    the benchmark's gateway levers start variants side by side on one Triton.
    """
    port = free_port()
    env = {
        **os.environ,
        "FACEGATE_TRITON_URL": running.triton_grpc_url,
        "FACEGATE_TRITON_REPOSITORY_KEY": running.repository_key,
        "FACEGATE_MODELS_LABEL": label,
        # admin scope: the swap benchmark unloads the swapper through the admin route.
        "FACEGATE_API_KEYS": f"admin:{running.api_key}",
        "FACEGATE_LOG_LEVEL": "WARNING",
        "FACEGATE_DRAIN_S": "0",
        **ONE_KEY_DRIVER_ENV,
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "gateway.ops.cli", "gateway", "--port", str(port)]
    with tempfile.TemporaryFile() as output:
        child = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_gateway_ready(url, child, output)
            yield url
        finally:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def stop_child(child: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """SIGTERM (the child drains and stops what it started), SIGKILL after `timeout_s`."""
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _wait_gateway_ready(url: str, child: subprocess.Popen[bytes], output: IO[bytes]) -> None:
    deadline = time.monotonic() + GATEWAY_STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            output.seek(0)
            tail = output.read().decode(errors="replace")[-2000:]
            raise StackError(f"the gateway exited with code {child.returncode}:\n{tail}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{url}/health/ready", timeout=2) as answer,
        ):
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise StackError(f"the gateway was not ready after {GATEWAY_STARTUP_TIMEOUT_S:.0f} s")
