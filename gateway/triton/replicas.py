"""Swapper load and unload on every Triton replica behind one gRPC target.

With several Triton pods behind a headless Service (`dns:///name:port`), or an explicit list
(`ipv4:10.0.0.1:8001,10.0.0.2:8001`), inference is spread over the pods by gRPC's round_robin
policy, so a swap may reach any of them. A load or unload sent through that channel reaches
one pod only: the swapper would be loaded on one replica and swaps that land on the others
would fail. ReplicatedControl resolves the target itself and sends each load and unload to
every replica, and reports the swapper ready only when every replica has it.

Chosen over a swap pool of its own (a second set of GPU pods, idle between swaps) and over
routing swaps to the replicas that hold the swapper (a second routing layer next to gRPC's):
swaps scale with the Triton pods, and the on-demand policy (load on first use, unload when
idle) stays one decision per gateway process. A replica that joins later has no swapper; a
swap that reaches it fails with 503, which marks the swapper unavailable, and the next swap
loads it on every replica again (a load of a model that is already loaded and unchanged is a
no-op in Triton).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from gateway.errors import UpstreamUnavailable
from gateway.metrics import Metrics
from gateway.triton.client import TritonFaceModels, TritonTarget
from gateway.triton.targets import resolve_replicas, split_target

__all__ = ["ReplicatedControl", "resolve_replicas", "split_target", "swapper_control"]

log = logging.getLogger(__name__)
UNLOAD_POLL_S = 0.1
# Triton unloads asynchronously; how long unload_model waits for every replica to drop it.
UNLOAD_WAIT_S = 60.0


class ReplicatedControl:
    """ModelControl over every replica of a multi-address target, one channel per replica."""

    def __init__(self, target: TritonTarget, metrics: Metrics | None = None) -> None:
        self._target = target
        self._metrics = metrics
        self._replicas: dict[str, TritonFaceModels] = {}

    async def replicas(self) -> list[TritonFaceModels]:
        """Clients for the replicas the target resolves to now (channels kept per address)."""
        addresses = await resolve_replicas(self._target.url)
        if not addresses:
            raise UpstreamUnavailable(
                f"{self._target.url} names no Triton replica", retry_after_s=5
            )
        for gone in set(self._replicas) - set(addresses):
            await self._replicas.pop(gone).close()
        for address in addresses:
            if address not in self._replicas:
                one = dataclasses.replace(self._target, url=address)
                self._replicas[address] = TritonFaceModels(one, self._metrics)
        return [self._replicas[a] for a in addresses]

    async def load_model(self, model: str, timeout_s: float) -> None:
        """Load on every replica at once; the first failure is raised once all have answered."""
        replicas = await self.replicas()
        results = await asyncio.gather(
            *(r.load_model(model, timeout_s) for r in replicas), return_exceptions=True
        )
        for replica, result in zip(replicas, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("loading %s on %s failed", model, replica.target.url)
                raise result
        log.info("%s loaded on %d Triton replica(s)", model, len(replicas))

    async def unload_model(self, model: str) -> None:
        """Unload on every replica and wait until none serves the model any more."""
        replicas = await self.replicas()
        await asyncio.gather(*(r.unload_model(model) for r in replicas))
        deadline = time.monotonic() + UNLOAD_WAIT_S
        pending = list(replicas)
        while pending:
            states = await asyncio.gather(*(r.is_model_ready(model) for r in pending))
            pending = [r for r, ready in zip(pending, states, strict=True) if ready]
            if pending and time.monotonic() > deadline:
                urls = ", ".join(r.target.url for r in pending)
                raise UpstreamUnavailable(f"{model} still loaded on {urls} after unload")
            if pending:
                await asyncio.sleep(UNLOAD_POLL_S)

    async def is_model_ready(self, model: str) -> bool:
        """Ready on every replica (a swap may reach any of them)."""
        replicas = await self.replicas()
        return all(await asyncio.gather(*(r.is_model_ready(model) for r in replicas)))

    async def close(self) -> None:
        for replica in self._replicas.values():
            await replica.close()
        self._replicas.clear()


def swapper_control(
    target: TritonTarget, models: TritonFaceModels, metrics: Metrics | None = None
) -> TritonFaceModels | ReplicatedControl:
    """What loads the swapper: every replica for a multi-address target, else `models` itself."""
    if split_target(target.url) is None:
        return models
    return ReplicatedControl(target, metrics)
