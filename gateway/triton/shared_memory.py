"""TritonFaceModels over Triton's system shared memory, for a client on the server's host.

Each model (detector, recognizer) gets a small pool of regions, each sized for one request
at the model's max batch: inputs first, outputs after, at offsets taken from the model's
config. Regions are created and registered once, reused by one in-flight request at a time
(a request waits for a free region), and unregistered and destroyed on close. A request
that does not fit a region (or a model without a pool, such as the swapper) goes over the
wire as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import tritonclient.grpc.aio as grpcclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException, triton_to_np_dtype

from gateway.errors import UpstreamFailed, UpstreamUnavailable
from gateway.triton import spec
from gateway.triton.client import TritonFaceModels, TritonTarget

log = logging.getLogger(__name__)
ALIGN_BYTES = 64
_CONFIG_DTYPE_BYTES = {"TYPE_UINT8": 1, "TYPE_FP32": 4, "TYPE_FP16": 2, "TYPE_INT64": 8}
_DTYPES = {np.dtype(np.uint8): "UINT8", np.dtype(np.float32): "FP32"}


class SharedMemoryUnavailable(UpstreamUnavailable):
    """Shared memory could not be set up (another host, another IPC namespace, restricted)."""


@dataclass(frozen=True)
class Extent:
    """Where one tensor lives inside a region: byte offset and capacity."""

    offset: int
    byte_size: int


@dataclass(frozen=True)
class RegionLayout:
    """Offsets of a model's inputs and outputs inside one region sized for its max batch."""

    inputs: dict[str, Extent]
    outputs: dict[str, Extent]
    byte_size: int


@dataclass(frozen=True)
class Region:
    name: str
    key: str
    handle: Any


def layout_from_config(
    config: dict[str, Any], sized: dict[str, tuple[int, ...]] | None = None
) -> RegionLayout | None:
    """A region layout from Triton's JSON model config; None if a dimension is variable.

    `sized` gives the shape (without batch) to reserve for a tensor whose config dims are
    variable, e.g. the detector's at 640 px: larger requests then go over the wire.
    """
    batch = max(int(config.get("max_batch_size", 0)), 1)
    offset = 0
    extents: dict[str, dict[str, Extent]] = {"input": {}, "output": {}}
    for kind in ("input", "output"):
        for tensor in config.get(kind, []):
            dims = [int(d) for d in tensor.get("dims", [])]
            if sized and tensor.get("name") in sized and any(d < 0 for d in dims):
                dims = list(sized[tensor["name"]])
            itemsize = _CONFIG_DTYPE_BYTES.get(tensor.get("data_type", ""))
            if itemsize is None or any(d < 0 for d in dims):
                return None
            size = batch * math.prod(dims) * itemsize
            extents[kind][tensor["name"]] = Extent(offset, size)
            offset += -(-size // ALIGN_BYTES) * ALIGN_BYTES
    return RegionLayout(extents["input"], extents["output"], offset)


class RegionPool:
    """Regions of one model, each lent to one request at a time."""

    def __init__(self, layout: RegionLayout, regions: Sequence[Region]) -> None:
        self.layout = layout
        self.regions = tuple(regions)
        self._free: asyncio.Queue[Region | None] = asyncio.Queue()
        self._retired = 0
        for region in regions:
            self._free.put_nowait(region)

    def fits(self, feeds: dict[str, npt.NDArray[Any]], outputs: Sequence[str]) -> bool:
        if self._retired >= len(self.regions):
            return False
        return all(
            name in self.layout.inputs and array.nbytes <= self.layout.inputs[name].byte_size
            for name, array in feeds.items()
        ) and all(name in self.layout.outputs for name in outputs)

    @contextlib.asynccontextmanager
    async def lend(self) -> AsyncIterator[Region | None]:
        """A free region, or None once every region is retired (the caller uses the wire)."""
        region = await self._free.get()
        if region is None:
            self._free.put_nowait(None)  # wake the next waiter too
            yield None
            return
        try:
            yield region
        except BaseException:
            # A request that failed or was cancelled may still be running in Triton, which
            # could write its outputs into this region later: never lend it again.
            self._retired += 1
            if self._retired >= len(self.regions):
                self._free.put_nowait(None)
            raise
        self._free.put_nowait(region)


class SharedMemoryFaceModels(TritonFaceModels):
    """TritonFaceModels whose detector and recognizer tensors travel through system shared memory.

    Call `register()` once after construction; until then (or if it fails) every request
    goes over the wire.
    """

    def __init__(self, target: TritonTarget, regions_per_model: int = 2) -> None:
        super().__init__(target)
        self._regions_per_model = regions_per_model
        self._pools: dict[str, RegionPool] = {}
        self._registered: list[Region] = []
        self._prefix = f"facegate-{os.getpid()}-{secrets.token_hex(4)}"

    @property
    def active(self) -> bool:
        """True once regions are registered: detector and recognizer use shared memory."""
        return bool(self._pools)

    @property
    def region_names(self) -> list[str]:
        return [region.name for region in self._registered]

    async def register(self) -> None:
        """Create and register the regions; on failure, release what was made and raise.

        SharedMemoryUnavailable when this host cannot share memory with Triton; the error
        tree's other errors when Triton cannot be reached.
        """
        try:
            for model in (self.target.detector, self.target.recognizer):
                self._pools[model] = await self._create_pool(model)
        except BaseException:
            await self._release()
            raise
        log.info("Triton system shared memory on: %s", ", ".join(self.region_names))

    async def _create_pool(self, model: str) -> RegionPool:
        config = await self._call(
            model,
            lambda: self._client.get_model_config(
                model, as_json=True, client_timeout=self.target.timeout_s
            ),
        )
        sized = None
        if model == self.target.detector:
            # The detector takes any frame size; regions hold the largest default (640).
            sized = {t.name: t.shape for t in (spec.DETECTOR_INPUT, *spec.DETECTOR_OUTPUTS)}
        layout = layout_from_config(config["config"], sized)
        if layout is None:
            raise SharedMemoryUnavailable(f"model '{model}' has variable tensor shapes")
        regions = [
            await self._create_region(f"{self._prefix}-{model}-{index}", layout.byte_size)
            for index in range(self._regions_per_model)
        ]
        return RegionPool(layout, regions)

    async def _create_region(self, name: str, byte_size: int) -> Region:
        key = f"/{name}"
        try:
            handle = shm.create_shared_memory_region(name, key, byte_size)
        except shm.SharedMemoryException as exc:
            raise SharedMemoryUnavailable(f"cannot create {key}: {exc}") from exc
        try:
            await self._client.register_system_shared_memory(
                name, key, byte_size, client_timeout=self.target.timeout_s
            )
        except InferenceServerException as exc:
            shm.destroy_shared_memory_region(handle)
            raise SharedMemoryUnavailable(
                f"Triton cannot map {key} (not on this host?): {exc.message()}"
            ) from exc
        region = Region(name, key, handle)
        self._registered.append(region)
        return region

    async def _release(self) -> None:
        self._pools = {}
        while self._registered:
            region = self._registered.pop()
            try:
                await self._client.unregister_system_shared_memory(
                    region.name, client_timeout=self.target.timeout_s
                )
            except InferenceServerException as exc:
                log.warning("could not unregister %s: %s", region.name, exc.message())
            shm.destroy_shared_memory_region(region.handle)

    async def close(self) -> None:
        """Unregister and destroy the regions, then close the channel."""
        await self._release()
        await super().close()

    async def infer(
        self, model: str, feeds: dict[str, npt.NDArray[Any]], outputs: Sequence[str]
    ) -> list[npt.NDArray[Any]]:
        """As TritonFaceModels.infer, through a free region of the model's pool when it fits."""
        pool = self._pools.get(model)
        if pool is None or not pool.fits(feeds, outputs):
            return await super().infer(model, feeds, outputs)
        async with pool.lend() as region:
            if region is None:
                return await super().infer(model, feeds, outputs)
            return await self._infer_in(region, pool.layout, model, feeds, outputs)

    async def _infer_in(
        self,
        region: Region,
        layout: RegionLayout,
        model: str,
        feeds: dict[str, npt.NDArray[Any]],
        outputs: Sequence[str],
    ) -> list[npt.NDArray[Any]]:
        inputs = []
        for name, array in feeds.items():
            extent = layout.inputs[name]
            shm.set_shared_memory_region(
                region.handle, [np.ascontiguousarray(array)], extent.offset
            )
            tensor = grpcclient.InferInput(name, list(array.shape), _DTYPES[array.dtype])
            tensor.set_shared_memory(region.name, array.nbytes, extent.offset)
            inputs.append(tensor)
        requested = []
        for name in outputs:
            extent = layout.outputs[name]
            output = grpcclient.InferRequestedOutput(name)
            output.set_shared_memory(region.name, extent.byte_size, extent.offset)
            requested.append(output)
        result = await self._call(
            model,
            lambda: self._client.infer(
                model, inputs, outputs=requested, client_timeout=self.target.timeout_s
            ),
        )
        arrays = []
        for name in outputs:
            meta = result.get_output(name)
            if meta is None or math.prod(meta.shape) == 0:
                raise UpstreamFailed(f"Triton returned an empty '{name}' from model '{model}'")
            view = shm.get_contents_as_numpy(
                region.handle,
                triton_to_np_dtype(meta.datatype),
                list(meta.shape),
                layout.outputs[name].offset,
            )
            # Copied: the region is lent to the next request as soon as this one returns.
            arrays.append(np.array(view))
        return arrays
