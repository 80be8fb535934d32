"""ServerStates as the gateway reads it: 503 + Retry-After while down, epochs, give-up."""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import UpstreamUnavailable
from gateway.service.swapper_lifecycle import SwapperManager, SwapperPolicy, SwapperStatus
from gateway.supervision import TRITON, ServerStates

from .service.test_swapper_lifecycle import FakeControl


def test_check_up_raises_503_with_retry_after_only_while_down() -> None:
    states = ServerStates()
    states.check_up(TRITON, "Triton")
    states.mark_down(TRITON, "exited unexpectedly (signal SIGKILL)", 2.2)
    with pytest.raises(UpstreamUnavailable) as caught:
        states.check_up(TRITON, "Triton")
    assert caught.value.status_code == 503 and caught.value.retry_after_s == 3
    assert "SIGKILL" in caught.value.message
    states.mark_up(TRITON)
    states.check_up(TRITON, "Triton")
    assert states.epoch(TRITON) == 1 and states.fatal == ""


def test_the_swapper_is_no_longer_ready_after_a_triton_restart() -> None:
    async def scenario() -> tuple[FakeControl, list[SwapperStatus]]:
        states = ServerStates()
        control = FakeControl()
        manager = SwapperManager(
            control, "swapper", SwapperPolicy(), server_epoch=lambda: states.epoch(TRITON)
        )
        await manager.ensure_loaded()
        seen = [manager.status]
        control.ready = False  # a restarted Triton has only the startup models
        states.mark_down(TRITON, "crash", 1)
        states.mark_up(TRITON)
        seen.append(manager.status)
        await manager.ensure_loaded()
        seen.append(manager.status)
        return control, seen

    control, seen = asyncio.run(scenario())
    assert [status.state for status in seen] == ["READY", "UNAVAILABLE", "READY"]
    assert control.calls == ["load", "load"]


def test_a_load_that_failed_while_triton_was_down_is_not_held_after_its_restart() -> None:
    async def scenario() -> list[str]:
        states = ServerStates()
        control = FakeControl(fail=True)
        manager = SwapperManager(
            control, "swapper", SwapperPolicy(), server_epoch=lambda: states.epoch(TRITON)
        )
        with pytest.raises(UpstreamUnavailable):
            await manager.ensure_loaded()
        with pytest.raises(UpstreamUnavailable):
            await manager.ensure_loaded()  # held: Triton is not asked again
        control.fail = False
        states.mark_up(TRITON)  # a new Triton: the hold no longer applies
        await manager.ensure_loaded()
        return control.calls

    assert asyncio.run(scenario()) == ["load", "load"]
