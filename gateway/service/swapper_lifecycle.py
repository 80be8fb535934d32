"""The swapper's lifecycle on Triton: loaded on first use, unloaded when idle.

Single-flight: concurrent requests that find the swapper unloaded wait for the same load,
and exactly one load call reaches Triton. A failed or timed-out load answers 503 with
Retry-After and Triton's reason; detection is unaffected. Anything else (a bug) is not
dressed up as an outage: it propagates, and the client gets the 500 with a request id.
Triton's unload is asynchronous, so after load and unload the model's readiness is polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

from gateway.errors import FacegateError, UpstreamUnavailable
from gateway.metrics import Metrics
from gateway.ports import ModelControl

log = logging.getLogger(__name__)
State = Literal["UNAVAILABLE", "LOADING", "READY", "UNLOADING"]
READY_POLL_S = 0.1
# After a failed load, answer 503 for this long before asking Triton again.
FAILURE_HOLD_S = 10.0


@dataclass(frozen=True)
class SwapperPolicy:
    """idle_ttl_s: unload after this long unused (0 = never); load_timeout_s: per load."""

    idle_ttl_s: float = 600.0
    load_timeout_s: float = 120.0


@dataclass(frozen=True)
class SwapperStatus:
    state: State
    load_count: int
    last_load_s: float | None
    last_error: str


class SwapperManager:
    """Loads the swapper model on demand and unloads it after an idle TTL."""

    def __init__(
        self,
        control: ModelControl,
        model: str,
        policy: SwapperPolicy,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
        server_epoch: Callable[[], int] = lambda: 0,
    ) -> None:
        """server_epoch: grows when Triton restarts (a restart unloads the swapper)."""
        self._control = control
        self._server_epoch = server_epoch
        # Triton's epoch at the last load attempt (successful or not).
        self._loaded_epoch = server_epoch()
        self._metrics = metrics
        self._model = model
        self._policy = policy
        self._clock = clock
        self._state: State = "UNAVAILABLE"
        self._load_task: asyncio.Task[None] | None = None
        self._unload_task: asyncio.Task[None] | None = None
        self._failure: UpstreamUnavailable | None = None
        self._failed_at = 0.0
        self._in_use = 0
        self._last_used = clock()
        self.load_count = 0
        self.last_load_s: float | None = None
        if metrics is not None:
            metrics.swapper_loaded.set_function(lambda: float(self._state == "READY"))
        self.last_error = ""

    def _notice_restart(self) -> None:
        """After a Triton restart: the swapper is no longer loaded, and a load that failed
        (while Triton was down) is not held against the new instance."""
        if self._server_epoch() == self._loaded_epoch:
            return
        if self._state == "READY":
            log.info("Triton restarted: %s is no longer loaded", self._model)
            self._state = "UNAVAILABLE"
        if self._failure is not None and self._load_task is None:
            self._failure = None

    @property
    def status(self) -> SwapperStatus:
        self._notice_restart()
        return SwapperStatus(self._state, self.load_count, self.last_load_s, self.last_error)

    async def ensure_loaded(self) -> None:
        """Return once the swapper is READY, loading it (once, shared) if needed.

        Waits for an unload in progress first, so load and unload never overlap. A load
        that failed less than FAILURE_HOLD_S ago is not retried: the same 503 comes back,
        which keeps a broken model from turning every request into a load on Triton.
        """
        self._notice_restart()
        while self._state != "READY":
            if self._unload_task is not None:
                with contextlib.suppress(FacegateError):
                    await asyncio.shield(self._unload_task)
                continue
            if self._failure is not None and self._clock() - self._failed_at < FAILURE_HOLD_S:
                raise self._failure
            if self._load_task is None:
                self._load_task = asyncio.create_task(self._load())
            # shield: a client that gives up must not cancel the load the others wait for.
            await asyncio.shield(self._load_task)

    async def _load(self) -> None:
        try:
            self._loaded_epoch = self._server_epoch()
            if await self._control.is_model_ready(self._model):
                self._state = "READY"
                return
            self._state = "LOADING"
            self.load_count += 1
            started = self._clock()
            log.info("loading %s on demand", self._model)
            await self._control.load_model(self._model, self._policy.load_timeout_s)
            await self._wait_ready(True, self._policy.load_timeout_s)
            self.last_load_s = self._clock() - started
            self._state = "READY"
            self._failure = None
            if self._metrics is not None:
                self._metrics.swapper_loads.inc()
                self._metrics.swapper_load_seconds.observe(self.last_load_s)
            self._last_used = self._clock()
            self.last_error = ""
            log.info("%s ready after %.2f s", self._model, self.last_load_s)
        except Exception as exc:
            self._state = "UNAVAILABLE"
            if not isinstance(exc, FacegateError):
                # A bug, not Triton refusing: it reaches the client as a 500 with the
                # request id (the catch-all logs the traceback), and is not held.
                self.last_error = repr(exc)
                raise
            reason = exc.message
            self.last_error = reason
            log.warning("loading %s failed: %s", self._model, reason)
            self._failure = UpstreamUnavailable(
                f"the face swapper is unavailable: {reason}", retry_after_s=int(FAILURE_HOLD_S)
            )
            self._failed_at = self._clock()
            raise self._failure from exc
        finally:
            self._load_task = None

    def mark_unavailable(self) -> None:
        """Triton no longer serves the swapper (unloaded elsewhere): load again next time."""
        if self._state == "READY":
            self._state = "UNAVAILABLE"

    async def _wait_ready(self, ready: bool, timeout_s: float) -> None:
        deadline = self._clock() + timeout_s
        while await self._control.is_model_ready(self._model) != ready:
            if self._clock() > deadline:
                verb = "load" if ready else "unload"
                raise UpstreamUnavailable(f"{self._model} did not {verb} within {timeout_s:.0f} s")
            await asyncio.sleep(READY_POLL_S)

    async def unload(self) -> None:
        """Unload now (after any load in progress); returns once Triton reports it gone."""
        if self._load_task is not None:
            with contextlib.suppress(FacegateError):
                await asyncio.shield(self._load_task)
        if self._unload_task is None:
            # Set before the first await, so no request takes the model as READY from here on.
            self._state = "UNLOADING"
            self._unload_task = asyncio.create_task(self._unload())
        await asyncio.shield(self._unload_task)

    async def _unload(self) -> None:
        try:
            await self._control.unload_model(self._model)
            await self._wait_ready(False, self._policy.load_timeout_s)
            log.info("%s unloaded", self._model)
        finally:
            self._state = "UNAVAILABLE"
            self._failure = None
            self._unload_task = None

    @contextlib.asynccontextmanager
    async def in_use(self) -> AsyncIterator[None]:
        """Count a request as using the swapper, so the idle reaper leaves it loaded.

        Counting only: the request starts the load itself (ensure_loaded) when it is ready
        to, so the load can overlap with its detection work.
        """
        self._in_use += 1
        try:
            yield
        finally:
            self._in_use -= 1
            self._last_used = self._clock()

    def idle_for_s(self) -> float:
        return 0.0 if self._in_use else self._clock() - self._last_used

    async def reap_once(self) -> bool:
        """Unload if READY, unused and idle longer than the TTL; True when it unloaded.

        The checks and the start of the unload happen without an await in between, so a
        request counted in in_use() either keeps the model or waits for the unload and
        loads it again.
        """
        ttl = self._policy.idle_ttl_s
        if ttl <= 0 or self._state != "READY" or self._in_use or self.idle_for_s() < ttl:
            return False
        log.info("%s idle for %.0f s (TTL %.0f s): unloading", self._model, self.idle_for_s(), ttl)
        await self.unload()
        return True

    async def run_reaper(self) -> None:
        """Background task: check the idle TTL periodically until cancelled."""
        ttl = self._policy.idle_ttl_s
        if ttl <= 0:
            return
        period = min(max(ttl / 4, 0.05), 30.0)
        while True:
            await asyncio.sleep(period)
            try:
                await self.reap_once()
            except FacegateError as exc:
                log.warning("idle unload of %s failed: %s", self._model, exc.message)
