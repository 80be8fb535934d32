"""The gateway's background tasks: none of them dies unnoticed.

keep_running(name, work) restarts `work` whenever it returns or raises (after a pause),
logging every death at ERROR with its traceback; start() creates a task whose end, other
than a cancellation, is logged at ERROR too (for one-shot work that is not restarted).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)
RESTART_S = 5.0


async def keep_running(
    name: str,
    work: Callable[[], Awaitable[None]],
    restart_s: float | None = None,
    *,
    stopping: Callable[[], bool] | None = None,
) -> None:
    """Run `work` until cancelled: each time it ends or raises, log at ERROR and start it again.

    stopping: when it is true after `work` ends or raises, this returns instead (an owner
    shutting down whose work ends on its own, e.g. when a driver turns the cancellation into
    an error of its own); without it such work would be restarted, and its owner's wait hang.
    """
    restart_s = RESTART_S if restart_s is None else restart_s
    while True:
        try:
            await work()
        except asyncio.CancelledError:
            raise
        except Exception:
            if stopping is not None and stopping():
                log.info("background task %s ended with an error while stopping", name)
                return
            log.exception("background task %s died: restarting it in %.0f s", name, restart_s)
        else:
            if stopping is not None and stopping():
                return
            log.error("background task %s ended: restarting it in %.0f s", name, restart_s)
        await asyncio.sleep(restart_s)


def _log_death(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("background task %s died", task.get_name(), exc_info=exc)


def start(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """A task whose failure is logged at ERROR when it happens (not at shutdown, not never)."""
    task = asyncio.create_task(coro, name=name)
    task.add_done_callback(_log_death)
    return task
