"""Background tasks: a death is logged at ERROR when it happens, and kept-running work restarts."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway import background


def test_a_one_shot_task_that_dies_is_logged_at_once(caplog: pytest.LogCaptureFixture) -> None:
    async def dies() -> None:
        raise RuntimeError("gone")

    async def scenario() -> None:
        task = background.start(dies(), "one-shot")
        await asyncio.sleep(0.05)
        assert task.done()  # still referenced, never awaited: only the callback can tell

    asyncio.run(scenario())
    (record,) = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "one-shot" in record.getMessage() and record.exc_info is not None


def test_kept_running_work_restarts_after_raising_and_after_returning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[int] = []

    async def work() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("first run fails")
        if len(runs) == 3:
            await asyncio.sleep(3600)

    async def scenario() -> None:
        task = asyncio.create_task(background.keep_running("worker", work, restart_s=0.01))
        while len(runs) < 3:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2 and all("worker" in r.getMessage() for r in errors)
    assert errors[0].exc_info is not None  # the traceback of the failure


def test_kept_running_work_that_ends_while_its_owner_stops_is_not_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A poller that ends on its own at close (its driver swallowed the cancellation)."""
    closing = False
    runs: list[int] = []

    async def work() -> None:
        runs.append(1)
        if closing:
            raise RuntimeError("the query was cancelled")

    async def scenario() -> None:
        nonlocal closing
        closing = True
        await asyncio.wait_for(
            background.keep_running("poller", work, restart_s=0.01, stopping=lambda: closing), 5
        )

    asyncio.run(scenario())
    assert runs == [1]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
