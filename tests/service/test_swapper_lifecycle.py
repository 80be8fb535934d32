"""SwapperManager's lifecycle with a fake Triton: single flight, unload/load ordering, failure hold."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import UpstreamUnavailable
from gateway.service.swapper_lifecycle import FAILURE_HOLD_S, SwapperManager, SwapperPolicy


class FakeControl:
    """Loads and unloads that take a little time; records every call."""

    def __init__(self, fail: bool = False) -> None:
        self.ready = False
        self.fail = fail
        self.calls: list[str] = []

    async def load_model(self, model: str, timeout_s: float) -> None:
        self.calls.append("load")
        await asyncio.sleep(0.05)
        if self.fail:
            raise UpstreamUnavailable("load failed for model 'swapper': broken file")
        self.ready = True

    async def unload_model(self, model: str) -> None:
        self.calls.append("unload")
        await asyncio.sleep(0.05)
        self.ready = False

    async def is_model_ready(self, model: str) -> bool:
        return self.ready


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_concurrent_requests_share_one_load() -> None:
    async def scenario() -> tuple[FakeControl, SwapperManager]:
        control = FakeControl()
        manager = SwapperManager(control, "swapper", SwapperPolicy())
        await asyncio.gather(*(manager.ensure_loaded() for _ in range(10)))
        return control, manager

    control, manager = asyncio.run(scenario())
    assert control.calls == ["load"] and manager.status.state == "READY"


def test_a_request_during_an_idle_unload_waits_and_reloads() -> None:
    async def scenario() -> tuple[FakeControl, SwapperManager]:
        clock = Clock()
        control = FakeControl()
        manager = SwapperManager(control, "swapper", SwapperPolicy(idle_ttl_s=1.0), clock=clock)
        await manager.ensure_loaded()
        clock.now += 5
        reaping = asyncio.create_task(manager.reap_once())
        await asyncio.sleep(0)  # the unload has started
        assert manager.status.state == "UNLOADING"
        async with manager.in_use():
            await manager.ensure_loaded()
            assert control.ready and manager.status.state == "READY"
        assert await reaping
        return control, manager

    control, manager = asyncio.run(scenario())
    assert control.calls == ["load", "unload", "load"]
    assert manager.status.state == "READY"


def test_reaper_leaves_a_model_in_use() -> None:
    async def scenario() -> bool:
        clock = Clock()
        manager = SwapperManager(
            FakeControl(), "swapper", SwapperPolicy(idle_ttl_s=1.0), clock=clock
        )
        await manager.ensure_loaded()
        async with manager.in_use():
            clock.now += 5
            return await manager.reap_once()

    assert asyncio.run(scenario()) is False


def test_a_failed_load_is_held_before_triton_is_asked_again() -> None:
    async def scenario() -> tuple[FakeControl, list[str]]:
        clock = Clock()
        control = FakeControl(fail=True)
        manager = SwapperManager(control, "swapper", SwapperPolicy(), clock=clock)
        messages = []
        for advance in (0.0, 1.0, FAILURE_HOLD_S + 1):
            clock.now += advance
            with pytest.raises(UpstreamUnavailable) as caught:
                await manager.ensure_loaded()
            messages.append(caught.value.message)
        return control, messages

    control, messages = asyncio.run(scenario())
    assert control.calls == ["load", "load"]  # the second request got the held answer
    assert all("broken file" in message for message in messages)
