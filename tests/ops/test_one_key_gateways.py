"""Gateways that `facegate bench` and the load tests start have the per-key share off.

One API key drives all of a benchmark's client threads (16 at the default top concurrency);
with the per-key share on (FACEGATE_MAX_IN_FLIGHT_PER_KEY, default 4) the gateway answers
429 key_overloaded and the run stops. These tests read the environment each launcher gives
its `facegate gateway` / `facegate serve` child, and the settings that child would load
from it, without starting anything.
"""

from __future__ import annotations

import io
import subprocess
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gateway.config import Settings
from gateway.ops.bench.models import BenchModels
from gateway.ops.bench.options import DEFAULT_CONCURRENCY
from gateway.ops.servers import stack, triton


class _Started(Exception):
    """Raised by the Popen stand-in once it has seen the child's environment."""


def _capture_popen(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    seen: dict[str, str] = {}

    def popen(command: list[str], env: dict[str, str], **kwargs: Any) -> None:
        seen.update(env)
        raise _Started

    monkeypatch.setattr(subprocess, "Popen", popen)
    return seen


def _child_settings(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for name, value in env.items():
        if name.startswith("FACEGATE_"):
            monkeypatch.setenv(name, value)
    return Settings()


def _assert_no_key_share(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    settings = _child_settings(monkeypatch, env)
    # 0 is "no share" (app.py gives Admission None); the global cap covers the bench's threads.
    assert settings.max_in_flight_per_key == 0
    assert settings.max_in_flight >= max(DEFAULT_CONCURRENCY)


class _FakeTriton:
    def __init__(self, options: Any) -> None:
        self.options = SimpleNamespace(repository_key="key")
        self.pid = 1
        self.grpc_url = "127.0.0.1:1"
        self.http_url = "http://127.0.0.1:2"

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


@pytest.fixture
def user_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's own shell has the share on: the launchers must still turn it off."""
    monkeypatch.setenv("FACEGATE_MAX_IN_FLIGHT_PER_KEY", "4")


@pytest.mark.usefixtures("user_share")
def test_bench_gateway_has_no_per_key_share(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """running_gateway: the gateway of run_bench, the levers, the swap bench and loadtest."""
    monkeypatch.setattr(triton, "EmbeddedTriton", _FakeTriton)
    monkeypatch.setattr(
        urllib.request, "urlopen", lambda *a, **k: io.BytesIO(b'{"version": "test"}')
    )
    env = _capture_popen(monkeypatch)
    with pytest.raises(_Started), stack.running_gateway(tmp_path, "synthetic"):
        pass
    _assert_no_key_share(monkeypatch, env)


@pytest.mark.usefixtures("user_share")
def test_lever_gateways_have_no_per_key_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """gateway_process with a lever's own settings (the bench's --levers variants)."""
    env = _capture_popen(monkeypatch)
    running = stack.RunningGateway("", "k" * 24, "test", 1, "127.0.0.1:1", "key")
    with (
        pytest.raises(_Started),
        stack.gateway_process(running, "synthetic", {"FACEGATE_CPU_THREADS": "1"}),
    ):
        pass
    _assert_no_key_share(monkeypatch, env)
    assert env["FACEGATE_CPU_THREADS"] == "1"


@pytest.mark.usefixtures("user_share")
def test_fault_loadtest_serve_has_no_per_key_share(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """running_serve: the `facegate serve` child of the fault load test."""
    from gateway.ops.loadtest.faults import running_serve

    env = _capture_popen(monkeypatch)
    models = BenchModels(tmp_path, tmp_path / "d.onnx", tmp_path / "r.onnx", "synthetic")
    with pytest.raises(_Started), running_serve(models):
        pass
    _assert_no_key_share(monkeypatch, env)
